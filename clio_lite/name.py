"""Naming released clusters offline, from words and phrases that enough distinct users share.

The keyword namer scores *terms*, runs of one or two content words that users typed next to each other in the
scrubbed user turns, with class-based TF-IDF (BERTopic's c-TF-IDF), each node against its released siblings
(contrastive, as Clio names a cluster against its neighbours; an only child against the other released nodes of its
level), weighted by *coverage*, the share of the node's conversations that use the term, so that a node is named by
what most of its conversations say rather than by what a few say often. It keeps only *k-supported* terms: terms
that appear in the conversations of at least ``min_users`` distinct users of that node, so that no rare word, and no
word of a single user, can name a cluster. Placeholders left by the scrubber (``<PERSON>``) are never terms, and no
term or phrase spans one, or punctuation that ends a clause.

The title is a phrase a person would write: the node's best term grown into the longest phrase that at least half of the
term's users in the node typed around it ("password" becomes "Reset my password"), in their most common casing
(capitalised words lowered, acronyms kept), joined to a second term's phrase when that term is common in the node too
("Reset my password and two-factor codes"), in sentence case, unique among its siblings and, where the node has an
alternative, without its parent's title words. Every phrase is k-supported as a whole: ``min_users`` distinct users of
the node typed exactly those words in that order. The description is one sentence of a fixed template around such
phrases; :func:`release_templates` gives every template, so that the auditor can tell the template's words from the
data's.

A namer is any object with ``name(texts, user_codes, nodes, min_users) -> list[NodeName]``.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy import sparse

from .phrases import CHAT_STOP_WORDS, PhraseIndex, content_words, terms_of

__all__ = ["CHAT_STOP_WORDS", "KeywordNamer", "NodeName", "NodeToName", "compose_title", "describe_keywords",
           "release_templates", "unnamed", "user_support"]

PLACEHOLDER = re.compile(r"<[A-Z_]+>")
# Words of two or more characters that start with a letter; keeps "c#", "node.js" and "e-mail" whole, splits "i'm".
TOKEN_PATTERN = r"(?u)\b[a-zA-Z][a-zA-Z0-9+#]+(?:[.\-][a-zA-Z0-9+#]+)*\b"
#: A second phrase joins the title only if its term is in at least this share of the node's conversations.
SECOND_PHRASE_COVERAGE = 0.2


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
    """Name clusters by readable phrases grown from their most distinctive, most common k-supported terms.

    Parameters
    ----------
    n_keywords : int
        Keywords kept per node.
    n_title_terms : int
        Phrases joined into the title, at most (1 to 3): "Reset my password and two-factor codes" is two.
    ngram_range : tuple of int
        Term lengths in words.

    Examples
    --------
    >>> import numpy as np
    >>> texts = ["How do I reset my password?", "I need to reset my password", "reset my password please",
    ...          "Book a flight to Rome", "book a flight for two", "can you book a flight"]
    >>> nodes = [NodeToName(np.arange(3), -1, 1), NodeToName(np.arange(3, 6), -1, 1)]
    >>> [n.name for n in KeywordNamer().name(texts, np.arange(6), nodes, min_users=3)]
    ['Reset my password', 'Book a flight']
    """

    def __init__(self, n_keywords: int = 8, n_title_terms: int = 2, ngram_range: tuple[int, int] = (1, 2)):
        self.n_keywords = n_keywords
        self.n_title_terms = n_title_terms
        self.ngram_range = ngram_range

    def name(
        self, texts: Sequence[str], user_codes: np.ndarray, nodes: Sequence[NodeToName], min_users: int
    ) -> list[NodeName]:
        from sklearn.feature_extraction.text import CountVectorizer

        if not nodes:
            return []
        vectorizer = CountVectorizer(
            analyzer=functools.partial(terms_of, ngram_range=tuple(self.ngram_range)),
            # A term fewer conversations than min_users use can never be k-supported.
            min_df=max(1, min_users),
            dtype=np.float64,
        )
        try:
            X = vectorizer.fit_transform(texts).tocsr()
        except ValueError:  # no term survives min_df: nothing can name any node
            return [unnamed() for _ in nodes]
        vocabulary = vectorizer.get_feature_names_out()
        present = (X > 0).astype(np.float64)

        counts = np.vstack([np.asarray(X[node.members].sum(axis=0)).ravel() for node in nodes])
        coverage = np.vstack(
            [np.asarray(present[node.members].sum(axis=0)).ravel() / max(1, len(node.members)) for node in nodes]
        )
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
        # Weighted by coverage (squared: a little more coherent than linear on the fixture corpus, docs/quality.md):
        # a term most of the node's conversations use says more about the node than one a few of them repeat.
        ranked = scores * coverage**2
        distinctive = _distinctive_words(counts, parents, depths, vocabulary)

        keywords_of = []
        for i in range(len(nodes)):
            order = np.lexsort((vocabulary, -ranked[i]))
            candidates = [vocabulary[t] for t in order if supported[i, t] and scores[i, t] > 0]
            keywords_of.append(_without_overlaps(candidates, self.n_keywords))
        phrases = PhraseIndex(texts, {term for keywords in keywords_of for term in keywords})
        codes = np.asarray(user_codes)
        column = vectorizer.vocabulary_

        names: list[NodeName] = []
        titles_under: dict[int, set[str]] = defaultdict(set)
        for i, node in enumerate(nodes):
            keywords = keywords_of[i]
            if not keywords:
                names.append(unnamed())
                continue
            parent_words: set[str] = set()
            if node.parent >= 0 and names[node.parent].keywords:
                parent_words = content_words(names[node.parent].name)
            in_node = np.zeros(len(texts), dtype=bool)
            in_node[node.members] = True
            keyword_words = {word for term in keywords for word in term.split()}
            phrase_of = _NodePhrases(
                phrases, in_node, codes, min_users, parent_words, distinctive[i], keyword_words
            )
            # A title says what distinguishes the node: terms sharing no word with its parent's title come first,
            # then terms sharing some, then terms made only of the parent's words; within each, the node's own
            # (distinctive) terms before those its siblings use as much.
            title_terms = sorted(
                keywords,
                key=lambda k: (
                    _overlap(set(k.split()), parent_words),
                    distinctive[i] is not None and not set(k.split()) & distinctive[i],
                ),
            )
            # A term joins the title after the head only if it is common in the node and its own (distinctive).
            common = {
                term for term in keywords
                if coverage[i, column[term]] >= SECOND_PHRASE_COVERAGE
                and (distinctive[i] is None or bool(set(term.split()) & distinctive[i]))
            }
            taken = titles_under[node.parent]
            options = _title_options(title_terms, common, phrase_of, max(1, min(3, self.n_title_terms)))
            chosen = next((option for option in options if compose_title(option).lower() not in taken), None)
            if chosen is None:  # every option is a sibling's title already: keep the best one
                chosen = next(_title_options(title_terms, common, phrase_of, max(1, min(3, self.n_title_terms))))
            title = compose_title(chosen)
            taken.add(title.lower())
            names.append(NodeName(name=title, description=describe_keywords(_described(chosen, keywords, phrase_of)),
                                  keywords=keywords))
        return names


@dataclass
class _NodePhrases:
    """One node's terms grown into phrases (:meth:`PhraseIndex.phrase`), each grown once."""

    index: PhraseIndex
    in_node: np.ndarray
    user_codes: np.ndarray
    min_users: int
    avoid: set[str]
    allowed: set[str] | None
    free: set[str]
    grown: dict[str, str] = field(default_factory=dict)

    def __call__(self, term: str) -> str:
        if term not in self.grown:
            self.grown[term] = self.index.phrase(
                term, self.in_node, self.user_codes, self.min_users, self.avoid, self.allowed, self.free
            )
        return self.grown[term]

    def fresh(self, term: str, covered: set[str]) -> str | None:
        """The term's phrase if it names no word of ``covered``, else the term itself if that names none, else None."""
        for candidate in (self(term), term):
            if not content_words(candidate) & covered:
                return candidate
        return None


def _distinctive_words(
    counts: np.ndarray, parents: np.ndarray, depths: np.ndarray, vocabulary: np.ndarray
) -> list[set[str] | None]:
    """Per node, the words it uses at least twice as often (as a share of its words) as the nodes it is named
    against (its released siblings, or the rest of its level for an only child); ``None`` where it stands alone."""
    words = np.array([" " not in term for term in vocabulary])
    totals = counts.sum(axis=1)
    out: list[set[str] | None] = []
    for i in range(len(counts)):
        group = np.flatnonzero(parents == parents[i])
        if len(group) < 2:
            group = np.flatnonzero(depths == depths[i])
        if len(group) < 2 or totals[i] == 0:
            out.append(None)
            continue
        rest = counts[group].sum(axis=0) - counts[i]
        rest_total = max(1.0, totals[group].sum() - totals[i])
        share = counts[i] / totals[i]
        keep = words & (counts[i] > 0) & (share >= 2 * rest / rest_total)
        out.append(set(vocabulary[keep].tolist()))
    return out


def _title_options(
    ordered: Sequence[str], common: set[str], phrase_of: _NodePhrases, n_phrases: int
) -> Iterator[list[str]]:
    """Titles to choose from, best first, as lists of phrases: each term in turn as the head, followed by common
    terms after it whose phrases share no content word with the phrases already in or the parent's title, then the
    head alone."""
    for h, head in enumerate(ordered):
        first = phrase_of(head)
        followers = [term for term in ordered[h + 1 :] if term in common]
        for start in range(len(followers) if n_phrases > 1 else 0):
            chosen, covered = [first], content_words(first) | phrase_of.avoid
            for term in followers[start:]:
                grown = phrase_of.fresh(term, covered)
                if grown is not None:
                    chosen.append(grown)
                    covered |= content_words(grown)
                    if len(chosen) == n_phrases:
                        break
            if len(chosen) > 1:
                yield chosen
        yield [first]
    # Last resort, for a title a sibling already has: the head with any other term that adds a word.
    for h, head in enumerate(ordered):
        first = phrase_of(head)
        for term in ordered[:h] + ordered[h + 1 :]:
            grown = phrase_of.fresh(term, content_words(first))
            if grown is not None:
                yield [first, grown]


def _described(title_phrases: Sequence[str], keywords: Sequence[str], phrase_of: _NodePhrases) -> list[str]:
    """The phrases a description names: the title's, then those of the other keywords that say something new (no
    content word already named), four at most."""
    described = list(title_phrases)
    covered = {word for phrase in described for word in content_words(phrase)}
    for term in keywords:
        if len(described) == 4:
            break
        grown = phrase_of.fresh(term, covered)
        if grown is not None:
            described.append(grown)
            covered |= content_words(grown)
    return described


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
    """Keywords joined into a title, each capitalised (the differentially private namer's titles)."""
    return " · ".join(term[:1].upper() + term[1:] for term in terms)


def compose_title(phrases: Sequence[str]) -> str:
    """One to three phrases joined into a title in sentence case ("Reset my password and two-factor codes").

    The first letter is raised unless the first word is already written with capitals inside it ("iPhone") or the
    second word starts with a capital ("add JWT").

    Examples
    --------
    >>> compose_title(["reset my password", "two-factor codes"])
    'Reset my password and two-factor codes'
    >>> compose_title(["iPhone apps", "Python", "sql"])
    'iPhone apps, Python and sql'
    >>> compose_title(["add JWT", "authentication"])
    'add JWT and authentication'
    """
    joined = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + f" and {phrases[-1]}"
    first_word, second_word = [*joined.split(" ", 2), "", ""][:2]
    # Not before a word written with a capital ("add JWT"): two capitalised words in a row look like a full name to
    # the auditor's PII check.
    if first_word[1:] != first_word[1:].lower() or second_word[:1].isupper():
        return joined
    return joined[:1].upper() + joined[1:]


def describe_keywords(phrases: Sequence[str]) -> str:
    """The one-sentence description written from ranked phrases or keywords (the auditor reads its template back).

    Examples
    --------
    >>> describe_keywords(["reset my password", "locked accounts", "two-factor codes"])
    'Conversations about reset my password and locked accounts, also mentioning two-factor codes.'
    """
    head = " and ".join(phrases[:2])
    also = f", also mentioning {' and '.join(phrases[2:4])}" if len(phrases) > 2 else ""
    return f"Conversations about {head}{also}."


def release_templates(slots: Sequence[str]) -> list[str]:
    """Every template the keyword namers write, with ``slots`` where the data's phrases go.

    The auditor turns these into patterns: in a release string that fits one, only the slots are the data's, the
    rest is clio_lite's wording. A title of a single phrase has no template (it is the data's whole).

    Examples
    --------
    >>> release_templates(["A", "B"])
    ['Conversations about A.', 'Conversations about A and B.', 'A and B']
    >>> release_templates(["A", "B", "C"])[2]
    'Conversations about A and B, also mentioning C.'
    """
    descriptions = [describe_keywords(slots[:n]) for n in range(1, len(slots) + 1)]
    # Releases written before these templates are audited by theirs too ("clio-lite audit" of an older release).
    earlier = [_earlier_description(slots[:n]) for n in range(1, len(slots) + 1)]
    titles = [compose_title(slots[:n]) for n in range(2, min(3, len(slots)) + 1)]
    return list(dict.fromkeys(descriptions + earlier + titles))


def _earlier_description(keywords: Sequence[str]) -> str:
    """The description template of releases written before phrases: "Conversations about a, b and c; also d, e."."""
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
