"""Clusters and their hierarchy: HDBSCAN finds fine clusters, a dendrogram of them gives the levels above.

HDBSCAN runs once on the reduced vectors. The clusters it selects by excess of mass (its flat clustering, as in
BERTopic) are the finest clusters, each holding every point of its condensed-tree subtree; the points HDBSCAN calls
noise are *unclustered*, reported with their count (``cluster_selection_method="leaf"`` takes every leaf of the
condensed tree instead, the earlier default: finer, but every point that falls out of an inner cluster before it
splits then sits in a parent's remainder, 18% of CLINC150's queries, ``docs/quality.md``). The condensed
tree's upper splits are poor topic groups (they follow density in the UMAP space, whose global layout means little),
so the levels above come from a dendrogram of the fine clusters: with the scrubbed texts, average linkage on the
cosine between the clusters' TF-IDF profiles (what words they share); without texts, Ward on the clusters' centroids
in the *embedding* space. On the fixture corpus the TF-IDF dendrogram puts 96.6% of conversations in a top cluster
whose majority is their own category, against 72% for Ward on centroids (``docs/quality.md``).

HDBSCAN runs at half the leaf size (``min_cluster_size // 2``) so that small topics form clusters of their own
rather than hanging on a neighbour of another category; a split of the dendrogram is taken only if both sides hold
at least ``min_cluster_size`` points, so every node, leaves included, is at least that big.

Levels are cuts of that dendrogram: the top level has about ``top_clusters`` clusters, each next level about
``branching`` times as many, and the last level splits until no split is left. Nested by construction, a cluster
appears once, at the first level it reaches, so the tree can be ragged.

Membership follows the points: a point falls out of the condensed tree at some cluster. Below a leaf it belongs to
that leaf; falling out of an inner cluster (only with ``"leaf"`` selection), it belongs to the smallest dendrogram
group holding every leaf of that cluster; falling out of the root, it is *unclustered* (HDBSCAN's noise). A point
belongs to the deepest kept node at or above its group and to all that node's ancestors, so a node's conversations
are exactly its children's plus its own remainder (empty with ``"eom"`` until the privacy gate suppresses a child).

A clusterer is any object with ``fit_hierarchy(X, embeddings=None) -> Hierarchy``; the pipeline also passes
``texts=`` (the scrubbed texts) to one whose ``fit_hierarchy`` accepts it.
"""

from __future__ import annotations

import functools
import logging
import math
from collections import deque
from collections.abc import Sequence
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
    reassigned : int
        Points moved into a leaf by ``assign_outliers`` (0 otherwise).
    """

    parent: np.ndarray
    assignment: np.ndarray
    #: How many points were moved from a remainder or from noise into their nearest leaf (``assign_outliers``).
    reassigned: int = 0

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

    def fit_hierarchy(self, X: np.ndarray, embeddings: np.ndarray | None = None) -> Hierarchy: ...  # texts=None


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


def _empty(n_points: int) -> Hierarchy:
    return Hierarchy(parent=np.zeros(0, dtype=int), assignment=np.full(n_points, -1, dtype=int))


def _parse_condensed_tree(raw_tree: np.ndarray, n_points: int):
    """Cluster parents, cluster children, and the cluster each point falls out of."""
    parent_of: dict[int, int] = {}
    children: dict[int, list[int]] = {}
    falls_from = np.full(n_points, -1, dtype=np.int64)
    for parent, child in zip(raw_tree["parent"].tolist(), raw_tree["child"].tolist(), strict=True):
        if child < n_points:
            falls_from[child] = parent
        else:
            parent_of[child] = parent
            children.setdefault(parent, []).append(child)
    return parent_of, children, falls_from


def prune_to_selected(raw_tree: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The condensed tree cut below the clusters HDBSCAN selected, with HDBSCAN's noise made unclustered.

    ``labels`` are HDBSCAN's flat labels (``labels_``, -1 for noise) from the same fit. A selected cluster is the
    ancestor of all its points' clusters (condensed-tree clusters are numbered parents first), so it is the smallest
    cluster id its points fall out of. Every point of a selected cluster then falls out of it directly; the clusters
    below it go, and so do branches holding no selected cluster. Every point HDBSCAN called noise falls out of the
    root, so that :func:`hierarchy_from_condensed_tree` reports it as unclustered rather than hiding it in the
    remainder of an unselected cluster it fell out of. If HDBSCAN selected nothing (the root never split), the tree
    is returned as it is: one cluster of everything.
    """
    labels = np.asarray(labels)
    n_points = len(labels)
    if not (labels >= 0).any():
        return raw_tree
    is_point = raw_tree["child"] < n_points
    falls_from = np.full(n_points, -1, dtype=np.int64)
    falls_from[raw_tree["child"][is_point]] = raw_tree["parent"][is_point]
    selected = np.full(int(labels.max()) + 1, np.iinfo(np.int64).max)
    np.minimum.at(selected, labels[labels >= 0], falls_from[labels >= 0])
    parent_of = dict(zip(raw_tree["child"][~is_point].tolist(), raw_tree["parent"][~is_point].tolist(), strict=True))
    # The clusters kept: the selected ones and their ancestors (an unselected branch holds only noise).
    kept = set()
    for cluster in selected.tolist():
        while cluster >= 0 and cluster not in kept:
            kept.add(cluster)
            cluster = parent_of.get(cluster, -1)

    pruned = raw_tree.copy()
    point_rows = np.flatnonzero(is_point)
    point_labels = labels[pruned["child"][point_rows]]
    root = n_points
    pruned["parent"][point_rows] = np.where(point_labels >= 0, selected[np.maximum(point_labels, 0)], root)
    keep = np.ones(len(pruned), dtype=bool)
    cluster_rows = np.flatnonzero(~is_point)
    keep[cluster_rows] = [int(c) in kept for c in pruned["child"][cluster_rows]]
    return pruned[keep]


def hierarchy_from_condensed_tree(
    raw_tree: np.ndarray,
    embeddings: np.ndarray,
    top_clusters: int = 10,
    branching: int = 10,
    assign_outliers: bool = False,
    texts: Sequence[str] | None = None,
    min_node_size: int = 1,
) -> Hierarchy:
    """Build a :class:`Hierarchy` from an HDBSCAN condensed tree (``condensed_tree_._raw_tree``).

    ``embeddings`` has one row per clustered point. With ``texts`` (one per point), the condensed tree's leaves are
    grouped by the cosine between their TF-IDF profiles (average linkage); without, by Ward on their centroids in
    ``embeddings``. A split of that dendrogram is kept only if both sides hold at least ``min_node_size`` points.
    With ``assign_outliers``, a point that would sit in a parent's remainder moves to the nearest condensed-tree leaf
    (by cosine to the leaf centroids in ``embeddings``) below that parent, and an unclustered point to the nearest
    leaf of all.
    """
    from scipy.cluster.hierarchy import linkage

    n_points = len(embeddings)
    parent_of, cluster_children, falls_from = _parse_condensed_tree(raw_tree, n_points)
    root = n_points
    if not (falls_from >= 0).any():
        return _empty(n_points)
    clusters = sorted({root, *parent_of})
    leaves = [c for c in clusters if c not in cluster_children]  # the root alone when it never split

    # The grouping tree: leaves are nodes 0..L-1; a Ward dendrogram over their centroids adds nodes L..2L-2.
    leaf_index = {leaf: i for i, leaf in enumerate(leaves)}
    point_leaf = np.array([leaf_index.get(int(c), -1) for c in falls_from])
    n_leaves = len(leaves)
    counts = np.bincount(point_leaf[point_leaf >= 0], minlength=n_leaves)
    merged_into = np.arange(n_leaves)
    if texts is not None:
        profiles = _leaf_profiles(texts, point_leaf, n_leaves)
    if min_node_size > 1 and n_leaves > 1 and counts.min() < min_node_size:
        vectors = profiles if texts is not None else _leaf_centroids(embeddings, point_leaf, n_leaves)
        merged_into = _merge_small_leaves(vectors, counts, min_node_size)
        leaf_index = {leaf: int(merged_into[i]) for leaf, i in leaf_index.items()}
        point_leaf = np.where(point_leaf >= 0, merged_into[np.maximum(point_leaf, 0)], -1)
        n_leaves = int(merged_into.max()) + 1
    centroids = _leaf_centroids(embeddings, point_leaf, n_leaves)
    tree_children: dict[int, list[int]] = {}
    tree_parent = np.full(max(1, 2 * n_leaves - 1), -1, dtype=int)
    height = np.zeros(len(tree_parent))
    if n_leaves > 1:
        if texts is not None:
            merges = linkage(_group_distances(profiles, merged_into), method="average")
        else:
            merges = linkage(centroids, method="ward")
        for k, (a, b, distance, _) in enumerate(merges):
            node = n_leaves + k
            tree_children[node] = [int(a), int(b)]
            tree_parent[[int(a), int(b)]] = node
            height[node] = distance
    tree_root = len(tree_parent) - 1

    def lowest_common(a: int, b: int) -> int:
        above_a = set()
        while a >= 0:
            above_a.add(a)
            a = tree_parent[a]
        while b not in above_a:
            b = tree_parent[b]
        return b

    # Points that fell out of an inner condensed cluster go to the smallest group holding all of its leaves,
    # found bottom-up (children have larger ids than their parents).
    group_of: dict[int, int] = {}
    for cluster in reversed(clusters):
        kids = cluster_children.get(cluster)
        group_of[cluster] = functools.reduce(lowest_common, map(group_of.get, kids)) if kids else leaf_index[cluster]
    point_group = np.array(
        [point_leaf[p] if point_leaf[p] >= 0 else group_of[int(c)] for p, c in enumerate(falls_from)]
    )
    if root in cluster_children:  # points that fell out of a split root are HDBSCAN's noise
        point_group[falls_from == root] = -1

    reassigned = 0
    if assign_outliers:
        point_group, reassigned = _nearest_leaves(point_group, n_leaves, tree_children, embeddings, centroids)

    size = np.bincount(point_group[point_group >= 0], minlength=len(tree_parent))
    for node in range(n_leaves, len(tree_parent)):  # children precede parents in a linkage matrix
        size[node] += sum(size[child] for child in tree_children[node])

    levels = _cut_levels(tree_root, tree_children, height, n_leaves, top_clusters, branching)
    hierarchy = _keep_levels(levels, tree_parent, size, point_group)
    hierarchy.reassigned = reassigned
    return hierarchy


def _merge_small_leaves(vectors: np.ndarray, counts: np.ndarray, min_size: int) -> np.ndarray:
    """Merge leaves of fewer than ``min_size`` points into their most similar leaf, smallest first.

    ``vectors`` has one row per leaf (its profile), ``counts`` its number of points; a merged leaf's profile is the
    count-weighted sum of its parts'. Returns, for each leaf, the index of the merged leaf it became (numbered 0..
    in order). Similarity is cosine; ties go to the lower index.
    """
    n_leaves = len(counts)
    group = np.arange(n_leaves)
    if n_leaves <= 1 or min_size <= 1:
        return group
    sums = np.asarray(vectors, dtype=np.float64) * counts[:, None]
    counts = counts.astype(float).copy()
    alive = np.ones(n_leaves, dtype=bool)
    while alive.sum() > 1:
        live = np.flatnonzero(alive)
        smallest = live[np.argmin(counts[live])]  # argmin takes the lowest index among equals
        if counts[smallest] >= min_size:
            break
        others = live[live != smallest]
        unit = sums[others] / np.maximum(np.linalg.norm(sums[others], axis=1, keepdims=True), 1e-12)
        target = others[np.argmax(unit @ sums[smallest])]
        sums[target] += sums[smallest]
        counts[target] += counts[smallest]
        alive[smallest] = False
        group[group == smallest] = target
    _, renumbered = np.unique(group, return_inverse=True)
    return renumbered


def _group_distances(profiles: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Condensed distances between groups of fine leaves: the mean cosine distance over their pairs of fine leaves.

    Averaging over the fine leaves (not over merged profiles) keeps the average linkage of the fine leaves, which
    groups them into the top categories better than profiles blurred by merging.
    """
    from scipy.spatial.distance import squareform

    fine = np.clip(1.0 - profiles @ profiles.T, 0.0, 2.0)
    members = np.eye(group.max() + 1)[group]  # fine leaf x group indicator
    sizes = members.sum(axis=0)
    between = members.T @ fine @ members / np.outer(sizes, sizes)
    np.fill_diagonal(between, 0.0)
    return squareform((between + between.T) / 2, checks=False)


def _leaf_profiles(texts: Sequence[str], point_leaf: np.ndarray, n_leaves: int) -> np.ndarray:
    """Each leaf's TF-IDF profile: its members' texts as one document, sublinear term frequency, unit length.

    Words used in a single leaf say nothing about which leaves belong together, so only words of two or more leaves
    count; a leaf left with no word gets a tiny uniform profile (cosine is undefined on zero vectors).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    documents = [" ".join(texts[p] for p in np.flatnonzero(point_leaf == i)) for i in range(n_leaves)]
    vectorizer = TfidfVectorizer(
        stop_words="english", sublinear_tf=True, min_df=2, token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b"
    )
    try:
        profiles = vectorizer.fit_transform(documents).toarray()
    except ValueError:  # no word in two leaves
        profiles = np.zeros((n_leaves, 1))
    empty = ~profiles.any(axis=1)
    profiles[empty] = 1e-9
    return profiles / np.linalg.norm(profiles, axis=1, keepdims=True)


def _leaf_centroids(embeddings: np.ndarray, point_leaf: np.ndarray, n_leaves: int) -> np.ndarray:
    """Each leaf's mean embedding, scaled to unit length (a zero mean stays zero)."""
    space = np.asarray(embeddings, dtype=np.float64)
    if n_leaves == 0:
        return np.zeros((0, space.shape[1]))
    centroids = np.stack([space[point_leaf == i].mean(axis=0) for i in range(n_leaves)])
    norms = np.linalg.norm(centroids, axis=1, keepdims=True)
    return np.divide(centroids, norms, out=centroids, where=norms > 0)


def _nearest_leaves(point_group, n_leaves, tree_children, embeddings, centroids) -> tuple[np.ndarray, int]:
    """Move every point not in a leaf to the most similar leaf centroid below its group (or of all, if noise)."""
    outside = np.flatnonzero(point_group >= n_leaves) if n_leaves else np.zeros(0, dtype=int)
    noise = np.flatnonzero(point_group < 0)
    if n_leaves == 0 or (len(outside) == 0 and len(noise) == 0):
        return point_group, 0
    # A point's own length does not change which centroid it is most similar to, so points are not normalised.
    space = np.asarray(embeddings, dtype=np.float64)

    def leaves_below(node: int) -> np.ndarray:
        stack, found = [node], []
        while stack:
            current = stack.pop()
            if current < n_leaves:
                found.append(current)
            else:
                stack.extend(tree_children[current])
        return np.array(sorted(found))

    moved = point_group.copy()
    groups = [(group, np.flatnonzero(point_group == group)) for group in np.unique(point_group[outside])]
    groups.append((-1, noise))
    for group, points in groups:
        if len(points) == 0:
            continue
        candidates = np.arange(n_leaves) if group < 0 else leaves_below(int(group))
        similarity = space[points] @ centroids[candidates].T
        moved[points] = candidates[np.argmax(similarity, axis=1)]
    return moved, int(len(outside) + len(noise))


def _cut_levels(root, children, height, n_leaves, top_clusters, branching) -> list[list[int]]:
    """Antichains of the grouping tree: split the highest merge first until each level's target count."""
    levels: list[list[int]] = []
    frontier = [root]
    for target in [*_level_targets(n_leaves, top_clusters, branching), n_leaves]:
        while len(frontier) < target:
            splittable = [node for node in frontier if node in children]
            if not splittable:
                break
            highest = max(splittable, key=lambda node: (height[node], node))
            frontier.remove(highest)
            frontier.extend(children[highest])
        if not levels or sorted(levels[-1]) != sorted(frontier):
            levels.append(list(frontier))
    return levels


def _keep_levels(levels, tree_parent, size, point_group) -> Hierarchy:
    """Number the kept nodes breadth-first (siblings largest first) and assign each point its deepest kept node."""
    first_level: dict[int, int] = {}
    for depth, level in enumerate(levels):
        for node in level:
            first_level.setdefault(node, depth)

    def kept_ancestor(node: int) -> int:
        node = tree_parent[node] if node >= 0 else -1
        while node >= 0 and node not in first_level:
            node = tree_parent[node]
        return node

    def by_size(node: int) -> tuple[int, int]:
        return (-int(size[node]), node)

    kept_children: dict[int, list[int]] = {}
    for node in first_level:
        kept_children.setdefault(kept_ancestor(node), []).append(node)
    number: dict[int, int] = {}
    parents: list[int] = []
    queue = deque(sorted(levels[0], key=by_size))
    while queue:
        node = queue.popleft()
        number[node] = len(parents)
        parents.append(number.get(kept_ancestor(node), -1))
        queue.extend(sorted(kept_children.get(node, []), key=by_size))

    def deepest_kept(node: int) -> int:
        while node >= 0 and node not in number:
            node = tree_parent[node]
        return number.get(node, -1)

    cache: dict[int, int] = {}
    assignment = np.array(
        [-1 if g < 0 else cache.setdefault(int(g), deepest_kept(int(g))) for g in point_group], dtype=int
    )
    return Hierarchy(parent=np.array(parents, dtype=int), assignment=assignment)


class HDBSCANClusterer:
    """HDBSCAN on the reduced vectors, then :func:`hierarchy_from_condensed_tree`.

    Parameters
    ----------
    min_cluster_size : int
        The smallest node of the hierarchy: leaves and every level above are at least this big.
    hdbscan_min_cluster_size : int or None
        The smallest group HDBSCAN itself calls a cluster; ``None`` means half of ``min_cluster_size``, so that
        small topics are found apart and then grouped with their like (see the module docstring).
    min_samples : int or None
        HDBSCAN's density smoothing; ``None`` means HDBSCAN's own default, the HDBSCAN cluster size, which leaves
        many more points as noise.
    cluster_selection_method : {"eom", "leaf"}
        ``"eom"`` (default): HDBSCAN's excess-of-mass clusters are the leaves and its noise is unclustered.
        ``"leaf"``: every leaf of the condensed tree is a leaf, and points that fell out of an inner cluster sit in
        a parent's remainder (finer leaves, far more points outside them).
    cluster_selection_epsilon : float
        HDBSCAN's ``cluster_selection_epsilon``: clusters closer than this (in the reduced space) are not split.
        0.1 cut CLINC150's outliers from 9.9% to 4.4% and raised its leaf ARI from 0.35 to 0.59; 0.2 merged
        Topical-Chat's topics (``docs/quality.md``).
    top_clusters : int
        About how many clusters the top level has.
    branching : int
        About how many times more clusters each level has than the one above.
    assign_outliers : bool
        Move every point that would be left in a parent's remainder or unclustered into its nearest leaf (soft
        membership). The privacy gate runs afterwards, so moved points are gated like any other.
    """

    def __init__(
        self,
        min_cluster_size: int = 50,
        hdbscan_min_cluster_size: int | None = None,
        min_samples: int | None = 5,
        top_clusters: int = 10,
        branching: int = 10,
        assign_outliers: bool = False,
        cluster_selection_method: str = "eom",
        cluster_selection_epsilon: float = 0.1,
    ):
        self.min_cluster_size = min_cluster_size
        self.hdbscan_min_cluster_size = hdbscan_min_cluster_size
        self.min_samples = min_samples
        self.cluster_selection_method = cluster_selection_method
        self.cluster_selection_epsilon = cluster_selection_epsilon
        self.top_clusters = top_clusters
        self.branching = branching
        self.assign_outliers = assign_outliers

    def fit_hierarchy(
        self, X: np.ndarray, embeddings: np.ndarray | None = None, texts: Sequence[str] | None = None
    ) -> Hierarchy:
        """Cluster ``X`` (the reduced vectors) and build the levels.

        Fine clusters are grouped by their ``texts`` (one per point, the scrubbed texts) when given, else by their
        centroids in ``embeddings`` (default ``X``).
        """
        X = np.asarray(X, dtype=np.float64)
        n = len(X)
        min_cluster_size = max(2, self.min_cluster_size)
        if n < min_cluster_size or n < 3:
            logger.info("%d points are fewer than min_cluster_size=%d: nothing to cluster", n, min_cluster_size)
            return _empty(n)
        import hdbscan

        fine_size = self.hdbscan_min_cluster_size or max(2, min_cluster_size // 2)
        self.model_ = hdbscan.HDBSCAN(
            min_cluster_size=fine_size,
            min_samples=min(self.min_samples or fine_size, n - 1),
            cluster_selection_method=self.cluster_selection_method,
            cluster_selection_epsilon=self.cluster_selection_epsilon,
            core_dist_n_jobs=1,
        ).fit(X)
        raw_tree = self.model_.condensed_tree_._raw_tree
        if self.cluster_selection_method != "leaf" or self.cluster_selection_epsilon > 0:
            raw_tree = prune_to_selected(raw_tree, self.model_.labels_)
        return hierarchy_from_condensed_tree(
            raw_tree,
            X if embeddings is None else embeddings,
            top_clusters=self.top_clusters,
            branching=self.branching,
            assign_outliers=self.assign_outliers,
            texts=texts,
            min_node_size=min_cluster_size,
        )
