"""UMAP: embeddings down to a few dimensions for clustering, and to two for the map.

A reducer is any object with ``fit_transform(X) -> np.ndarray`` (scikit-learn's transformer shape), so a user may
pass ``sklearn.decomposition.PCA`` or their own. umap-learn compiles with numba on first use; its compiled code is
cached under ``NUMBA_CACHE_DIR`` (``~/.cache/clio_lite/numba`` unless set) so the cost is paid once per machine.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


def _ensure_numba_cache() -> None:
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "clio_lite" / "numba"))


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
    """

    def __init__(
        self,
        n_components: int = 5,
        n_neighbors: int = 15,
        min_dist: float = 0.0,
        metric: str = "cosine",
        random_state: int | None = None,
    ):
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.random_state = random_state

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
        _ensure_numba_cache()
        import umap

        self.model_ = umap.UMAP(
            n_components=self.n_components,
            n_neighbors=max(2, min(self.n_neighbors, n - 1)),
            min_dist=self.min_dist,
            metric=self.metric,
            random_state=self.random_state,
            # UMAP's spectral initialisation fails on tiny or disconnected graphs; random is always defined.
            init="spectral" if n > 50 else "random",
            low_memory=True,
            # A seed makes UMAP single-threaded anyway; saying so avoids its warning.
            n_jobs=1 if self.random_state is not None else -1,
        )
        return self.model_.fit_transform(X).astype(np.float32)
