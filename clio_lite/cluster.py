"""HDBSCAN's condensed tree turned into a multi-level hierarchy of clusters.

HDBSCAN is run once. Its condensed tree is a binary tree of clusters, each at least ``min_cluster_size`` points:
far too deep to browse. The hierarchy keeps a few *levels* of it, each an antichain of condensed-tree clusters:
the top level is found by splitting the largest cluster from the root until about ``top_clusters`` clusters exist,
each next level by splitting further until about ``branching`` times as many exist, and the last level is the
condensed tree's leaves. Nested by construction, every level-``j+1`` cluster lies inside exactly one level-``j``
cluster.

Membership follows the points: a point falls out of the condensed tree at some cluster; it belongs to the deepest
hierarchy node above that cluster and to all of that node's ancestors. A point that falls out above the top level
is *unclustered*. So a node's conversations are exactly its children's plus its own remainder.

A clusterer is any object with ``fit_hierarchy(X) -> Hierarchy``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

logger = logging.getLogger(__name__)


@dataclass
class Hierarchy:
    """A forest of clusters over ``n_points`` points, as plain arrays.

    Attributes
    ----------
    parent : np.ndarray of int
        ``parent[i]`` is node ``i``'s parent, ``-1`` for a top-level node. Nodes are numbered so that a parent
        comes before its children and siblings are ordered by size, largest first.
    assignment : np.ndarray of int
        For each point, the deepest node it belongs to, ``-1`` if it is unclustered.
    """

    parent: np.ndarray
    assignment: np.ndarray

    @property
    def n_nodes(self) -> int:
        return len(self.parent)

    def depth(self) -> np.ndarray:
        """Depth of each node, 1 for the top level."""
        depth = np.zeros(self.n_nodes, dtype=int)
        for node, parent in enumerate(self.parent):
            depth[node] = 1 if parent < 0 else depth[parent] + 1
        return depth

    def children(self) -> list[list[int]]:
        kids: list[list[int]] = [[] for _ in range(self.n_nodes)]
        for node, parent in enumerate(self.parent):
            if parent >= 0:
                kids[parent].append(node)
        return kids

    def members(self) -> list[np.ndarray]:
        """For each node, the sorted indices of all points in its subtree (its children's plus its remainder)."""
        own: list[list[np.ndarray]] = [[] for _ in range(self.n_nodes)]
        order = np.argsort(self.assignment, kind="stable")
        sorted_assignment = self.assignment[order]
        bounds = np.searchsorted(sorted_assignment, np.arange(self.n_nodes + 1))
        for node in range(self.n_nodes):
            own[node].append(order[bounds[node] : bounds[node + 1]])
        # Parents precede children, so a reverse sweep accumulates subtrees bottom-up.
        for node in range(self.n_nodes - 1, -1, -1):
            parent = self.parent[node]
            if parent >= 0:
                own[parent].extend(own[node])
        return [np.sort(np.concatenate(parts)) for parts in own]


class Clusterer(Protocol):
    """What the pipeline needs from a clusterer."""

    def fit_hierarchy(self, X: np.ndarray) -> Hierarchy: ...


def _level_targets(n_leaves: int, top_clusters: int, branching: int) -> list[int]:
    """Cluster counts for the levels above the leaves, coarsest first."""
    if n_leaves < 4:
        return []
    top = top_clusters if n_leaves > top_clusters else max(2, math.ceil(math.sqrt(n_leaves)))
    targets = []
    while top < n_leaves:
        targets.append(top)
        top *= max(2, branching)
    return targets


def hierarchy_from_condensed_tree(
    raw_tree: np.ndarray, n_points: int, top_clusters: int = 10, branching: int = 10
) -> Hierarchy:
    """Build a :class:`Hierarchy` from an HDBSCAN condensed tree (``condensed_tree_._raw_tree``)."""
    parent_of: dict[int, int] = {}
    cluster_children: dict[int, list[int]] = {}
    falls_from = np.full(n_points, -1, dtype=np.int64)
    for parent, child in zip(raw_tree["parent"].tolist(), raw_tree["child"].tolist(), strict=True):
        if child < n_points:
            falls_from[child] = parent
        else:
            parent_of[child] = parent
            cluster_children.setdefault(parent, []).append(child)
    root = n_points
    if root not in cluster_children and not (falls_from == root).any():
        return Hierarchy(parent=np.zeros(0, dtype=int), assignment=np.full(n_points, -1, dtype=int))

    # Subtree sizes in points, computed bottom-up (children have larger ids than their parents).
    size: dict[int, int] = {}
    own_counts = np.bincount(falls_from[falls_from >= 0] - root, minlength=1)
    clusters = sorted({root, *parent_of})
    for cluster in reversed(clusters):
        own = int(own_counts[cluster - root]) if cluster - root < len(own_counts) else 0
        size[cluster] = own + sum(size[c] for c in cluster_children.get(cluster, ()))

    def split_order(cluster: int) -> tuple[int, int]:
        return (-size[cluster], cluster)

    n_leaves = sum(1 for c in clusters if c not in cluster_children)
    levels: list[list[int]] = []
    frontier = [root]
    for target in [*_level_targets(n_leaves, top_clusters, branching), n_points + 1]:
        while len(frontier) < target:
            splittable = [c for c in frontier if c in cluster_children]
            if not splittable:
                break
            largest = min(splittable, key=split_order)
            frontier.remove(largest)
            frontier.extend(cluster_children[largest])
        if not levels or sorted(levels[-1]) != sorted(frontier):
            levels.append(sorted(frontier, key=split_order))

    # Each cluster becomes one node, at the first level where it appears; its parent is the nearest ancestor on
    # the level above. The root itself is a node only when it never split (one giant cluster).
    level_of: dict[int, int] = {}
    for depth, level in enumerate(levels):
        for cluster in level:
            level_of.setdefault(cluster, depth)

    def nearest_kept_ancestor(cluster: int) -> int:
        ancestor = parent_of.get(cluster, -1)
        while ancestor >= 0 and ancestor not in level_of:
            ancestor = parent_of.get(ancestor, -1)
        return ancestor

    node_of: dict[int, int] = {}
    parents: list[int] = []
    # Breadth-first from the top, siblings largest first, gives parents before children and stable numbering.
    queue = list(levels[0])
    kept_children: dict[int, list[int]] = {}
    for cluster in level_of:
        ancestor = nearest_kept_ancestor(cluster)
        if ancestor >= 0:
            kept_children.setdefault(ancestor, []).append(cluster)
    while queue:
        cluster = queue.pop(0)
        ancestor = nearest_kept_ancestor(cluster)
        node_of[cluster] = len(parents)
        parents.append(node_of.get(ancestor, -1))
        queue.extend(sorted(kept_children.get(cluster, []), key=split_order))

    # Each point goes to the node of the nearest kept cluster at or above the cluster it fell out of.
    nearest: dict[int, int] = {}
    for cluster in clusters:  # ascending ids: parents before children
        if cluster in node_of:
            nearest[cluster] = node_of[cluster]
        else:
            nearest[cluster] = nearest.get(parent_of.get(cluster, -1), -1)
    assignment = np.array([nearest.get(int(c), -1) for c in falls_from], dtype=int)
    return Hierarchy(parent=np.array(parents, dtype=int), assignment=assignment)


class HDBSCANClusterer:
    """HDBSCAN on the reduced vectors, then :func:`hierarchy_from_condensed_tree`.

    Parameters
    ----------
    min_cluster_size : int
        The smallest group HDBSCAN calls a cluster; the leaves of the hierarchy are at least this big.
    min_samples : int or None
        HDBSCAN's density smoothing; small values leave fewer points as noise.
    top_clusters : int
        About how many clusters the top level has.
    branching : int
        About how many times more clusters each level has than the one above.
    """

    def __init__(
        self, min_cluster_size: int = 50, min_samples: int | None = 5, top_clusters: int = 10, branching: int = 10
    ):
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.top_clusters = top_clusters
        self.branching = branching

    def fit_hierarchy(self, X: np.ndarray) -> Hierarchy:
        X = np.asarray(X, dtype=np.float64)
        n = len(X)
        min_cluster_size = max(2, self.min_cluster_size)
        if n < min_cluster_size or n < 3:
            logger.info("%d points are fewer than min_cluster_size=%d: nothing to cluster", n, min_cluster_size)
            return Hierarchy(parent=np.zeros(0, dtype=int), assignment=np.full(n, -1, dtype=int))
        import hdbscan

        self.model_ = hdbscan.HDBSCAN(
            min_cluster_size=min_cluster_size,
            min_samples=min(self.min_samples or min_cluster_size, n - 1),
            core_dist_n_jobs=1,
        ).fit(X)
        return hierarchy_from_condensed_tree(
            self.model_.condensed_tree_._raw_tree, n, top_clusters=self.top_clusters, branching=self.branching
        )
