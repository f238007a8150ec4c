"""Tests for the cluster hierarchy: ``clio_lite.cluster`` (real HDBSCAN on synthetic blobs)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import make_blobs

from clio_lite.cluster import HDBSCANClusterer, Hierarchy, hierarchy_from_condensed_tree, prune_to_selected


def blobs(n_points: int, n_centers: int, std: float, seed: int = 0, n_features: int = 5) -> np.ndarray:
    X, _ = make_blobs(
        n_samples=n_points, centers=n_centers, n_features=n_features, cluster_std=std, center_box=(-50, 50),
        random_state=seed,
    )
    return X


def check_structure(h: Hierarchy, n_points: int) -> None:
    """The structural invariants every hierarchy must satisfy; asserts each one."""
    parent = h.parent
    assert h.assignment.shape == (n_points,)
    assert ((h.assignment >= -1) & (h.assignment < h.n_nodes)).all()
    # Parents precede their children.
    for node, p in enumerate(parent):
        assert p < node
    members = h.members()
    children = h.children()
    for node in range(h.n_nodes):
        # Siblings ordered by size, largest first.
        sizes = [len(members[c]) for c in children[node]]
        assert sizes == sorted(sizes, reverse=True)
        # A node's members are exactly its children's plus its own remainder.
        union = set(np.flatnonzero(h.assignment == node))
        for child in children[node]:
            child_set = set(members[child].tolist())
            assert child_set <= set(members[node].tolist())
            assert not (union & child_set)  # children are disjoint from each other and from the remainder
            union |= child_set
        assert union == set(members[node].tolist())
        assert len(members[node]) == len(set(members[node].tolist()))
    roots = [n for n in range(h.n_nodes) if parent[n] < 0]
    root_sizes = [len(members[r]) for r in roots]
    assert root_sizes == sorted(root_sizes, reverse=True)
    # Unclustered points are exactly those in no node.
    clustered = set().union(*(set(members[r].tolist()) for r in roots)) if roots else set()
    assert clustered == set(np.flatnonzero(h.assignment >= 0).tolist())
    assert sum(root_sizes) == int((h.assignment >= 0).sum())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_centers=st.integers(1, 12),
    std=st.floats(0.05, 4.0),
    n_points=st.integers(3, 600),
    min_cluster_size=st.integers(2, 40),
    top_clusters=st.integers(1, 12),
    branching=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_fit_hierarchy_is_well_formed_on_random_blobs(
    n_centers: int, std: float, n_points: int, min_cluster_size: int, top_clusters: int, branching: int, seed: int
) -> None:
    X = blobs(n_points, n_centers, std, seed)
    h = HDBSCANClusterer(
        min_cluster_size=min_cluster_size, top_clusters=top_clusters, branching=branching
    ).fit_hierarchy(X)
    check_structure(h, n_points)
    # Every node is a condensed-tree cluster (or the unsplit root): never smaller than min_cluster_size.
    assert all(len(m) >= min_cluster_size for m in h.members())


def test_forty_separated_blobs_give_at_least_two_levels_with_about_top_clusters_on_top() -> None:
    X = blobs(4000, 40, 0.3)
    h = HDBSCANClusterer(min_cluster_size=20, top_clusters=10, branching=10).fit_hierarchy(X)
    check_structure(h, len(X))
    depth = h.depth()
    assert depth.max() >= 2
    n_top = int((h.parent < 0).sum())
    assert 10 <= n_top <= 20
    # The finest level resolves the 40 blobs: 40 nodes without children.
    leaves = [n for n, kids in enumerate(h.children()) if not kids]
    assert len(leaves) == 40
    assert sorted(len(m) for m in (h.members()[n] for n in leaves)) == [100] * 40


def test_depth_is_one_for_top_level_and_parent_plus_one_below() -> None:
    h = HDBSCANClusterer(min_cluster_size=20, top_clusters=4).fit_hierarchy(blobs(2000, 20, 0.3))
    depth = h.depth()
    assert depth.max() >= 2
    for node, p in enumerate(h.parent):
        assert depth[node] == (1 if p < 0 else depth[p] + 1)


def test_unclustered_points_are_exactly_assignment_minus_one_and_in_no_node() -> None:
    rng = np.random.RandomState(1)
    X = np.vstack([blobs(600, 6, 0.3, seed=1), rng.uniform(-60, 60, size=(150, 5))])
    h = HDBSCANClusterer(min_cluster_size=30, top_clusters=3).fit_hierarchy(X)
    unclustered = np.flatnonzero(h.assignment == -1)
    assert len(unclustered) > 0  # the scattered points fall out above the top level
    assert h.n_nodes > 0
    for m in h.members():
        assert not set(m.tolist()) & set(unclustered.tolist())
    check_structure(h, len(X))


def test_same_input_gives_identical_hierarchy_twice() -> None:
    X = blobs(1500, 15, 0.5, seed=3)
    first = HDBSCANClusterer(min_cluster_size=15, top_clusters=5).fit_hierarchy(X)
    second = HDBSCANClusterer(min_cluster_size=15, top_clusters=5).fit_hierarchy(X.copy())
    assert first.n_nodes > 1
    np.testing.assert_array_equal(first.parent, second.parent)
    np.testing.assert_array_equal(first.assignment, second.assignment)


def test_fewer_points_than_min_cluster_size_gives_no_nodes_and_all_unclustered() -> None:
    X = blobs(10, 1, 0.1)
    h = HDBSCANClusterer(min_cluster_size=11).fit_hierarchy(X)
    assert h.n_nodes == 0
    np.testing.assert_array_equal(h.assignment, np.full(10, -1))
    assert h.members() == []


def test_no_points_gives_empty_hierarchy() -> None:
    h = HDBSCANClusterer(min_cluster_size=2).fit_hierarchy(np.zeros((0, 5)))
    assert h.n_nodes == 0 and len(h.assignment) == 0


def test_single_tight_blob_is_one_giant_cluster() -> None:
    X = np.random.RandomState(0).normal(scale=0.01, size=(300, 5))
    h = HDBSCANClusterer(min_cluster_size=20).fit_hierarchy(X)
    check_structure(h, len(X))
    roots = [n for n in range(h.n_nodes) if h.parent[n] < 0]
    assert len(roots) == 1
    assert len(h.members()[roots[0]]) == 300
    assert (h.assignment >= 0).all()


def test_duplicate_points_do_not_crash_and_form_one_cluster() -> None:
    X = np.ones((60, 5))
    h = HDBSCANClusterer(min_cluster_size=5).fit_hierarchy(X)
    check_structure(h, len(X))
    assert (h.parent < 0).sum() == 1
    assert (h.assignment >= 0).all()


@pytest.mark.parametrize("min_cluster_size", [2, 3])
def test_three_points_cluster_without_crashing(min_cluster_size: int) -> None:
    X = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1]])
    h = HDBSCANClusterer(min_cluster_size=min_cluster_size).fit_hierarchy(X)
    check_structure(h, 3)
    assert h.n_nodes >= 1


def test_three_points_below_min_cluster_size_are_all_unclustered() -> None:
    h = HDBSCANClusterer(min_cluster_size=4).fit_hierarchy(np.eye(3))
    assert h.n_nodes == 0
    np.testing.assert_array_equal(h.assignment, [-1, -1, -1])


def test_hand_made_condensed_tree_gives_expected_levels_and_assignment() -> None:
    # A condensed tree over 10 points: root 10 splits into clusters 11 (points 0-5) and 12 (points 6-9); 11 splits
    # into 13 (points 0-2) and 14 (points 3-4), point 5 falling out of 11 itself; 12 splits into 15 and 16.
    rows = [
        (10, 11, 1.0, 6), (10, 12, 1.0, 4),
        (11, 13, 2.0, 3), (11, 14, 2.0, 2), (11, 5, 1.5, 1), (12, 15, 2.0, 2), (12, 16, 2.0, 2),
        (13, 0, 3.0, 1), (13, 1, 3.0, 1), (13, 2, 3.0, 1), (14, 3, 3.0, 1), (14, 4, 3.0, 1),
        (15, 6, 3.0, 1), (15, 7, 3.0, 1), (16, 8, 3.0, 1), (16, 9, 3.0, 1),
    ]
    dtype = [("parent", np.intp), ("child", np.intp), ("lambda_val", float), ("child_size", np.intp)]
    # Leaves 13 and 14 lie close together in the embedding space, and so do 15 and 16.
    embeddings = np.array([[1, 0]] * 3 + [[1, 0.1]] * 2 + [[1, 0.05]] + [[0, 1]] * 2 + [[0.1, 1]] * 2, dtype=float)
    h = hierarchy_from_condensed_tree(np.array(rows, dtype=dtype), embeddings, top_clusters=2, branching=2)
    # Top level {11, 12}, largest first; then 11's children 13 and 14, then 12's children 15 and 16.
    np.testing.assert_array_equal(h.parent, [-1, -1, 0, 0, 1, 1])
    np.testing.assert_array_equal(h.assignment, [2, 2, 2, 3, 3, 0, 4, 4, 5, 5])
    members = h.members()
    assert members[0].tolist() == [0, 1, 2, 3, 4, 5]
    assert members[1].tolist() == [6, 7, 8, 9]
    check_structure(h, 10)


def test_points_falling_out_of_a_split_root_are_unclustered() -> None:
    rows = [
        (6, 7, 1.0, 2), (6, 8, 1.0, 2), (6, 4, 0.5, 1), (6, 5, 0.5, 1),
        (7, 0, 2.0, 1), (7, 1, 2.0, 1), (8, 2, 2.0, 1), (8, 3, 2.0, 1),
    ]
    dtype = [("parent", np.intp), ("child", np.intp), ("lambda_val", float), ("child_size", np.intp)]
    h = hierarchy_from_condensed_tree(np.array(rows, dtype=dtype), np.arange(12.0).reshape(6, 2))
    np.testing.assert_array_equal(h.parent, [-1, -1])
    np.testing.assert_array_equal(h.assignment, [0, 0, 1, 1, -1, -1])


def test_assign_outliers_moves_every_remainder_and_noise_point_into_a_leaf_below_its_node() -> None:
    rng = np.random.default_rng(0)
    X = np.vstack([blobs(1500, 30, 4.0, seed=3), rng.uniform(-60, 60, size=(300, 5))])
    plain = HDBSCANClusterer(min_cluster_size=25).fit_hierarchy(X)
    moved = HDBSCANClusterer(min_cluster_size=25, assign_outliers=True).fit_hierarchy(X)
    plain_kids, moved_kids = plain.children(), moved.children()
    plain_leaves = {n for n in range(plain.n_nodes) if not plain_kids[n]}
    moved_leaves = {n for n in range(moved.n_nodes) if not moved_kids[n]}
    outside = [p for p, node in enumerate(plain.assignment) if node not in plain_leaves]
    assert len(outside) > 20  # the noise and the remainders the option is about
    assert moved.reassigned == len(outside)
    assert plain.reassigned == 0
    assert all(node in moved_leaves for node in moved.assignment)
    assert len(moved_leaves) == len(plain_leaves)
    # A point from a parent's remainder stays under that parent: same top-level cluster, by membership.
    plain_members, moved_members = plain.members(), moved.members()
    plain_top = {p: n for n in np.flatnonzero(plain.parent < 0) for p in plain_members[n]}
    moved_top = {p: n for n in np.flatnonzero(moved.parent < 0) for p in moved_members[n]}
    pairs = {(plain_top[p], moved_top[p]) for p in plain_top}
    assert len(pairs) == len({a for a, _ in pairs})  # each old top cluster maps to one new top cluster


def test_small_hdbscan_clusters_merge_into_a_leaf_so_every_node_reaches_min_cluster_size() -> None:
    # Blobs of 15 points are clusters for HDBSCAN at half the leaf size (20), not leaves of their own at 40.
    # Like sentence embeddings, the blobs differ by direction (leaves are compared by cosine).
    centers = np.array([[10, 0, 0], [0, 10, 0], [10, 3, 0], [3, 10, 0], [0, 0, 10]])
    X, y = make_blobs(n_samples=[200, 200, 15, 15, 200], centers=centers, cluster_std=0.3, random_state=0)
    neighbour = np.array([0, 1, 0, 1, 2])[y]  # the big blob each point is, or lies next to
    h = HDBSCANClusterer(min_cluster_size=40, top_clusters=2).fit_hierarchy(X)
    check_structure(h, len(X))
    members = h.members()
    assert all(len(m) >= 40 for m in members)
    leaves = [n for n, kids in enumerate(h.children()) if not kids]
    # Each small blob joined the big blob it lies next to: no leaf holds points of two big blobs.
    for leaf in leaves:
        assert len(np.unique(neighbour[members[leaf]])) == 1
    # Merged into their neighbours, the small blobs end in a leaf rather than being left out.
    in_leaf = np.isin(h.assignment, leaves)
    assert in_leaf[(y == 2) | (y == 3)].mean() > 0.8


def test_texts_group_leaves_by_the_words_they_share_rather_than_by_position() -> None:
    # Four blobs: the first two point the same way, and so do the last two, but the texts pair the first with the
    # third.
    centers = np.array([[10.0, 0, 0], [10, 3, 0], [0, 0, 10], [3, 0, 10]])
    X, y = make_blobs(n_samples=[60] * 4, centers=centers, cluster_std=0.3, random_state=0)
    words = [
        "python pandas code error", "pasta tomato recipe garlic", "python numpy code bug", "pasta basil recipe oil"
    ]
    texts = [words[label] for label in y]
    by_space = HDBSCANClusterer(min_cluster_size=20, top_clusters=2).fit_hierarchy(X)
    by_text = HDBSCANClusterer(min_cluster_size=20, top_clusters=2).fit_hierarchy(X, texts=texts)
    for h in (by_space, by_text):
        check_structure(h, len(X))
        assert (h.parent < 0).sum() == 2

    def top_groups(h: Hierarchy) -> set[frozenset[int]]:
        members = h.members()
        return {frozenset(np.unique(y[members[r]]).tolist()) for r in np.flatnonzero(h.parent < 0)}

    assert top_groups(by_space) == {frozenset({0, 1}), frozenset({2, 3})}
    assert top_groups(by_text) == {frozenset({0, 2}), frozenset({1, 3})}


def test_grouping_by_texts_is_deterministic_and_leaves_keep_every_invariant() -> None:
    X, y = make_blobs(n_samples=900, centers=9, n_features=5, cluster_std=0.4, center_box=(-30, 30), random_state=2)
    vocabulary = ["alpha beta", "gamma delta", "epsilon zeta"]
    texts = [f"{vocabulary[label % 3]} word{label}" for label in y]
    first = HDBSCANClusterer(min_cluster_size=30, top_clusters=3).fit_hierarchy(X, texts=texts)
    second = HDBSCANClusterer(min_cluster_size=30, top_clusters=3).fit_hierarchy(X.copy(), texts=list(texts))
    check_structure(first, len(X))
    np.testing.assert_array_equal(first.parent, second.parent)
    np.testing.assert_array_equal(first.assignment, second.assignment)
    members = first.members()
    # The three top clusters are the three vocabularies.
    tops = [set((y[members[r]] % 3).tolist()) for r in np.flatnonzero(first.parent < 0)]
    assert sorted(len(t) for t in tops) == [1, 1, 1]


def test_all_noise_gives_no_nodes_and_every_point_unclustered() -> None:
    X = np.random.RandomState(0).uniform(-100, 100, size=(40, 5))
    h = HDBSCANClusterer(min_cluster_size=30).fit_hierarchy(X, texts=["same words"] * 40)
    check_structure(h, len(X))
    assert h.n_nodes <= 1  # at most the unsplit root
    if h.n_nodes == 0:
        assert (h.assignment == -1).all()


def test_duplicate_texts_and_points_with_texts_form_one_cluster() -> None:
    h = HDBSCANClusterer(min_cluster_size=5).fit_hierarchy(np.ones((60, 5)), texts=["the very same text"] * 60)
    check_structure(h, 60)
    assert (h.parent < 0).sum() == 1
    assert (h.assignment >= 0).all()


def canonical_tree(h: Hierarchy, original_index: np.ndarray) -> set[tuple[frozenset[int], frozenset[int]]]:
    """The tree as (members, parent's members) pairs in original point indices: equal trees up to node numbering."""
    members = [frozenset(original_index[m].tolist()) for m in h.members()]
    return {(members[node], members[p] if p >= 0 else frozenset()) for node, p in enumerate(h.parent)}


@pytest.mark.parametrize("with_texts", [False, True])
def test_shuffling_the_points_gives_the_same_tree_up_to_node_numbering(with_texts: bool) -> None:
    X, y = make_blobs(
        n_samples=1200, centers=12, n_features=5, cluster_std=1.5, center_box=(-30, 30), random_state=4
    )
    texts = [f"topic{label % 4} word{label}" for label in y] if with_texts else None
    clusterer = HDBSCANClusterer(min_cluster_size=30, top_clusters=4)
    first = clusterer.fit_hierarchy(X, texts=texts)
    permutation = np.random.default_rng(5).permutation(len(X))
    shuffled = clusterer.fit_hierarchy(X[permutation], texts=None if texts is None else [texts[i] for i in permutation])
    assert first.depth().max() >= 2
    assert canonical_tree(first, np.arange(len(X))) == canonical_tree(shuffled, permutation)
    # The unclustered points are the same points.
    assert set(np.flatnonzero(first.assignment < 0)) == set(permutation[shuffled.assignment < 0].tolist())


def test_selected_clusters_become_leaves_holding_their_subtree_and_hdbscan_noise_becomes_unclustered() -> None:
    # Root 12 splits into 13, 14 and 19; 13 splits into 15 and 16, point 5 falling out of 13 itself; 14 splits into
    # 17 and 18. HDBSCAN selected 13 and 17 (labels 0 and 1) and called points 8 (in 18), 10 and 11 (in 19) noise.
    rows = [
        (12, 13, 1.0, 6), (12, 14, 1.0, 3), (12, 19, 1.0, 2),
        (13, 15, 2.0, 3), (13, 16, 2.0, 2), (13, 5, 1.5, 1), (14, 17, 2.0, 2), (14, 18, 2.0, 1),
        (15, 0, 3.0, 1), (15, 1, 3.0, 1), (15, 2, 3.0, 1), (16, 3, 3.0, 1), (16, 4, 3.0, 1),
        (17, 6, 3.0, 1), (17, 7, 3.0, 1), (18, 8, 3.0, 1), (19, 10, 3.0, 1), (19, 11, 3.0, 1), (12, 9, 0.5, 1),
    ]
    dtype = [("parent", np.intp), ("child", np.intp), ("lambda_val", float), ("child_size", np.intp)]
    raw = np.array(rows, dtype=dtype)
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1, -1, -1, -1, -1])
    pruned = prune_to_selected(raw, labels)
    # 15 and 16 (below a selected cluster) and 18 and 19 (no selected cluster in them) are gone.
    assert set(pruned["child"].tolist()) == set(range(12)) | {13, 14, 17}
    falls_from = dict(zip(pruned["child"].tolist(), pruned["parent"].tolist(), strict=True))
    assert [falls_from[p] for p in range(12)] == [13] * 6 + [17, 17] + [12] * 4
    embeddings = np.vstack([np.tile([1.0, 0.0], (6, 1)), np.tile([0.0, 1.0], (6, 1))])
    h = hierarchy_from_condensed_tree(pruned, embeddings)
    check_structure(h, 12)
    assert h.n_nodes == 2 and (h.parent < 0).all()
    np.testing.assert_array_equal(h.assignment, [0, 0, 0, 0, 0, 0, 1, 1, -1, -1, -1, -1])
    # Nothing selected (a root that never split): the tree is kept, one cluster of everything.
    assert prune_to_selected(raw, np.full(12, -1)) is raw


def test_eom_leaves_hold_whole_clusters_and_unclustered_is_exactly_hdbscan_noise() -> None:
    # Overlapping blobs plus scattered points: the condensed tree's inner clusters shed many points before they
    # split; with excess-of-mass selection those are HDBSCAN's noise, and reported as unclustered.
    rng = np.random.default_rng(6)
    X = np.vstack([blobs(2000, 25, 3.0, seed=6), rng.uniform(-60, 60, size=(200, 5))])

    def outside_leaves(h: Hierarchy) -> float:
        kids = h.children()
        return float(np.mean([node < 0 or bool(kids[node]) for node in h.assignment]))

    leaf = HDBSCANClusterer(min_cluster_size=30, cluster_selection_method="leaf").fit_hierarchy(X)
    eom = HDBSCANClusterer(min_cluster_size=30, cluster_selection_method="eom")
    h = eom.fit_hierarchy(X)
    check_structure(h, len(X))
    assert all(len(m) >= 30 for m in h.members())
    np.testing.assert_array_equal(h.assignment < 0, eom.model_.labels_ < 0)
    assert (h.assignment < 0).sum() > 0
    # Every clustered point is in a leaf: no parent keeps a remainder.
    kids = h.children()
    assert all(not kids[node] for node in h.assignment[h.assignment >= 0])
    assert outside_leaves(h) < outside_leaves(leaf)
