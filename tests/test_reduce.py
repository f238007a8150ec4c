"""UMAP reduction: shapes, seeded reproducibility, and tiny inputs."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import make_blobs

from clio_lite.reduce import UMAPReducer


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
