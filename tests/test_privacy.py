"""Tests for the privacy gate: ``clio_lite.privacy.gate``."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from clio_lite.cluster import Hierarchy
from clio_lite.privacy import FOLDED, OTHER, GateResult, breakdown, distinct_users, gate


def members_of(parent: list[int], assignment: list[int]) -> list[np.ndarray]:
    """Whole-subtree members from each conversation's deepest node, as the cluster stage produces them."""
    return Hierarchy(parent=np.array(parent, dtype=int), assignment=np.array(assignment, dtype=int)).members()


def run_gate(parent: list[int], assignment: list[int], users: list[int], min_users: int, min_conv: int):
    members = members_of(parent, assignment)
    result = gate(np.array(parent, dtype=int), members, np.array(users, dtype=int), min_users, min_conv)
    return result, members


def fold_case() -> tuple[list[int], list[int], list[int]]:
    """Parent 0 holds 100 conversations of 100 users; child 1 has 60, child 2 has 35, the remainder 5."""
    parent = [-1, 0, 0]
    assignment = [1] * 60 + [2] * 35 + [0] * 5
    return parent, assignment, list(range(100))


# ----------------------------------------------------------------------------------------------------------
# Thresholds and counts
# ----------------------------------------------------------------------------------------------------------


def test_counts_are_subtree_conversations_and_distinct_users() -> None:
    parent = [-1, 0, 0]
    assignment = [1] * 30 + [2] * 20 + [0] * 10
    users = [i % 7 for i in range(30)] + [100 + i % 4 for i in range(20)] + [200] * 10
    result, _ = run_gate(parent, assignment, users, 1, 1)
    assert isinstance(result, GateResult)
    assert result.conversations.tolist() == [60, 30, 20]
    assert result.users.tolist() == [12, 7, 4]


def test_one_user_with_a_thousand_conversations_counts_once_and_is_suppressed() -> None:
    # Conversations pass (1000 >= 10), distinct users do not (1 < 5).
    result, _ = run_gate([-1], [0] * 1000, [42] * 1000, min_users=5, min_conv=10)
    assert result.conversations[0] == 1000
    assert result.users[0] == 1
    assert not result.released[0]
    reason = result.reasons[0]
    assert "1 users" in reason and "1000 conversations" in reason
    assert "5 users" in reason and "10 conversations" in reason and "below the thresholds" in reason


def test_enough_users_but_too_few_conversations_is_suppressed() -> None:
    result, _ = run_gate([-1], [0] * 8, list(range(8)), min_users=5, min_conv=10)
    assert not result.released[0]
    assert "below the thresholds of 5 users and 10 conversations" in result.reasons[0]


def test_node_meeting_both_thresholds_exactly_is_released_with_empty_reason() -> None:
    result, _ = run_gate([-1], [0] * 10, [i % 5 for i in range(10)], min_users=5, min_conv=10)
    assert result.released.tolist() == [True]
    assert result.reasons == [""]


def test_children_of_a_suppressed_parent_are_suppressed_for_that_reason() -> None:
    # Node 0 has 12 conversations but 3 users; its children inherit the suppression.
    parent = [-1, 0, 0, 1]
    assignment = [1] * 5 + [2] * 4 + [3] * 3
    users = [0, 1, 2] * 4
    result, _ = run_gate(parent, assignment, users, min_users=4, min_conv=2)
    assert result.released.tolist() == [False, False, False, False]
    assert "below the thresholds" in result.reasons[0]
    assert result.reasons[1:] == ["its parent is suppressed"] * 3


def test_distinct_users_counts_each_user_once_and_empty_is_zero() -> None:
    codes = np.array([3, 3, 3, 1, 1, 2])
    assert distinct_users(codes, np.array([0, 1, 2])) == 1
    assert distinct_users(codes, np.arange(6)) == 3
    assert distinct_users(codes, np.array([], dtype=int)) == 0


# ----------------------------------------------------------------------------------------------------------
# Differencing: folding small remainders
# ----------------------------------------------------------------------------------------------------------


def test_small_remainder_folds_the_smallest_released_child() -> None:
    parent, assignment, users = fold_case()
    result, _ = run_gate(parent, assignment, users, min_users=10, min_conv=10)
    assert result.released.tolist() == [True, True, False]  # the 35-conversation child is folded
    assert result.conversations.tolist() == [100, 60, 35]
    assert result.reasons[2] == FOLDED
    assert "remainder" in result.reasons[2] and "subtraction" in result.reasons[2]
    assert result.reasons[:2] == ["", ""]


def test_remainder_meeting_both_thresholds_is_not_folded() -> None:
    parent, assignment, users = fold_case()
    result, _ = run_gate(parent, assignment, users, min_users=5, min_conv=5)
    assert result.released.tolist() == [True, True, True]


def test_empty_remainder_is_not_folded() -> None:
    result, _ = run_gate([-1, 0, 0], [1] * 60 + [2] * 40, list(range(100)), min_users=10, min_conv=10)
    assert result.released.tolist() == [True, True, True]


def test_remainder_with_enough_conversations_but_one_user_is_folded() -> None:
    # Remainder: 10 conversations, all of user 999: enough conversations, too few users.
    assignment = [1] * 60 + [2] * 30 + [0] * 10
    users = list(range(90)) + [999] * 10
    result, _ = run_gate([-1, 0, 0], assignment, users, min_users=5, min_conv=10)
    assert result.released.tolist() == [True, True, False]
    assert result.reasons[2] == FOLDED


def test_suppressed_child_counts_in_the_remainder() -> None:
    # Child 3 (8 conversations) is below min_conv=15, so the remainder is its 8 plus the parent's own 2 = 10 < 15:
    # the smallest released child (20) is folded, giving a remainder of 30.
    assignment = [1] * 70 + [2] * 20 + [3] * 8 + [0] * 2
    result, _ = run_gate([-1, 0, 0, 0], assignment, list(range(100)), min_users=5, min_conv=15)
    assert result.released.tolist() == [True, True, False, False]
    assert "below the thresholds" in result.reasons[3]
    assert result.reasons[2] == FOLDED


def test_only_the_smallest_child_is_folded_when_that_suffices() -> None:
    # Remainder 3 conversations of one user; folding the 40-user child alone makes it 43 conversations, 41 users.
    assignment = [1] * 50 + [2] * 40 + [0] * 3
    users = list(range(90)) + [500] * 3
    result, _ = run_gate([-1, 0, 0], assignment, users, min_users=30, min_conv=10)
    assert result.released.tolist() == [True, True, False]
    assert result.reasons[2] == FOLDED


def test_folding_a_child_suppresses_its_whole_subtree() -> None:
    # Node 2 (35 conversations) has children 3 (20) and 4 (15); it is folded, they follow.
    parent = [-1, 0, 0, 2, 2]
    assignment = [1] * 60 + [3] * 20 + [4] * 15 + [0] * 5
    result, _ = run_gate(parent, assignment, list(range(100)), min_users=10, min_conv=10)
    assert result.released.tolist() == [True, True, False, False, False]
    assert result.reasons[2] == FOLDED
    assert result.reasons[3:] == ["its parent is suppressed"] * 2


def test_equal_sized_children_fold_the_later_sibling_first() -> None:
    assignment = [1] * 45 + [2] * 45 + [0] * 5
    result, _ = run_gate([-1, 0, 0], assignment, list(range(95)), min_users=10, min_conv=10)
    assert result.released.tolist() == [True, True, False]


# ----------------------------------------------------------------------------------------------------------
# Properties over random trees
# ----------------------------------------------------------------------------------------------------------


@st.composite
def gate_inputs(draw):
    n_nodes = draw(st.integers(0, 12))
    parent = [-1 if i == 0 else draw(st.integers(-1, i - 1)) for i in range(n_nodes)]
    n_points = draw(st.integers(0, 150))
    # Per-node weights for where conversations land, so remainders range from empty to large.
    weights = [draw(st.integers(0, 12)) for _ in range(n_nodes + 1)]
    pool = [node for node, w in zip(range(-1, n_nodes), weights, strict=True) for _ in range(w)] or [-1]
    assignment = draw(st.lists(st.sampled_from(pool), min_size=n_points, max_size=n_points))
    n_users = draw(st.integers(1, 40))
    users = draw(st.lists(st.integers(0, n_users - 1), min_size=n_points, max_size=n_points))
    min_users = draw(st.integers(1, 8))
    min_conv = draw(st.integers(1, 20))
    return parent, assignment, users, min_users, min_conv


@settings(max_examples=100, deadline=None)
@given(gate_inputs())
def test_gate_invariants_hold_on_random_trees(inputs) -> None:
    parent, assignment, users, min_users, min_conv = inputs
    result, members = run_gate(parent, assignment, users, min_users, min_conv)
    codes = np.array(users, dtype=int)
    n_nodes = len(parent)
    assert result.released.shape == (n_nodes,)
    for node in range(n_nodes):
        n_users = len(set(codes[members[node]].tolist()))
        assert result.conversations[node] == len(members[node])
        assert result.users[node] == n_users
        # A suppressed node says why; a released one does not.
        assert (result.reasons[node] == "") == bool(result.released[node])
        if not result.released[node]:
            continue
        # Every released node meets both thresholds...
        assert len(members[node]) >= min_conv and n_users >= min_users
        # ...and its parent is released.
        if parent[node] >= 0:
            assert result.released[parent[node]]
        # Differencing: the remainder beside released children is empty or meets both thresholds.
        kids = [c for c in range(n_nodes) if parent[c] == node and result.released[c]]
        if kids:
            in_kids = set().union(*(set(members[c].tolist()) for c in kids))
            remainder = set(members[node].tolist()) - in_kids
            if remainder:
                assert len(remainder) >= min_conv
                assert len(set(codes[sorted(remainder)].tolist())) >= min_users
    # Each suppression has one of three reasons, and the right one.
    for node in range(n_nodes):
        if result.released[node]:
            continue
        meets = result.users[node] >= min_users and result.conversations[node] >= min_conv
        p = parent[node]
        if result.reasons[node] == "its parent is suppressed":
            assert p >= 0 and not result.released[p]
        elif result.reasons[node] == FOLDED:
            assert meets and (p >= 0 and result.released[p])
        else:
            assert not meets  # (its parent may since have been folded; the reason stays true)
            assert "below the thresholds" in result.reasons[node]


@settings(max_examples=50, deadline=None)
@given(gate_inputs())
def test_gate_is_deterministic(inputs) -> None:
    parent, assignment, users, min_users, min_conv = inputs
    first, _ = run_gate(parent, assignment, users, min_users, min_conv)
    second, _ = run_gate(parent, assignment, users, min_users, min_conv)
    np.testing.assert_array_equal(first.released, second.released)
    assert first.reasons == second.reasons


# -- facet breakdowns ---------------------------------------------------------------------------------------------


def test_breakdown_pools_rare_values_into_other_and_keeps_other_k_supported():
    values = ["en"] * 3 + ["fr"] * 2 + ["de", "it"]
    assert breakdown(values, np.arange(7), min_users=2) == {"en": 3, "fr": 2, OTHER: 2}
    # "de" alone would be a one-user "other": the smallest shown value joins it.
    assert breakdown(values[:-1], np.arange(6), min_users=2) == {"en": 3, OTHER: 3}


def test_breakdown_counts_distinct_users_not_conversations():
    # Ten "fr" conversations from one user are one user: not shown.
    values = ["en"] * 4 + ["fr"] * 10
    users = np.array([0, 1, 2, 3] + [9] * 10)
    assert breakdown(values, users, min_users=2) == {}
    assert breakdown(values, users, min_users=1) == {"fr": 10, "en": 4}


@settings(max_examples=300, deadline=None)
@given(
    cells=st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(0, 12)), min_size=1, max_size=60),
    min_users=st.integers(1, 6),
)
def test_breakdown_every_cell_and_every_difference_is_k_supported(cells, min_users):
    values = [value for value, _ in cells]
    users = np.array([user for _, user in cells])
    shown = breakdown(values, users, min_users)
    if not shown:
        return
    keys = np.array(values, dtype=object)
    assert sum(shown.values()) == len(values)  # the cells add up to the node: "other" is explicit
    for key, count in shown.items():
        mask = ~np.isin(keys, [k for k in shown if k != OTHER]) if key == OTHER else keys == key
        assert mask.sum() == count
        assert len(np.unique(users[mask])) >= min_users, (key, shown)
