"""What a reader can compute from released counts: the property checker of the privacy tests.

A release shows the sizes of sets of conversations (a node, a facet cell of a node). A reader who knows how those
sets nest can add and subtract the sizes, and so learns the size of any set whose indicator vector is a linear
combination of the released sets' indicators. :func:`small_derivable_groups` finds every such set that is not empty
and is smaller than the thresholds: what the gate and the breakdowns must never allow.

It works on the *atoms* of the released sets (conversations grouped by which released sets hold them), which
assumes the reader knows every intersection that is not empty: stricter than any real reader, so a group it
misses, no reader can compute by linear arithmetic. A set of atoms is derivable when its indicator lies in the
row space of the sets-by-atoms matrix, i.e. is orthogonal to that matrix's null space.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAX_CANDIDATES = 200_000


def atoms_of(released_sets: Sequence[np.ndarray], n_conversations: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The sets-by-atoms 0/1 matrix and each atom's conversations (conversations in no set belong to no atom)."""
    signature = np.zeros((n_conversations, len(released_sets)), dtype=bool)
    for column, indices in enumerate(released_sets):
        signature[np.asarray(indices, dtype=int), column] = True
    inside = np.flatnonzero(signature.any(axis=1))
    if not len(inside):
        return np.zeros((len(released_sets), 0)), []
    keys, inverse = np.unique(signature[inside], axis=0, return_inverse=True)
    inverse = np.asarray(inverse).ravel()
    return keys.T.astype(float), [inside[inverse == atom] for atom in range(len(keys))]


def small_derivable_groups(
    released_sets: Sequence[np.ndarray],
    user_codes: np.ndarray,
    min_users: int,
    min_conversations: int = 1,
) -> list[np.ndarray]:
    """Every non-empty set of conversations whose size a reader can compute from the sizes of ``released_sets``
    and that has fewer than ``min_users`` distinct users or fewer than ``min_conversations`` conversations."""
    user_codes = np.asarray(user_codes)
    matrix, atoms = atoms_of(released_sets, len(user_codes))
    if not atoms:
        return []
    _, singular, vt = np.linalg.svd(matrix, full_matrices=True)
    rank = int((singular > 1e-9).sum())
    null_space = vt[rank:].T  # columns orthogonal to every released set

    def derivable(chosen: list[int]) -> bool:
        indicator = np.zeros(len(atoms))
        indicator[chosen] = 1.0
        return null_space.shape[1] == 0 or bool(np.abs(indicator @ null_space).max() < 1e-7)

    found: list[np.ndarray] = []
    candidates = 0

    def grow(chosen: list[int], conversations: np.ndarray) -> None:
        # Sizes only grow with more atoms: once a union meets both thresholds, so does every larger one.
        nonlocal candidates
        start = chosen[-1] + 1 if chosen else 0
        for atom in range(start, len(atoms)):
            union = np.concatenate([conversations, atoms[atom]])
            if len(np.unique(user_codes[union])) >= min_users and len(union) >= min_conversations:
                continue
            candidates += 1
            if candidates > MAX_CANDIDATES:
                raise RuntimeError("too many small unions of atoms to check; draw smaller examples")
            if derivable(chosen + [atom]):
                found.append(np.sort(union))
            grow(chosen + [atom], union)

    grow([], np.array([], dtype=int))
    return found
