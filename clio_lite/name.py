"""Naming released clusters offline, from keywords that enough distinct users share.

The keyword namer scores one- and two-word terms of the scrubbed user turns with class-based TF-IDF (BERTopic's
c-TF-IDF), each node against its released siblings (contrastive, as Clio names a cluster against its neighbours;
an only child against the other released nodes of its level), and keeps only *k-supported* terms: terms
that appear in the conversations of at least ``min_users`` distinct users of that node, so that no rare word, and
no word of a single user, can name a cluster. Placeholders left by the scrubber (``<PERSON>``) are never terms.

A namer is any object with ``name(texts, user_codes, nodes, min_users) -> list[NodeName]``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy import sparse

PLACEHOLDER = re.compile(r"<[A-Z_]+>")
# Words of two or more characters that start with a letter; keeps "c#", "node.js" and "e-mail" whole, splits "i'm".
TOKEN_PATTERN = r"(?u)\b[a-zA-Z][a-zA-Z0-9+#]+(?:[.\-][a-zA-Z0-9+#]+)*\b"
# Words that carry no topic in chat: greetings, politeness, filler. Added to scikit-learn's English stop words.
CHAT_STOP_WORDS = frozenset(
    [
        "hi", "hello", "hey", "thanks", "thank", "please", "ok", "okay", "sure", "yes", "yeah", "really", "just",
        "like", "want", "need", "know", "think", "got", "help", "im", "ive", "don", "didn", "doesn", "isn", "wasn",
        "aren", "won", "ll", "ve", "re", "maybe", "actually", "thing", "things", "lot", "bit", "kind",
    ]
)


@dataclass
class NodeToName:
    """A released node as the namer sees it: its conversations, its parent (index into the same list) and depth."""

    members: np.ndarray
    parent: int
    depth: int


@dataclass
class NodeName:
    """A node's title, one-sentence description and ranked keywords."""

    name: str
    description: str
    keywords: list[str] = field(default_factory=list)


class Namer(Protocol):
    """What the pipeline needs from a namer."""

    def name(
        self, texts: Sequence[str], user_codes: np.ndarray, nodes: Sequence[NodeToName], min_users: int
    ) -> list[NodeName]: ...


def _strip_placeholders(text: str) -> str:
    return PLACEHOLDER.sub(" ", text)


def user_support(X: sparse.csr_matrix, rows: np.ndarray, user_codes: np.ndarray) -> np.ndarray:
    """For each term (column of ``X``), how many distinct users among ``rows`` used it."""
    if len(rows) == 0:
        return np.zeros(X.shape[1], dtype=int)
    users, user_index = np.unique(user_codes[rows], return_inverse=True)
    by_user = sparse.csr_matrix(
        (np.ones(len(rows)), (user_index, np.arange(len(rows)))), shape=(len(users), len(rows))
    )
    used = by_user @ (X[rows] > 0).astype(np.float64)
    return np.asarray((used > 0).sum(axis=0)).ravel()


class KeywordNamer:
    """Name clusters by their most distinctive k-supported terms.

    Parameters
    ----------
    n_keywords : int
        Keywords kept per node.
    n_title_terms : int
        Keywords joined into the title.
    ngram_range : tuple of int
        Term lengths in words.
    """

    def __init__(self, n_keywords: int = 8, n_title_terms: int = 3, ngram_range: tuple[int, int] = (1, 2)):
        self.n_keywords = n_keywords
        self.n_title_terms = n_title_terms
        self.ngram_range = ngram_range

    def name(
        self, texts: Sequence[str], user_codes: np.ndarray, nodes: Sequence[NodeToName], min_users: int
    ) -> list[NodeName]:
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

        if not nodes:
            return []
        vectorizer = CountVectorizer(
            ngram_range=self.ngram_range,
            stop_words=sorted(ENGLISH_STOP_WORDS | CHAT_STOP_WORDS),
            token_pattern=TOKEN_PATTERN,
            lowercase=True,
            preprocessor=lambda text: _strip_placeholders(text).lower(),
            # A term fewer conversations than min_users use can never be k-supported.
            min_df=max(1, min_users),
            dtype=np.float64,
        )
        try:
            X = vectorizer.fit_transform(texts).tocsr()
        except ValueError:  # no term survives min_df: nothing can name any node
            return [unnamed() for _ in nodes]
        vocabulary = vectorizer.get_feature_names_out()

        counts = np.vstack([np.asarray(X[node.members].sum(axis=0)).ravel() for node in nodes])
        supported = np.vstack([user_support(X, node.members, user_codes) >= min_users for node in nodes])
        scores = np.zeros_like(counts)
        depths = np.array([node.depth for node in nodes])
        for depth in np.unique(depths):
            level = np.flatnonzero(depths == depth)
            scores[level] = _class_tfidf(counts[level])
        # Contrastive: a node with released siblings is scored against them, so the theme they share (their
        # parent's) ranks below what sets it apart; an only child keeps its score against its level.
        parents = np.array([node.parent for node in nodes])
        for parent in np.unique(parents):
            siblings = np.flatnonzero(parents == parent)
            if len(siblings) > 1:
                scores[siblings] = _class_tfidf(counts[siblings])

        names: list[NodeName] = []
        for i, node in enumerate(nodes):
            order = np.lexsort((vocabulary, -scores[i]))
            candidates = [vocabulary[t] for t in order if supported[i, t] and scores[i, t] > 0]
            keywords = _without_overlaps(candidates, self.n_keywords)
            if not keywords:
                names.append(unnamed())
                continue
            parent_words = set()
            if node.parent >= 0 and names[node.parent].keywords:
                parent_words = {w for k in names[node.parent].keywords[: self.n_title_terms] for w in k.split()}
            # A child's title says what distinguishes it: terms sharing no word with its parent's title come first,
            # then terms sharing some, then terms made only of the parent's words.
            title_terms = sorted(keywords, key=lambda k: _overlap(set(k.split()), parent_words))
            names.append(
                NodeName(
                    name=_title(title_terms[: self.n_title_terms]),
                    description=describe_keywords(keywords),
                    keywords=keywords,
                )
            )
        return names


def _class_tfidf(counts: np.ndarray) -> np.ndarray:
    """BERTopic's c-TF-IDF: term frequency in the class times log(1 + mean class size / term frequency overall)."""
    totals = counts.sum(axis=1, keepdims=True)
    tf = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    term_totals = counts.sum(axis=0)
    mean_words = totals.mean()
    idf = np.log1p(np.divide(mean_words, term_totals, out=np.zeros_like(term_totals), where=term_totals > 0))
    return tf * idf


def _without_overlaps(candidates: Sequence[str], limit: int) -> list[str]:
    """Take ranked terms, skipping one whose words are all in terms already taken (no "python" after "python code")."""
    taken: list[str] = []
    covered: set[str] = set()
    for term in candidates:
        words = set(term.split())
        if words <= covered:
            continue
        taken.append(term)
        covered |= words
        if len(taken) == limit:
            break
    return taken


def _overlap(words: set[str], parent_words: set[str]) -> int:
    if not words & parent_words:
        return 0
    return 2 if words <= parent_words else 1


def _title(terms: Sequence[str]) -> str:
    return " · ".join(term[:1].upper() + term[1:] for term in terms)


def describe_keywords(keywords: Sequence[str]) -> str:
    """The one-sentence description written from ranked keywords (the auditor reads its template back)."""
    head = list(keywords[:3])
    listed = head[0] if len(head) == 1 else ", ".join(head[:-1]) + f" and {head[-1]}"
    also = f"; also {', '.join(keywords[3:5])}" if len(keywords) > 3 else ""
    return f"Conversations about {listed}{also}."


def unnamed() -> NodeName:
    """What a node with no k-supported term is called."""
    return NodeName(
        name="Unnamed cluster",
        description="No term is shared by enough distinct users of this cluster to describe it.",
        keywords=[],
    )
