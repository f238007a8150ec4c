"""UMAP reduction: shapes, seeded reproducibility, tiny inputs; exact neighbours and cached numba code; the cheap
map, its UMAP in a worker process; blocks placed in processes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import make_blobs
from sklearn.decomposition import PCA

from clio_lite.pipeline import fit_transform_sampled
from clio_lite.reduce import (
    SampledMap,
    UMAPReducer,
    exact_neighbours,
    fit_sample_beside,
    one_blas_thread,
    place_by_neighbours,
    transform_blocks,
)


def test_seeded_umap_is_reproducible_and_has_the_requested_dimensions():
    X, _ = make_blobs(300, n_features=20, centers=5, random_state=0)
    a = UMAPReducer(n_components=5, random_state=7).fit_transform(X)
    b = UMAPReducer(n_components=5, random_state=7).fit_transform(X)
    assert a.shape == (300, 5) and a.dtype == np.float32
    assert a.tobytes() == b.tobytes()


def test_umap_keeps_separated_groups_apart():
    X, y = make_blobs(300, n_features=20, centers=3, cluster_std=0.5, random_state=1)
    Z = UMAPReducer(n_components=2, random_state=0).fit_transform(X)
    centres = np.array([Z[y == k].mean(axis=0) for k in range(3)])
    spread = max(np.linalg.norm(Z[y == k] - centres[k], axis=1).mean() for k in range(3))
    gaps = min(np.linalg.norm(centres[i] - centres[j]) for i in range(3) for j in range(i + 1, 3))
    assert gaps > 2 * spread


def test_too_few_points_for_a_neighbourhood_graph_do_not_crash():
    X = np.arange(12, dtype=np.float32).reshape(3, 4)
    Z = UMAPReducer(n_components=5).fit_transform(X)
    assert Z.shape == (3, 5)
    assert UMAPReducer(n_components=2).fit_transform(np.zeros((0, 4))).shape == (0, 2)


# -- exact neighbours from 4,096 points (no NN-descent to compile in every process) ----------------------------


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_exact_neighbours_are_the_brute_force_neighbours_self_first(metric):
    from sklearn.neighbors import NearestNeighbors

    X = np.random.default_rng(0).normal(size=(700, 16)).astype(np.float32)
    X[5] = X[4]  # a duplicate: both rows still list themselves first
    indices, distances = exact_neighbours(X, 8, metric, block_cells=700 * 64)  # 64 rows a block: several blocks
    assert indices.shape == distances.shape == (700, 8) and indices.dtype == np.int64
    assert (indices[:, 0] == np.arange(700)).all() and (distances[:, 0] == 0).all()
    assert indices[4, 1] == 5 and indices[5, 1] == 4 and distances[4, 1] == pytest.approx(0, abs=1e-6)
    reference = NearestNeighbors(n_neighbors=8, metric=metric, algorithm="brute").fit(X.astype(np.float64))
    ref_distances, ref_indices = reference.kneighbors(X.astype(np.float64))
    others = np.arange(700) != 4
    others[5] = False
    assert (np.sort(indices[others], axis=1) == np.sort(ref_indices[others], axis=1)).mean() > 0.999
    assert np.abs(np.sort(distances, axis=1) - np.sort(ref_distances, axis=1)).max() < 1e-4
    assert (np.diff(distances, axis=1) >= 0).all()  # nearest first


def test_exact_neighbours_do_not_depend_on_the_blas_threads_or_the_block_size():
    from threadpoolctl import threadpool_limits

    X = np.random.default_rng(1).normal(size=(1500, 48)).astype(np.float32)
    with threadpool_limits(limits=1):
        one = exact_neighbours(X, 15)
    with threadpool_limits(limits=2):
        two = exact_neighbours(X, 15, block_cells=1500 * 100)
    assert one[0].tobytes() == two[0].tobytes() and one[1].tobytes() == two[1].tobytes()


def test_umap_from_4096_points_uses_exact_neighbours_and_the_transform_copy_keeps_an_index():
    X, y = make_blobs(4200, n_features=12, centers=4, cluster_std=0.5, random_state=3)
    exact = UMAPReducer(n_components=2, random_state=0, n_epochs=30)
    Z = exact.fit_transform(X)
    assert exact.model_._knn_search_index is None  # the graph came from exact_neighbours, not NN-descent
    indices, _ = exact_neighbours(X, 15)
    assert (exact.model_._knn_indices == indices).all()
    centres = np.array([Z[y == k].mean(axis=0) for k in range(4)])
    assert (np.argmin(np.linalg.norm(Z[:, None] - centres[None], axis=2), axis=1) == y).mean() > 0.99
    copy = exact.for_transform()
    assert copy.exact_neighbours is None and not hasattr(copy, "model_") and exact.exact_neighbours == 20_000
    assert {**vars(copy), "exact_neighbours": 20_000} == {k: v for k, v in vars(exact).items() if k != "model_"}
    # a fit limit inside the exact range fits the for_transform copy, which places the rest through its transform
    placed = fit_transform_sampled(UMAPReducer(n_components=2, random_state=0, n_epochs=30), X, 4100, 0, processes=1)
    assert placed.shape == (4200, 2) and np.isfinite(placed).all()


def test_umap_code_compiled_in_one_process_is_loaded_from_the_cache_in_the_next():
    # umap-learn leaves most of its numba functions uncached: clio_lite caches them, so a new process loads them.
    script = textwrap.dedent("""
        import json, numpy as np
        from clio_lite.reduce import UMAPReducer
        import umap.layouts as layouts
        X = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
        UMAPReducer(n_components=2, random_state=0, n_epochs=5).fit_transform(X)
        stats = layouts._nb_optimize_layout_euclidean_single_epoch.stats
        print(json.dumps([sum(stats.cache_hits.values()), sum(stats.cache_misses.values())]))
    """)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    runs = [json.loads(subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                      check=True).stdout.strip().splitlines()[-1]) for _ in range(2)]
    assert runs[1] == [1, 0]  # the second process found the first one's compiled layout epoch


# -- the cheap map: UMAP of a sample, the rest placed by their nearest sample points in the clustering space -------


def _embeddings_and_space(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blobs in 20-D (the "embeddings"), their first 5 coordinates as the "clustering space", and the blob labels."""
    X, y = make_blobs(n, n_features=20, centers=4, cluster_std=0.6, random_state=seed)
    return X.astype(np.float32), X[:, :5].astype(np.float32), y


def test_sampled_map_is_deterministic_and_places_every_point():
    X, space, _ = _embeddings_and_space(1200)
    a = SampledMap(fit_limit=400, random_state=3).fit_transform(X, space=space)
    b = SampledMap(fit_limit=400, random_state=3).fit_transform(X, space=space)
    assert a.shape == (1200, 2) and a.dtype == np.float32 and np.isfinite(a).all()
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != SampledMap(fit_limit=400, random_state=4).fit_transform(X, space=space).tobytes()


def test_sampled_map_keeps_groups_apart_and_puts_placed_points_with_their_group():
    X, space, y = _embeddings_and_space(1200, seed=1)
    Z = SampledMap(fit_limit=300, random_state=0).fit_transform(X, space=space)
    centres = np.array([Z[y == k].mean(axis=0) for k in range(4)])
    # every point, sampled or placed, is nearest to its own group's centre
    nearest = np.argmin(np.linalg.norm(Z[:, None] - centres[None], axis=2), axis=1)
    assert (nearest == y).mean() > 0.99


def test_points_outside_the_sample_are_placed_by_their_neighbours_in_the_space_given():
    X, space, _ = _embeddings_and_space(600)
    rng = np.random.default_rng(0)
    sample = np.zeros(600, dtype=bool)
    sample[rng.choice(600, size=200, replace=False)] = True
    Z = SampledMap(fit_limit=200, k=4, random_state=0).fit_transform(X, space=space)
    expected = place_by_neighbours(space[~sample], space[sample], Z[sample], k=4)
    assert Z[~sample].tobytes() == expected.tobytes()
    assert Z.tobytes() != SampledMap(fit_limit=200, k=4, random_state=0).fit_transform(X).tobytes()


def test_sampled_map_below_its_limit_is_umap_of_all_the_embeddings():
    X, space, _ = _embeddings_and_space(300)
    Z = SampledMap(fit_limit=1000, random_state=0).fit_transform(X, space=space)
    assert Z.tobytes() == UMAPReducer(n_components=2, random_state=0).fit_transform(X).tobytes()


@pytest.mark.parametrize("n", [0, 1, 2, 3, 8])
def test_sampled_map_handles_fewer_points_than_the_sample_or_the_neighbours(n):
    X, space, _ = _embeddings_and_space(50)
    for limit in (2, 5, 100):
        Z = SampledMap(fit_limit=limit, k=10, random_state=0).fit_transform(X[:n], space=space[:n])
        assert Z.shape == (n, 2) and np.isfinite(Z).all()


def test_place_by_neighbours_weights_nearer_anchors_more_and_lands_on_a_coinciding_anchor():
    anchors = np.array([[0.0, 0.0], [10.0, 0.0]])
    positions = np.array([[0.0, 0.0], [1.0, 1.0]])
    placed = place_by_neighbours(np.array([[0.0, 0.0], [2.0, 0.0], [5.0, 0.0]]), anchors, positions, k=2)
    assert placed[0].tolist() == [0.0, 0.0]
    assert placed[1].tolist() == pytest.approx([0.2, 0.2])  # weights 1/2 and 1/8
    assert placed[2].tolist() == pytest.approx([0.5, 0.5])
    assert place_by_neighbours(np.zeros((0, 2)), anchors, positions).shape == (0, 2)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.integers(1, 6), st.integers(0, 2**16))
def test_placed_points_lie_within_their_anchors_hull(n_anchors, k, seed):
    rng = np.random.default_rng(seed)
    anchors, positions = rng.normal(size=(n_anchors, 5)), rng.normal(size=(n_anchors, 2))
    placed = place_by_neighbours(rng.normal(size=(30, 5)), anchors, positions, k=k)
    # an inverse-distance-weighted mean is a convex combination: inside the anchors' bounding box
    assert (placed >= positions.min(axis=0) - 1e-5).all() and (placed <= positions.max(axis=0) + 1e-5).all()


@pytest.mark.parametrize("n, limit", [(600, 200), (300, 1000)])
def test_the_map_in_parts_sample_fit_and_place_is_its_fit_transform(n, limit):
    X, space, _ = _embeddings_and_space(n)
    sampled_map = SampledMap(fit_limit=limit, k=4, random_state=5)
    sample = sampled_map.sample(n)
    assert (sample is None) == (n <= limit)
    if sample is not None:
        assert sample.dtype == bool and sample.sum() == limit
        assert np.array_equal(sample, sampled_map.sample(n))  # seeded
    fitted = sampled_map.fit_sample(X if sample is None else X[sample])
    whole = sampled_map.place(fitted, space, sample)
    assert whole.tobytes() == sampled_map.fit_transform(X, space=space).tobytes()


def test_the_maps_umap_fitted_in_a_worker_process_gives_the_bytes_of_this_process(caplog):
    X, _, _ = _embeddings_and_space(400, seed=2)
    sampled_map = SampledMap(random_state=9)
    here = sampled_map.fit_sample(X)
    received, delivered = [], threading.Event()

    def keep(positions):
        received.append((positions, threading.current_thread() is threading.main_thread()))
        delivered.set()

    with caplog.at_level(logging.WARNING), fit_sample_beside(sampled_map, X, processes=2, on_result=keep) as job:
        assert job.in_worker
        # Handed over as soon as the worker is done, while this process is still busy with its own work.
        assert delivered.wait(timeout=300)
        there = job.result()
    assert not [r for r in caplog.records if "worker process failed" in r.getMessage()]
    assert there.tobytes() == here.tobytes()
    assert len(received) == 1 and received[0][0].tobytes() == here.tobytes() and not received[0][1]


def test_the_map_is_fitted_in_a_worker_only_for_enough_rows_and_free_cores(monkeypatch):
    X, _, _ = _embeddings_and_space(60)
    monkeypatch.setattr("clio_lite.reduce.MIN_ROWS_FOR_MAP_PROCESS", 50)
    monkeypatch.setattr("clio_lite.executor._free_cpus", lambda: 0.8)  # one core, this process's
    with fit_sample_beside(SampledMap(random_state=0), X) as job:
        assert not job.in_worker
    monkeypatch.setattr("clio_lite.executor._free_cpus", lambda: 1.7)  # about two
    with fit_sample_beside(SampledMap(random_state=0), X) as job:
        assert job.in_worker  # (stopped unfinished when the block ends: its bytes are tested above)
    with fit_sample_beside(SampledMap(random_state=0), X[:49]) as job:  # too few rows for a worker to pay
        assert not job.in_worker
    with fit_sample_beside(SampledMap(random_state=0), X, processes=1) as job:
        assert not job.in_worker


# -- the clustering UMAP above its fit limit: blocks placed in worker processes give the same bytes ------------


def test_blocks_transformed_in_worker_processes_give_the_bytes_of_one_process(caplog):
    X, _ = make_blobs(1000, n_features=20, centers=5, random_state=2)
    X = X.astype(np.float32)
    one = fit_transform_sampled(UMAPReducer(n_components=5, random_state=0), X, 300, 0, processes=1)
    # 3 blocks: a helper process places blocks 0 and 2 (on a fresh copy of the fitted model), this process block 1
    with caplog.at_level(logging.WARNING):
        two = fit_transform_sampled(UMAPReducer(n_components=5, random_state=0), X, 300, 0, processes=2)
    assert not [r for r in caplog.records if "worker process failed" in r.getMessage()]
    assert one.shape == (1000, 5) and np.isfinite(one).all()
    assert one.tobytes() == two.tobytes()


def test_transform_blocks_come_back_in_order_from_processes():
    X = np.arange(40, dtype=np.float32).reshape(20, 2)
    pca = PCA(n_components=1).fit(X[:5])
    blocks = [np.arange(i, i + 4) for i in range(0, 20, 4)]
    parallel = list(transform_blocks(pca, X, blocks, processes=2))
    assert [p.tolist() for p in parallel] == [pca.transform(X[b]).tolist() for b in blocks]


def test_one_blas_thread_holds_blas_to_one_thread_only_inside_and_only_when_active():
    from threadpoolctl import threadpool_info

    def blas_threads() -> list[int]:
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    before = blas_threads()
    assert before  # numpy's BLAS at least
    with one_blas_thread():
        assert set(blas_threads()) == {1}
    with one_blas_thread(False):
        assert blas_threads() == before
    assert blas_threads() == before
