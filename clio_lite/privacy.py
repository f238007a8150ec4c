"""The privacy gate: which nodes of the hierarchy may be released.

A node is released only if it holds at least ``min_users`` distinct users **and** ``min_conversations``
conversations, and its parent is released. A suppressed node is folded into its parent's remainder: counted there,
never described.

Differencing: a reader who sees a parent's count and its released children's counts can subtract to learn the
size of the parent's remainder (its own conversations plus its suppressed children). So a remainder must itself be
empty or meet both thresholds. When it does not, the smallest released child is folded into the remainder too,
until the remainder is large enough or the parent has no released children left.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FOLDED = "folded into its parent's remainder, which would otherwise be small enough to single out by subtraction"


@dataclass
class GateResult:
    """What the gate decided, per node of the hierarchy.

    Attributes
    ----------
    released : np.ndarray of bool
        Whether each node is released.
    conversations, users : np.ndarray of int
        Each node's conversation count and distinct-user count (of its whole subtree).
    reasons : list of str
        For a suppressed node, why; empty for a released one.
    """

    released: np.ndarray
    conversations: np.ndarray
    users: np.ndarray
    reasons: list[str]


def distinct_users(user_codes: np.ndarray, members: np.ndarray) -> int:
    """The number of distinct users among the conversations ``members``: one user with many is one user."""
    return len(np.unique(user_codes[members])) if len(members) else 0


def gate(
    parent: np.ndarray,
    members: list[np.ndarray],
    user_codes: np.ndarray,
    min_users: int,
    min_conversations: int,
) -> GateResult:
    """Decide which nodes to release; see the module docstring for the rules.

    Parameters
    ----------
    parent : np.ndarray of int
        Each node's parent, -1 for a top-level node; parents come before their children.
    members : list of np.ndarray
        Each node's conversations (indices into ``user_codes``), its whole subtree.
    user_codes : np.ndarray of int
        The user of each conversation, as an integer code.
    """
    n_nodes = len(parent)
    conversations = np.array([len(m) for m in members], dtype=int)
    users = np.array([distinct_users(user_codes, m) for m in members], dtype=int)
    meets = (users >= min_users) & (conversations >= min_conversations)
    released = np.zeros(n_nodes, dtype=bool)
    reasons = [""] * n_nodes

    children: list[list[int]] = [[] for _ in range(n_nodes)]
    for node, p in enumerate(parent):
        if p >= 0:
            children[p].append(node)

    def below_threshold(node: int) -> str:
        return (
            f"{users[node]} users and {conversations[node]} conversations, below the thresholds of "
            f"{min_users} users and {min_conversations} conversations"
        )

    for node in range(n_nodes):  # parents first
        p = parent[node]
        if p >= 0 and not released[p]:
            reasons[node] = "its parent is suppressed"
        elif not meets[node]:
            reasons[node] = below_threshold(node)
        else:
            released[node] = True

    # Fold remainders that a reader could compute by subtraction, from the top down. Folding the smallest
    # released child is always enough: that child met both thresholds on its own.
    for node in range(n_nodes):
        kept = [c for c in children[node] if released[c]]
        if not released[node] or not kept:
            continue
        remainder = np.setdiff1d(members[node], np.concatenate([members[c] for c in kept]), assume_unique=True)
        if len(remainder) > 0 and (
            len(remainder) < min_conversations or distinct_users(user_codes, remainder) < min_users
        ):
            smallest = min(kept, key=lambda c: (conversations[c], -c))
            _suppress_subtree(smallest, children, released, reasons, FOLDED)
    return GateResult(released=released, conversations=conversations, users=users, reasons=reasons)


def _suppress_subtree(node: int, children: list[list[int]], released: np.ndarray, reasons: list[str], why: str):
    released[node] = False
    reasons[node] = why
    for child in children[node]:
        if released[child]:
            _suppress_subtree(child, children, released, reasons, "its parent is suppressed")


OTHER = "other"


def breakdown(
    values: list, user_codes: np.ndarray, min_users: int, other: str = OTHER
) -> dict[str, int]:
    """A k-supported breakdown of one node's conversations by a facet: value → conversations.

    A value is shown only if at least ``min_users`` distinct users had it; the others are pooled into ``other``.
    Like a parent's remainder, ``other`` can be computed by subtraction from the node's total, so it must itself be
    empty or reach ``min_users`` distinct users: while it does not, the smallest shown value joins it. If what is
    left of ``other`` is still too small (nothing more to fold), it is dropped and the whole breakdown is withheld,
    since the shown cells alone would let a reader compute it. ``None`` values count as ``other``.

    Parameters
    ----------
    values : list
        The facet's value for each of the node's conversations (``str(value)`` is shown).
    user_codes : np.ndarray of int
        The user of each of those conversations.

    Returns
    -------
    dict of str to int
        Shown values and ``other``, largest first (ties by value); empty if nothing can be shown.

    Examples
    --------
    >>> breakdown(["en"] * 3 + ["fr"], np.array([0, 1, 2, 3]), min_users=2)
    {}
    >>> breakdown(["en"] * 3 + ["fr"] * 2, np.array([0, 1, 2, 3, 4]), min_users=2)
    {'en': 3, 'fr': 2}
    """
    user_codes = np.asarray(user_codes)
    if len(values) != len(user_codes):
        raise ValueError(f"breakdown: {len(values)} values for {len(user_codes)} users")
    keys = np.array([other if value is None else str(value) for value in values], dtype=object)
    cells = {}
    for key in sorted(set(keys) - {other}):
        mask = keys == key
        cells[key] = (int(mask.sum()), len(np.unique(user_codes[mask])))
    shown = {key for key, (_, users) in cells.items() if users >= min_users}
    while True:
        rest = ~np.isin(keys, list(shown)) if shown else np.ones(len(keys), dtype=bool)
        rest_users = len(np.unique(user_codes[rest]))
        if not rest.any() or rest_users >= min_users:
            break
        if not shown:
            return {}
        smallest = min(shown, key=lambda key: (cells[key][0], key))
        shown.discard(smallest)
    result = {key: cells[key][0] for key in shown}
    if rest.any():
        result[other] = int(rest.sum())
    if not shown:
        return {}  # a single "other" cell says nothing
    return dict(sorted(result.items(), key=lambda kv: (-kv[1], kv[0])))


def remainders(parent: np.ndarray, members: list[np.ndarray], released: np.ndarray) -> dict[int, np.ndarray]:
    """Each released node's remainder: its conversations that are in none of its released children.

    The remainders of the released nodes are disjoint, and every released node is the union of the remainders of
    its released subtree, so every count a reader can compute from released node counts is a sum of remainders.
    The gate makes each remainder empty or large enough; :func:`tree_breakdowns` breaks facets down per remainder.

    Examples
    --------
    >>> parts = remainders(np.array([-1, 0]), [np.arange(5), np.array([0, 1])], np.array([True, True]))
    >>> {node: part.tolist() for node, part in parts.items()}
    {0: [2, 3, 4], 1: [0, 1]}
    """
    parent = np.asarray(parent)
    result = {}
    for node in np.flatnonzero(released):
        kept = [c for c in np.flatnonzero(parent == node) if released[c]]
        inside = np.concatenate([members[c] for c in kept]) if kept else np.array([], dtype=int)
        result[int(node)] = np.setdiff1d(members[node], inside)
    return result


def tree_breakdown_cells(
    parent: np.ndarray,
    members: list[np.ndarray],
    released: np.ndarray,
    values: list,
    user_codes: np.ndarray,
    min_users: int,
    other: str = OTHER,
) -> list[dict[str, np.ndarray]]:
    """The conversations behind each cell of :func:`tree_breakdowns` (indices into ``values``), per node.

    Each released node's remainder is broken down on its own with :func:`breakdown` (a remainder whose breakdown
    shows nothing counts wholly as ``other``); a node's cell for a value is then the union of that value's cells
    over the remainders of its released subtree, and its ``other`` the union of their ``other`` cells.
    """
    user_codes = np.asarray(user_codes)
    keys = np.array([other if value is None else str(value) for value in values], dtype=object)
    parent = np.asarray(parent)
    atom_cells: dict[int, dict[str, np.ndarray]] = {}
    for node, part in remainders(parent, members, released).items():
        if not len(part):
            continue
        shown = breakdown(list(keys[part]), user_codes[part], min_users, other=other)
        cells = {key: part[keys[part] == key] for key in shown if key != other}
        pooled = np.setdiff1d(part, np.concatenate(list(cells.values()))) if cells else part
        if len(pooled):
            cells[other] = pooled
        atom_cells[node] = cells
    n_nodes = len(parent)
    result: list[dict[str, list[np.ndarray]]] = [{} for _ in range(n_nodes)]
    for node, cells in atom_cells.items():
        ancestor = node
        while ancestor >= 0:  # every released ancestor of a released node is released
            for key, indices in cells.items():
                result[ancestor].setdefault(key, []).append(indices)
            ancestor = int(parent[ancestor])
    merged: list[dict[str, np.ndarray]] = []
    for cells in result:
        if set(cells) <= {other}:
            merged.append({})  # a lone "other" says nothing
            continue
        merged.append({key: np.sort(np.concatenate(parts)) for key, parts in cells.items()})
    return merged


def tree_breakdowns(
    parent: np.ndarray,
    members: list[np.ndarray],
    released: np.ndarray,
    values: list,
    user_codes: np.ndarray,
    min_users: int,
    other: str = OTHER,
) -> list[dict[str, int]]:
    """k-supported facet breakdowns for every released node that cannot be differenced across the tree.

    Breaking each node down on its own (:func:`breakdown`) keeps every cell k-supported *within* the node, but a
    reader can subtract across nodes: a parent's ``fr: 30`` minus its child's ``fr: 27`` is 3 French conversations
    of the parent's remainder and its other children, a group too small to show. Here each released node's
    remainder (which the gate keeps empty or large enough) is broken down on its own, and a node's cells are the
    sums of its subtree's remainder cells. Every cell is then a union of disjoint remainder cells each used by at
    least ``min_users`` distinct users, so every count computable from the release (any sum or difference of
    cells and node counts) is too. The price: a node's count for a value leaves out the conversations where that
    value was too rare within one remainder (they are in ``other``), and the breakdowns add up down the tree
    (a parent's cell is at least the sum of its children's).

    Parameters
    ----------
    parent, members : as for :func:`gate`
    released : np.ndarray of bool
        :attr:`GateResult.released`.
    values : list
        The facet's value for every conversation (indices as in ``members``); ``None`` counts as ``other``. A
        tuple or list is a multi-label value, counted once under each of its labels (an empty one as ``other``).
    user_codes : np.ndarray of int
        The user of every conversation.

    Returns
    -------
    list of dict
        For each node (in the order of ``parent``), its cells largest first (ties by value); empty for a
        suppressed node or one with nothing to show.

    Examples
    --------
    >>> parent, released = np.array([-1, 0]), np.array([True, True])
    >>> members = [np.arange(8), np.arange(4)]
    >>> tree_breakdowns(parent, members, released, ["en"] * 6 + ["fr"] * 2, np.arange(8), min_users=2)
    [{'en': 6, 'fr': 2}, {'en': 4}]
    """
    user_codes = np.asarray(user_codes)
    if any(isinstance(value, tuple | list) for value in values):
        # A multi-label value counts its conversation once under each label: break down (conversation, label)
        # pairs, so a node's cells may add up to more than its conversations.
        labels = [list(value) if isinstance(value, tuple | list) else [value] for value in values]
        pair_of = np.repeat(np.arange(len(values)), [max(len(ls), 1) for ls in labels])
        values = [label for ls in labels for label in (ls or [None])]
        starts = np.r_[0, np.cumsum([max(len(ls), 1) for ls in labels])]
        members = [
            np.concatenate([np.arange(starts[i], starts[i + 1]) for i in m]) if len(m) else np.array([], dtype=int)
            for m in members
        ]
        user_codes = user_codes[pair_of]
    cells = tree_breakdown_cells(parent, members, released, values, user_codes, min_users, other=other)
    return [
        dict(sorted(((key, len(indices)) for key, indices in node.items()), key=lambda kv: (-kv[1], kv[0])))
        for node in cells
    ]
