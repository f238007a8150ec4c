"""Differential privacy for the release, with the user as the unit of privacy (``Clio(privacy="dp")``).

Given the cluster hierarchy, every number and every word of a DP release comes out of one of four mechanisms, each
charged a share of ``epsilon`` (and the selections a share of ``delta``):

``nodes``
    Which clusters are released, and their user counts. Each user keeps at most ``max_conversations_per_user``
    conversations (chosen by a keyed hash of the conversation id: deterministic, independent of content), so a user
    is in at most ``c`` nodes per level and ``c * levels`` nodes in all. Each node's distinct-user count gets
    discrete Laplace noise of scale ``c * levels / epsilon_nodes``; a node is released when its noisy count reaches
    ``max(min_users, 1 + scale * ln(c * levels / delta_nodes))`` (Laplace partition selection: a node that only one
    user's conversations make up is released with probability at most ``delta_nodes / (c * levels)``), its noisy
    conversation count reaches ``min_conversations`` and its parent is released.
``conversations``
    Each node's conversation count, discrete Laplace noise of scale ``c * levels / epsilon_conversations``.
``vocabulary``
    Which terms may name anything: each user contributes their ``max_terms_per_user`` most frequent terms (ties
    broken by a hash of the term, the same order for everyone) once; a term is kept when its noisy number of users
    reaches ``max(min_users, 1 + scale * ln(m / delta_vocabulary))``, scale ``m / epsilon_vocabulary``.
``keywords``
    For each released node, the number of its users who used each kept term (among their ``m``), noised with
    scale ``m * c * levels / epsilon_keywords``; a node's keywords are the kept terms whose noisy count reaches
    ``min_users``, ranked by class-based TF-IDF of the noisy counts. Names and descriptions are built from these
    keywords only.

Afterwards the counts are made consistent (post-processing, free of budget): a parent's conversations are at least
the sum of its released children's, its users at least the largest child's, and conversations at least users.

Noise is discrete Laplace (the difference of two geometric variables), so counts are integers and the
floating-point attacks on the continuous Laplace mechanism do not apply. It is drawn from numpy's PCG64 generator
seeded from ``random_state``, so a release is reproducible; PCG64 is not a cryptographic generator, and whoever
knows the seed can remove the noise: keep the seed secret (or pass ``random_state=None`` for fresh OS entropy).
**The hierarchy itself is not private**: the clusters are computed from every conversation without noise, so the
guarantee holds for the release *given* the partition of the embedding space, not end to end; see docs/privacy.md.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from .name import (
    CHAT_STOP_WORDS,
    TOKEN_PATTERN,
    NodeName,
    _class_tfidf,
    _strip_placeholders,
    _title,
    _without_overlaps,
    describe_keywords,
    unnamed,
    user_support,
)

#: Shares of epsilon per mechanism; the two selections split delta evenly.
EPSILON_SHARES = {"nodes": 0.3, "conversations": 0.2, "vocabulary": 0.25, "keywords": 0.25}
DELTA_SHARES = {"nodes": 0.5, "vocabulary": 0.5}
MECHANISM = "discrete Laplace with Laplace partition selection (user-level, contribution-bounded)"


def discrete_laplace(rng: np.random.Generator, scale: float, size: int) -> np.ndarray:
    """Integer noise with ``P(k)`` proportional to ``exp(-|k| / scale)``: the difference of two geometric variables.

    Adding it to an integer count of sensitivity ``s`` with ``scale = s / epsilon`` is ``epsilon``-DP.

    Examples
    --------
    >>> noise = discrete_laplace(np.random.default_rng(0), 2.0, 100_000)
    >>> noise.dtype.kind, abs(noise.mean()) < 0.05, 7.5 < noise.var() < 8.5   # variance 2 e^(-1/b) / (1 - e^(-1/b))^2
    ('i', True, True)
    """
    if scale <= 0:
        raise ValueError(f"discrete_laplace: scale must be positive, got {scale}")
    p = -math.expm1(-1.0 / scale)
    return (rng.geometric(p, size) - rng.geometric(p, size)).astype(np.int64)


def selection_threshold(scale: float, partitions_per_user: int, delta: float, floor: int) -> int:
    """The noisy count a data-derived partition must reach: a partition only one user makes up passes it with
    probability at most ``delta / partitions_per_user`` (``P(noise >= t) <= exp(-t / scale)``), so the at most
    ``partitions_per_user`` partitions one user could add are all released with probability at most ``delta``.

    Examples
    --------
    >>> selection_threshold(scale=2.0, partitions_per_user=3, delta=1e-6, floor=5)
    32
    """
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    return max(int(floor), math.ceil(1 + scale * math.log(partitions_per_user / delta)))


def bound_contributions(user_codes: np.ndarray, ids: Sequence[str], max_per_user: int, key: int) -> np.ndarray:
    """A mask keeping at most ``max_per_user`` conversations of each user, chosen by a keyed hash of their ids.

    The choice depends on the user's own conversation ids and ``key`` only, never on other users or on content.

    Examples
    --------
    >>> bound_contributions(np.array([0, 0, 0, 1]), ["a", "b", "c", "d"], 2, key=0).sum()
    3
    """
    user_codes = np.asarray(user_codes)
    rank = np.array([hashlib.sha256(f"{key}:{conv_id}".encode()).hexdigest() for conv_id in ids])
    order = np.lexsort((rank, user_codes))
    keep = np.zeros(len(user_codes), dtype=bool)
    sorted_users = user_codes[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_users)) + 1]
    position = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    keep[order[position < max_per_user]] = True
    return keep


@dataclass
class Budget:
    """How ``epsilon`` and ``delta`` are split across the mechanisms, and the parameters each used."""

    epsilon: float
    delta: float
    max_conversations_per_user: int
    max_terms_per_user: int
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    def share(self, stage: str) -> tuple[float, float]:
        return self.epsilon * EPSILON_SHARES[stage], self.delta * DELTA_SHARES.get(stage, 0.0)

    def record(self, stage: str, **details: Any) -> None:
        epsilon, delta = self.share(stage)
        self.stages[stage] = {"epsilon": round(epsilon, 6), "delta": delta, **details}

    def to_dict(self) -> dict[str, Any]:
        spent_epsilon = sum(stage["epsilon"] for stage in self.stages.values())
        spent_delta = sum(stage["delta"] for stage in self.stages.values())
        return {
            "mode": "dp",
            "unit": "user",
            "mechanism": MECHANISM,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "epsilon_spent": round(spent_epsilon, 6),
            "delta_spent": spent_delta,
            "max_conversations_per_user": self.max_conversations_per_user,
            "max_terms_per_user": self.max_terms_per_user,
            "stages": self.stages,
            "not_covered": "the cluster hierarchy (embedding, UMAP, HDBSCAN) is computed without noise",
        }


@dataclass
class DPGateResult:
    """Like :class:`clio_lite.privacy.GateResult`, with noised, consistent counts for the released nodes."""

    released: np.ndarray
    conversations: np.ndarray
    users: np.ndarray
    reasons: list[str]


def dp_gate(
    parent: np.ndarray,
    members: list[np.ndarray],
    user_codes: np.ndarray,
    kept: np.ndarray,
    min_users: int,
    min_conversations: int,
    budget: Budget,
    rng: np.random.Generator,
) -> DPGateResult:
    """Select nodes and noise their counts (stages ``nodes`` and ``conversations``; see the module docstring).

    ``members`` are all of a node's conversations; only the ``kept`` ones (after contribution bounding) count.
    """
    parent = np.asarray(parent)
    n_nodes = len(parent)
    depth = np.zeros(n_nodes, dtype=int)
    for node in range(n_nodes):
        depth[node] = 1 if parent[node] < 0 else depth[parent[node]] + 1
    levels = int(depth.max()) if n_nodes else 1
    c = budget.max_conversations_per_user
    bounded = [m[kept[m]] for m in members]
    true_users = np.array([len(np.unique(user_codes[m])) for m in bounded], dtype=np.int64)
    true_conversations = np.array([len(m) for m in bounded], dtype=np.int64)

    eps_nodes, delta_nodes = budget.share("nodes")
    user_scale = c * levels / eps_nodes
    threshold = selection_threshold(user_scale, c * levels, delta_nodes, min_users)
    users = true_users + discrete_laplace(rng, user_scale, n_nodes)
    budget.record("nodes", sensitivity_l1=c * levels, noise_scale=round(user_scale, 4), threshold=threshold)

    eps_conv, _ = budget.share("conversations")
    conv_scale = c * levels / eps_conv
    conversations = true_conversations + discrete_laplace(rng, conv_scale, n_nodes)
    budget.record("conversations", sensitivity_l1=c * levels, noise_scale=round(conv_scale, 4))

    released = np.zeros(n_nodes, dtype=bool)
    reasons = [""] * n_nodes
    for node in range(n_nodes):  # parents first
        if parent[node] >= 0 and not released[parent[node]]:
            reasons[node] = "its parent is suppressed"
        elif users[node] < threshold or conversations[node] < min_conversations:
            reasons[node] = (
                f"noisy counts below the thresholds ({threshold} users for DP selection, {min_conversations} "
                "conversations)"
            )
        else:
            released[node] = True
    # Post-processing: counts that cannot contradict each other, bottom-up.
    for node in range(n_nodes - 1, -1, -1):
        if not released[node]:
            continue
        kids = [k for k in np.flatnonzero(parent == node) if released[k]]
        if kids:
            conversations[node] = max(conversations[node], conversations[kids].sum())
            users[node] = max(users[node], users[kids].max())
        conversations[node] = max(conversations[node], users[node])
    return DPGateResult(released=released, conversations=conversations, users=users, reasons=reasons)


class DPKeywordNamer:
    """Names from differentially private keywords (stages ``vocabulary`` and ``keywords``).

    Called by the pipeline with the budget and the contribution mask; its output depends on the conversations only
    through the two noisy histograms.
    """

    def __init__(self, n_keywords: int = 8, n_title_terms: int = 3, ngram_range: tuple[int, int] = (1, 2)):
        self.n_keywords = n_keywords
        self.n_title_terms = n_title_terms
        self.ngram_range = ngram_range

    def name(
        self,
        texts: Sequence[str],
        user_codes: np.ndarray,
        nodes: Sequence[Any],
        min_users: int,
        *,
        kept: np.ndarray,
        levels: int,
        budget: Budget,
        rng: np.random.Generator,
    ) -> list[NodeName]:
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

        m = budget.max_terms_per_user
        c = budget.max_conversations_per_user
        rows = np.flatnonzero(kept)
        vectorizer = CountVectorizer(
            ngram_range=self.ngram_range,
            stop_words=sorted(ENGLISH_STOP_WORDS | CHAT_STOP_WORDS),
            token_pattern=TOKEN_PATTERN,
            lowercase=True,
            preprocessor=lambda text: _strip_placeholders(text).lower(),
            dtype=np.float64,
        )
        try:
            X = vectorizer.fit_transform([texts[i] for i in rows]).tocsr()
        except ValueError:
            X = sparse.csr_matrix((len(rows), 0))
        vocabulary = vectorizer.get_feature_names_out() if X.shape[1] else np.array([], dtype=object)
        codes = np.asarray(user_codes)[rows]
        chosen = _top_terms_per_user(X, codes, vocabulary, m)  # users x terms, at most m per user
        X_bounded = X.multiply(chosen[codes]).tocsr()  # each conversation keeps only its user's chosen terms

        eps_vocab, delta_vocab = budget.share("vocabulary")
        vocab_scale = m / eps_vocab
        vocab_threshold = selection_threshold(vocab_scale, m, delta_vocab, min_users)
        term_users = np.asarray((chosen > 0).sum(axis=0)).ravel().astype(np.int64)
        noisy_terms = term_users + (discrete_laplace(rng, vocab_scale, len(term_users)) if len(term_users) else 0)
        kept_terms = np.flatnonzero(noisy_terms >= vocab_threshold)
        budget.record("vocabulary", sensitivity_l0=m, noise_scale=round(vocab_scale, 4), threshold=vocab_threshold,
                      terms_released=len(kept_terms))

        eps_kw, _ = budget.share("keywords")
        kw_scale = m * c * max(levels, 1) / eps_kw
        budget.record("keywords", sensitivity_l1=m * c * max(levels, 1), noise_scale=round(kw_scale, 4))
        if not len(nodes):
            return []
        position = np.full(len(user_codes), -1)
        position[rows] = np.arange(len(rows))
        counts = np.zeros((len(nodes), len(kept_terms)), dtype=np.int64)
        X_kept = X_bounded[:, kept_terms].tocsr()
        for i, node in enumerate(nodes):
            node_rows = position[node.members]
            node_rows = node_rows[node_rows >= 0]
            support = user_support(X_kept, node_rows, codes) if len(kept_terms) else np.zeros(0, dtype=int)
            counts[i] = support + discrete_laplace(rng, kw_scale, len(kept_terms)) if len(kept_terms) else support
        noisy = np.clip(counts, 0, None).astype(float)
        scores = np.zeros_like(noisy)
        depths = np.array([node.depth for node in nodes])
        for depth in np.unique(depths):
            level = np.flatnonzero(depths == depth)
            scores[level] = _class_tfidf(noisy[level])
        terms = vocabulary[kept_terms] if len(kept_terms) else np.array([], dtype=object)
        names: list[NodeName] = []
        for i in range(len(nodes)):
            order = np.lexsort((terms, -scores[i]))
            candidates = [terms[t] for t in order if counts[i, t] >= min_users and scores[i, t] > 0]
            keywords = _without_overlaps(candidates, self.n_keywords)
            if not keywords:
                names.append(unnamed())
                continue
            names.append(NodeName(_title(keywords[: self.n_title_terms]), describe_keywords(keywords), keywords))
        return names


def _top_terms_per_user(X: sparse.csr_matrix, codes: np.ndarray, vocabulary: np.ndarray, m: int) -> sparse.csr_matrix:
    """A users x terms 0/1 matrix: each user's ``m`` most frequent terms over their conversations."""
    n_users = int(codes.max()) + 1 if len(codes) else 0
    # Ties (most terms of a short conversation occur once) are broken in one order shared by every user, a hash of
    # the term: users who typed the same terms then contribute the same ones, instead of the alphabetically first.
    tie_break = np.array([hashlib.sha256(str(term).encode()).hexdigest() for term in vocabulary])
    by_user = sparse.csr_matrix((np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(n_users, len(codes)))
    totals = (by_user @ X).tocsr()
    rows, cols, data = [], [], []
    for user in range(n_users):
        start, end = totals.indptr[user], totals.indptr[user + 1]
        terms, freq = totals.indices[start:end], totals.data[start:end]
        if not len(terms):
            continue
        top = terms[np.lexsort((tie_break[terms], -freq))[:m]]
        rows.extend([user] * len(top))
        cols.extend(top.tolist())
        data.extend([1.0] * len(top))
    return sparse.csr_matrix((data, (rows, cols)), shape=(n_users, X.shape[1]))
