"""UMAP: embeddings down to a few dimensions for clustering, and to two for the map.

A reducer is any object with ``fit_transform(X) -> np.ndarray`` (scikit-learn's transformer shape), so a user may
pass ``sklearn.decomposition.PCA`` or their own. umap-learn compiles with numba on first use; its compiled code is
cached under ``NUMBA_CACHE_DIR`` (``~/.cache/clio_lite/numba`` unless set) so the cost is paid once per machine.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


def _ensure_numba_cache() -> None:
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "clio_lite" / "numba"))


_UMAP_CACHING = False


def _import_umap_cached():
    """``umap``, with every compiled function of umap-learn and pynndescent cached on disk (once per process).

    umap-learn marks only some of its numba functions ``cache=True``: the rest (the layout's epochs, the fuzzy
    simplicial set, pynndescent's trees and heaps) were compiled again in every new process, about 20 s of a 10k
    run's reduce stage. Caching them gives the same machine code, so the same bytes (``tests/test_reduce.py``).
    A function numba cannot cache (pynndescent's ``nn_descent`` holds dynamic globals) still compiles per process:
    see ``UMAPReducer(exact_neighbours=...)``, which avoids it.
    """
    global _UMAP_CACHING
    _ensure_numba_cache()
    import umap

    if not _UMAP_CACHING:
        from numba.core.registry import CPUDispatcher

        for name, module in list(sys.modules.items()):
            if module is None or not name.startswith(("umap", "pynndescent")):
                continue
            for function in list(vars(module).values()):
                if isinstance(function, CPUDispatcher) and type(function._cache).__name__ == "NullCache":
                    try:
                        function.enable_caching()
                    except Exception as error:  # noqa: BLE001 (a numba internals change: compile as before)
                        logger.debug("numba caching not enabled for %s: %s", function, error)
        _UMAP_CACHING = True
    return umap


def exact_neighbours(X: np.ndarray, k: int, metric: str = "cosine", block_cells: int = 1 << 24):
    """The ``k`` nearest rows of ``X`` to each row (itself first, at distance 0), by brute force; UMAP's kNN form.

    Parameters
    ----------
    X : array of shape (n, d)
    k : int
        Neighbours per row, the row itself included (k ≤ n).
    metric : {"cosine", "euclidean"}
    block_cells : int
        Rows are compared with all ``n`` in blocks of at most this many similarities (bounded memory: 64 MB).

    Returns
    -------
    (indices, distances) : arrays of shape (n, k), int64 and float32, nearest first
        The same (to float32 rounding) as NN-descent's at perfect recall, as UMAP's ``precomputed_knn`` takes them.
        A BLAS product per block: about 1.5 s for 10,000 384-d rows on two cores, and no numba compile.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    n = len(X)
    if metric == "cosine":
        X = X / np.clip(np.linalg.norm(X, axis=1, keepdims=True), 1e-12, None)
    elif metric != "euclidean":
        raise ValueError(f"exact neighbours support cosine and euclidean, not {metric!r}")
    half_squared = 0.5 * np.einsum("ij,ij->i", X, X)[None, :] if metric == "euclidean" else None
    indices = np.empty((n, k), dtype=np.int64)
    distances = np.empty((n, k), dtype=np.float32)
    rows = max(1, min(2048, block_cells // max(n, 1)))
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        # Larger is nearer: the similarity (cosine) or minus the squared distance without the row's own norm.
        score = X[start:stop] @ X.T
        if half_squared is not None:
            score -= half_squared
        score[np.arange(stop - start), np.arange(start, stop)] = np.inf  # each row is its own nearest neighbour
        part = np.argpartition(-score, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(score, part, axis=1), axis=1, kind="stable")
        nearest = np.take_along_axis(part, order, axis=1)
        indices[start:stop] = nearest
        if metric == "cosine":
            found = np.einsum("id,ikd->ik", X[start:stop], X[nearest])
            distances[start:stop] = np.maximum(1.0 - found, 0.0)
        else:
            found = X[nearest] - X[start:stop, None, :]
            distances[start:stop] = np.sqrt(np.einsum("ikd,ikd->ik", found, found))
        distances[start:stop, 0] = 0.0
    return indices, distances


#: UMAP computes exact neighbours itself below this many points (and keeps its transform).
UMAP_EXACT_BELOW = 4096


class UMAPReducer:
    """UMAP with settings suited to clustering sentence embeddings (cosine metric, ``min_dist=0``).

    Parameters
    ----------
    n_components : int
        Output dimensions: 5 for the clustering space, 2 for the map.
    n_neighbors : int
        Size of the local neighbourhood; capped below the number of points.
    min_dist : float
        0.0 packs clusters tightly, which is what density clustering wants.
    metric : str
        Distance on the input vectors.
    random_state : int or None
        Seed; with a seed, UMAP runs single-threaded and reproducibly.
    n_epochs : int or None
        Epochs of UMAP's layout optimisation; ``None`` is UMAP's own rule (500 up to 10,000 points, 200 above).
    exact_neighbours : int or None
        From 4,096 points (below, UMAP computes exact neighbours itself) up to this many, the neighbour graph is
        exact (:func:`exact_neighbours`, a BLAS product) instead of NN-descent's: NN-descent's numba code cannot be
        cached and compiles again in every process (about 8 s), which costs more than the product up to some
        20,000 points. Such a fit keeps no search index, so it has no ``transform``: :meth:`for_transform` gives
        a copy that keeps one. ``None``: NN-descent always, as UMAP does.
    """

    def __init__(
        self,
        n_components: int = 5,
        n_neighbors: int = 15,
        min_dist: float = 0.0,
        metric: str = "cosine",
        random_state: int | None = None,
        n_epochs: int | None = None,
        exact_neighbours: int | None = 20_000,
    ):
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.random_state = random_state
        self.n_epochs = n_epochs
        self.exact_neighbours = exact_neighbours

    def for_transform(self) -> UMAPReducer:
        """A copy whose fit keeps NN-descent's search index, so that its fitted ``model_`` can ``transform``."""
        settings = {name: value for name, value in vars(self).items() if not name.endswith("_")}
        return UMAPReducer(**{**settings, "exact_neighbours": None})

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        """Return ``X`` reduced to ``n_components`` dimensions (float32)."""
        X = np.asarray(X, dtype=np.float32)
        n = len(X)
        if n <= self.n_components + 1:
            # Too few points for a neighbourhood graph: keep the leading coordinates, padded with zeros.
            out = np.zeros((n, self.n_components), dtype=np.float32)
            width = min(self.n_components, X.shape[1]) if n else 0
            out[:, :width] = X[:, :width]
            return out
        umap = _import_umap_cached()
        n_neighbors = max(2, min(self.n_neighbors, n - 1))
        knn: dict = {}
        if self.exact_neighbours is not None and UMAP_EXACT_BELOW <= n <= self.exact_neighbours and \
                self.metric in ("cosine", "euclidean"):
            indices, distances = exact_neighbours(X, n_neighbors, self.metric)
            knn = {"precomputed_knn": (indices, distances, None)}
        self.model_ = umap.UMAP(
            n_components=self.n_components,
            n_neighbors=n_neighbors,
            min_dist=self.min_dist,
            metric=self.metric,
            random_state=self.random_state,
            # UMAP's spectral initialisation fails on tiny or disconnected graphs; random is always defined.
            init="spectral" if n > 50 else "random",
            low_memory=True,
            n_epochs=self.n_epochs,
            # A seed makes UMAP single-threaded anyway; saying so avoids its warning.
            n_jobs=1 if self.random_state is not None else -1,
            **knn,
        )
        with warnings.catch_warnings():
            # Said in the docstring: an exact-neighbour fit has no transform; and what numba cannot cache, it compiles.
            warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]")
            warnings.filterwarnings("ignore", message="Cannot cache compiled function")
            return self.model_.fit_transform(X).astype(np.float32)


def place_by_neighbours(
    space: np.ndarray, anchors: np.ndarray, anchor_positions: np.ndarray, k: int = 10, block: int = 100_000
) -> np.ndarray:
    """Place each row of ``space`` at the inverse-distance-weighted mean position of its ``k`` nearest anchors.

    Parameters
    ----------
    space : array of shape (n, d)
        The points to place, in the space the anchors live in.
    anchors : array of shape (m, d)
        Points whose positions are known (m ≥ 1).
    anchor_positions : array of shape (m, p)
        Their positions on the map.
    k : int
        Neighbours averaged; capped at ``m``.
    block : int
        Rows queried at a time (bounds the memory of the neighbour query).

    Returns
    -------
    array of shape (n, p), float32
        A point that coincides with an anchor lands on that anchor's position. Exact (KD-tree) neighbours, so the
        result is a deterministic function of the inputs.
    """
    from sklearn.neighbors import KDTree

    anchors = np.asarray(anchors, dtype=np.float64)
    anchor_positions = np.asarray(anchor_positions, dtype=np.float64)
    out = np.empty((len(space), anchor_positions.shape[1]), dtype=np.float32)
    if len(space) == 0:
        return out
    k = max(1, min(k, len(anchors)))
    tree = KDTree(anchors)
    for start in range(0, len(space), block):
        distances, neighbours = tree.query(np.asarray(space[start : start + block], dtype=np.float64), k=k)
        exact = distances[:, :1] <= 1e-12
        # A coinciding anchor takes all the weight; otherwise nearer anchors weigh more (1 / distance).
        weights = np.where(exact, (distances <= 1e-12).astype(np.float64), 1.0 / np.maximum(distances, 1e-12))
        weights /= weights.sum(axis=1, keepdims=True)
        out[start : start + block] = np.einsum("nk,nkp->np", weights, anchor_positions[neighbours])
    return out


class SampledMap:
    """The 2-D map: UMAP of a seeded sample of the embeddings, every other point placed among its nearest sample
    points in the clustering space.

    The map only places each released cluster (at the mean of its members' positions), so it need not be a full
    UMAP of every conversation: a sample shows the layout, and the clustering space (UMAP keeps local structure)
    says which sample points each other point sits among.

    Parameters
    ----------
    fit_limit : int or None
        At most this many points are fitted by UMAP (a seeded sample); the rest are placed by
        :func:`place_by_neighbours` in ``space``. ``None`` fits all.
    n_neighbors : int
        UMAP's neighbourhood size.
    k : int
        Sample points whose positions place one other point.
    random_state : int or None
        Seed of the sample and of UMAP.

    Examples
    --------
    >>> import numpy as np
    >>> points = np.random.default_rng(0).normal(size=(500, 8)).astype(np.float32)
    >>> SampledMap(fit_limit=200, random_state=0).fit_transform(points).shape
    (500, 2)
    """

    def __init__(self, fit_limit: int | None = 20_000, n_neighbors: int = 15, k: int = 10,
                 random_state: int | None = None):
        self.fit_limit = fit_limit
        self.n_neighbors = n_neighbors
        self.k = k
        self.random_state = random_state

    def fit_transform(self, X: np.ndarray, space: np.ndarray | None = None) -> np.ndarray:
        """Return the 2-D positions of the rows of ``X`` (float32), one per row, in the input order.

        ``X`` is what UMAP maps (the embeddings, cosine); ``space`` (same rows; ``X`` if omitted) is where the
        points outside the sample find their nearest sample points: the low-dimensional clustering space, where an
        exact neighbour query is cheap. The same as :meth:`sample`, then :meth:`fit_sample` of the sample's rows,
        then :meth:`place`.
        """
        sample = self.sample(len(X))
        fitted = self.fit_sample(X if sample is None else np.asarray(X[sample], dtype=np.float32))
        return self.place(fitted, X if space is None else space, sample)

    def sample(self, n: int) -> np.ndarray | None:
        """The rows UMAP fits, as a boolean mask over ``n`` rows (seeded); ``None`` when it fits all of them."""
        if self.fit_limit is None or n <= self.fit_limit:
            return None
        rng = np.random.default_rng(self.random_state if self.random_state is not None else 0)
        sample = np.zeros(n, dtype=bool)
        sample[rng.choice(n, size=max(1, self.fit_limit), replace=False)] = True
        return sample

    def fit_sample(self, X: np.ndarray) -> np.ndarray:
        """UMAP to 2-D of the sample's rows (all rows when :meth:`sample` is ``None``): their positions, float32.

        The map's one costly step, and the only one that reads the embeddings; it does not need the clustering
        space, so it can run beside the clustering UMAP (:func:`fit_sample_beside`).
        """
        umap = UMAPReducer(n_components=2, n_neighbors=self.n_neighbors, random_state=self.random_state)
        return umap.fit_transform(X)

    def place(self, fitted: np.ndarray, space: np.ndarray, sample: np.ndarray | None) -> np.ndarray:
        """Every row's position: the sample's ``fitted`` ones, and each other row placed by its ``k`` nearest sample
        rows in ``space`` (:func:`place_by_neighbours`). With ``sample=None`` ``fitted`` is the map already."""
        if sample is None:
            return fitted
        out = np.empty((len(sample), 2), dtype=np.float32)
        out[sample] = fitted
        out[~sample] = place_by_neighbours(space[~sample], space[sample], out[sample], k=self.k)
        return out


class _SampleFit:
    """The map's UMAP of the sample's rows (:meth:`SampledMap.fit_sample`), as a worker process runs it; with
    ``one_thread``, BLAS on one thread (see :func:`one_blas_thread`)."""

    stage = "the map's UMAP"

    def __init__(self, sampled_map: SampledMap, one_thread: bool = False):
        self.sampled_map = sampled_map
        self.one_thread = one_thread

    def __call__(self, X: np.ndarray) -> np.ndarray:
        with one_blas_thread(self.one_thread):
            return self.sampled_map.fit_sample(X)


def one_blas_thread(active: bool = True):
    """A context in which BLAS (numpy's and scipy's OpenBLAS) uses one thread, when ``active``.

    For two UMAPs side by side on two cores: each process's BLAS threads (the exact neighbours' product, the
    spectral initialisation) otherwise contend with the other process and wait spinning. Measured at 10,000 points
    on an idle 2-core machine, the pair took 10.9–11.6 s wall with one BLAS thread each against 15.3–38.4 s with
    two (and 18.9 s one after the other); the bytes are the same.
    """
    from contextlib import nullcontext

    if not active:
        return nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


#: ``processes="auto"`` fits the map's UMAP in a worker process from this many rows. The worker's start (spawn,
#: imports, numba's cached UMAP code) costs about 2 CPU seconds; the clustering UMAP it runs beside takes about 2 s
#: per 1,000 rows, so below about 1,000 rows the worker would cost more than it saves (measured: docs/scaling.md,
#: "The two UMAPs side by side").
MIN_ROWS_FOR_MAP_PROCESS = 2_000


def fit_sample_beside(
    sampled_map: SampledMap, X: np.ndarray, processes: int | str = "auto", on_result: Any = None
) -> Any:
    """Start the map's UMAP of the sample's rows ``X`` in a worker process, while this process does something else
    (the clustering UMAP); :class:`clio_lite.executor.Beside`'s ``result()`` gives the positions.

    UMAP with a seed runs single-threaded, so the two UMAPs, one after the other, leave a core idle. With a seed
    UMAP's output depends on its input and settings only, so the worker's positions are the bytes this process
    would compute (``tests/test_reduce.py``). ``processes="auto"``: in a worker when there are at least
    :data:`MIN_ROWS_FOR_MAP_PROCESS` rows and two cores free for this process (:func:`clio_lite.executor._free_cpus`);
    ``1``: here (when ``result()`` is asked for); ``2`` or more: in a worker. Should the worker fail, the fit runs
    here. ``on_result(positions)`` is called once, as soon as they are known (in a thread of this process when the
    worker finishes: e.g. to checkpoint them while the clustering UMAP still runs).
    """
    from .executor import Beside, _free_cpus

    if processes == "auto":  # two cores free (to the nearest core): one for this process, one for the worker
        processes = 2 if len(X) >= MIN_ROWS_FOR_MAP_PROCESS and _free_cpus() >= 1.5 else 1
    in_worker = int(processes) >= 2
    return Beside(_SampleFit(sampled_map, one_thread=in_worker), X, in_worker=in_worker, on_result=on_result)


class _BlockTransformer:
    """Places one block of rows with a fitted reducer's ``transform`` (its own, or its fitted ``model_``'s)."""

    stage = "reduce"

    def __init__(self, reducer: Any):
        self.reducer = reducer

    def __call__(self, block: np.ndarray) -> np.ndarray:
        transform = getattr(self.reducer, "transform", None) or self.reducer.model_.transform
        return np.asarray(transform(np.asarray(block, dtype=np.float32)))


class _Blocks(Sequence):
    """The rows of ``X`` at each index block, read only when a block is due (bounded memory)."""

    def __init__(self, X: np.ndarray, blocks: list[np.ndarray]):
        self.X, self.blocks = X, blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, index: int) -> np.ndarray:
        return np.asarray(self.X[self.blocks[index]], dtype=np.float32)


#: ``processes="auto"`` places blocks in worker processes only when each holds at least this many rows (below it, a
#: process's start and the reducer's pickling cost more than the block).
MIN_ROWS_PER_PROCESS_BLOCK = 10_000


def transform_blocks(reducer: Any, X: np.ndarray, blocks: list[np.ndarray], processes: int | str = "auto"):
    """Yield ``reducer``'s transform of ``X[block]`` for each block, in order, in worker processes too when it pays.

    UMAP's ``transform`` is seeded per call (``transform_seed``) and runs single-threaded with a seed, so blocks
    placed side by side in processes give the bytes they give one after the other (``tests/test_reduce.py`` checks
    this). The fitted reducer is pickled once per worker process (for UMAP fitted on 50,000 384-d points, about
    the size of that sample and its neighbour index); ``processes="auto"`` uses the idle cores (as the scrub stage
    does) when there are at least two blocks of :data:`MIN_ROWS_PER_PROCESS_BLOCK` rows; ``1`` keeps everything in
    this process.
    """
    from .executor import _idle_cpus, _map_with_helpers, _remote_payload, _usable_cpus

    worker = _BlockTransformer(reducer)
    chunks = _Blocks(X, blocks)
    if processes == "auto":
        large = len(blocks) >= 2 and len(blocks[0]) >= MIN_ROWS_PER_PROCESS_BLOCK
        processes = min(_usable_cpus(), 1 + _idle_cpus()) if large else 1
    processes = max(1, min(int(processes), len(blocks)))
    payload = _remote_payload(worker) if processes > 1 else None
    if payload is None:
        for index in range(len(chunks)):
            yield worker(chunks[index])
        return
    logger.debug("transform: %d blocks over %d processes (%.0f MB of fitted reducer each)",
                 len(blocks), processes, len(payload) / 1e6)
    yield from _map_with_helpers(worker, payload, chunks, processes - 1, queued_per_helper=1)
