"""Facets: one value per conversation (its language, its number of turns, whether it seeks emotional support...).

A facet is any object with a ``name``, a ``kind`` (``"categorical"`` or ``"numeric"``) and a ``compute`` method
(:class:`Facet`). The pipeline computes facets on the accepted conversations, can keep only the conversations
whose facets pass a filter before clustering, and releases per-cluster breakdowns in which every cell is
k-supported (:func:`clio_lite.privacy.breakdown`): numeric values are binned first, and a multi-label value (a
tuple of labels) counts its conversation once under each of its labels.

Facets run in the private zone. A computed facet may read the conversation (turns, message lengths, sentiment
with a local lexicon); a classifier reads the scrubbed text only. What leaves is never a per-conversation value,
only the k-supported cells.

Built in, by name (:func:`get`, :func:`names`):

``turns``
    The number of user messages (numeric, binned 1, 2, 3, 4-5, 6-9, 10+).
``message_length``
    The mean length of the user's messages in words (numeric, binned).
``language``
    The language of the user's messages (ISO 639-1), detected offline by ``py3langid`` (its model ships in the
    package); ``None`` for text too short or too uncertain to tell.
``sentiment_shift``
    For conversations with at least six user messages: the mean VADER compound score (−1…+1) of the last three
    user messages minus that of the first three (numeric, −2…+2; ``None`` for shorter conversations).
``affective``
    The affective-use taxonomy, as a zero-shot embedding classifier (:mod:`clio_lite.studies.affective`).

:class:`EmbeddingClassifier` builds more classifier facets: zero-shot by embedding similarity between a
conversation's scrubbed text and label descriptions, with optional few-shot examples, single- or multi-label.
"""

from __future__ import annotations

import copy
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .privacy import breakdown
from .schema import Conversation

logger = logging.getLogger(__name__)

CATEGORICAL = "categorical"
NUMERIC = "numeric"
KINDS = (CATEGORICAL, NUMERIC)


@runtime_checkable
class Facet(Protocol):
    """What a facet is: a name, a kind, and one value per conversation.

    Attributes
    ----------
    name : str
        The key of its breakdown in ``node.facets``; unique within one fit.
    kind : str
        ``"categorical"`` (values are labels, or tuples of labels for a multi-label facet) or ``"numeric"``
        (values are numbers, binned by the facet's optional ``bins`` edges for breakdowns).

    Notes
    -----
    ``compute(conversations, scrubbed)`` returns one value per conversation, ``None`` when unknown;
    ``scrubbed[i]`` is the PII-scrubbed user text of ``conversations[i]``. A facet with an ``embedder`` attribute
    left as ``None`` is given the pipeline's embedder (and so its cache).
    """

    name: str
    kind: str

    def compute(self, conversations: Sequence[Conversation], scrubbed: Sequence[str]) -> list[Any]: ...


# -- registry ---------------------------------------------------------------------------------------------------

_REGISTRY: dict[str, Callable[..., Facet]] = {}


def register(name: str, factory: Callable[..., Facet], *, replace: bool = False) -> None:
    """Make ``get(name)`` build a facet with ``factory(**params)``.

    Examples
    --------
    >>> class Words:
    ...     name, kind, bins = "words", "numeric", (0, 50, 200)
    ...     def compute(self, conversations, scrubbed):
    ...         return [len(text.split()) for text in scrubbed]
    >>> register("words", Words)
    >>> get("words").compute([], ["two words"])
    [2]
    """
    if name in _REGISTRY and not replace:
        raise ValueError(f"a facet named {name!r} is already registered; pass replace=True to replace it")
    _REGISTRY[name] = factory


def get(name: str, **params: Any) -> Facet:
    """A new facet of the registered kind ``name``, built with ``params``.

    Examples
    --------
    >>> get("turns").name
    'turns'
    """
    if name not in _REGISTRY:
        raise KeyError(f"no facet named {name!r}; registered facets are {', '.join(names())}")
    return _REGISTRY[name](**params)


def names() -> list[str]:
    """The names of the registered facets, sorted."""
    return sorted(_REGISTRY)


def resolve(facet: str | Facet) -> Facet:
    """A facet from a registered name or a facet object (checked for ``name``, ``kind`` and ``compute``)."""
    if isinstance(facet, str):
        return get(facet)
    if not isinstance(facet, Facet):
        raise TypeError(
            f"{facet!r} is not a facet: expected a registered name ({', '.join(names())}) or an object with "
            "'name', 'kind' and 'compute(conversations, scrubbed)'"
        )
    if facet.kind not in KINDS:
        raise ValueError(f"facet {facet.name!r} has kind {facet.kind!r}; expected one of {KINDS}")
    return facet


def compute_facets(
    facets: Sequence[Facet], conversations: Sequence[Conversation], scrubbed: Sequence[str], embedder: Any = None
) -> dict[str, list[Any]]:
    """Each facet's values, ``{name: one value per conversation}``.

    A facet whose ``embedder`` attribute is ``None`` is run as a copy given ``embedder`` (the pipeline's), so
    classifier facets share the pipeline's model and cache without changing the caller's object.
    """
    seen = [facet.name for facet in facets]
    duplicates = sorted({name for name in seen if seen.count(name) > 1})
    if duplicates:
        raise ValueError(f"two facets share the name(s) {duplicates}; each facet needs its own name")
    values: dict[str, list[Any]] = {}
    for facet in facets:
        if embedder is not None and hasattr(facet, "embedder") and facet.embedder is None:
            facet = copy.copy(facet)
            facet.embedder = embedder
        result = list(facet.compute(conversations, scrubbed))
        if len(result) != len(conversations):
            raise ValueError(
                f"facet {facet.name!r} returned {len(result)} values for {len(conversations)} conversations"
            )
        values[facet.name] = result
        logger.debug("facet %s computed", facet.name)
    return values


# -- breakdowns and filters --------------------------------------------------------------------------------------


def bin_label(value: float, edges: Sequence[float], integer: bool = False) -> str:
    """The bin of ``value`` between ascending ``edges``: below the first, between two, or from the last on.

    Examples
    --------
    >>> [bin_label(v, (1, 2, 3, 6), integer=True) for v in (0, 1, 2, 4, 9)]
    ['<1', '1', '2', '3-5', '6+']
    >>> bin_label(0.3, (-0.5, -0.1, 0.1, 0.5))
    '0.1 to 0.5'
    """
    if value < edges[0]:
        return f"<{edges[0]}"
    for low, high in zip(edges, edges[1:], strict=False):
        if value < high:
            if integer:
                return str(low) if high - low == 1 else f"{low}-{high - 1}"
            return f"{low} to {high}"
    return f"{edges[-1]}+"


def facet_keys(facet: Facet, values: Sequence[Any]) -> list[str | None]:
    """What each value shows as in a breakdown: a numeric value binned, a label as itself, unknown as ``None``."""
    if facet.kind == NUMERIC:
        bins = getattr(facet, "bins", None)
        integer = getattr(facet, "integer", False)

        def key(value: Any) -> str | None:
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return None
            if bins is not None:
                return bin_label(value, bins, integer)
            return str(int(value)) if float(value).is_integer() else f"{value:.1f}"

        return [key(value) for value in values]
    return list(values)


def node_breakdown(facet: Facet, values: Sequence[Any], user_codes: np.ndarray, min_users: int) -> dict[str, int]:
    """The k-supported breakdown of one node's conversations by ``facet`` (see :func:`privacy.breakdown`).

    A multi-label value (a tuple or list of labels) counts its conversation once under each label, so the cells of
    a multi-label facet may add up to more than the node's conversations; an empty tuple counts as unknown.
    """
    keys = facet_keys(facet, values)
    expanded: list[str | None] = []
    codes: list[int] = []
    for key, code in zip(keys, np.asarray(user_codes), strict=True):
        labels = list(key) if isinstance(key, tuple | list) else [key]
        for label in labels or [None]:
            expanded.append(label)
            codes.append(int(code))
    return breakdown(expanded, np.asarray(codes, dtype=int), min_users)


def keep_mask(values: Mapping[str, Sequence[Any]], facet_filter: Any, n: int) -> np.ndarray:
    """Which conversations pass ``facet_filter``.

    ``facet_filter`` is ``None`` (keep all), a mapping ``{facet name: allowed values}`` (a conversation is kept when
    every named facet's value, or for a multi-label facet any of its labels, is allowed), or a callable that takes
    one conversation's ``{facet name: value}`` and returns whether to keep it.

    Examples
    --------
    >>> keep_mask({"language": ["en", "fr", None]}, {"language": ["en"]}, 3).tolist()
    [True, False, False]
    """
    if facet_filter is None:
        return np.ones(n, dtype=bool)
    if callable(facet_filter):
        return np.array([bool(facet_filter({k: v[i] for k, v in values.items()})) for i in range(n)], dtype=bool)
    if not isinstance(facet_filter, Mapping):
        raise TypeError(f"facet_filter must be None, a mapping of facet name to allowed values, or a callable; "
                        f"got {type(facet_filter).__name__}")
    unknown = sorted(set(facet_filter) - set(values))
    if unknown:
        raise ValueError(f"facet_filter names {unknown}, which are not among the facets computed: {sorted(values)}")
    mask = np.ones(n, dtype=bool)
    for name, allowed in facet_filter.items():
        allowed = {allowed} if isinstance(allowed, str) else set(allowed)
        for i, value in enumerate(values[name]):
            labels = value if isinstance(value, tuple | list) else (value,)
            mask[i] &= any(label in allowed for label in labels)
    return mask


# -- computed facets ----------------------------------------------------------------------------------------------


def _user_messages(conversation: Conversation) -> list[str]:
    return [m.content for m in conversation.messages if m.role == "user" and m.content]


class TurnCount:
    """The number of user messages in a conversation (numeric)."""

    name = "turns"
    kind = NUMERIC
    integer = True

    def __init__(self, bins: Sequence[int] = (1, 2, 3, 4, 6, 10)):
        self.bins = tuple(bins)

    def compute(self, conversations: Sequence[Conversation], scrubbed: Sequence[str]) -> list[int]:
        return [len(_user_messages(c)) for c in conversations]


class MessageLength:
    """The mean length of a conversation's user messages, in words (numeric)."""

    name = "message_length"
    kind = NUMERIC
    integer = True

    def __init__(self, bins: Sequence[int] = (1, 10, 25, 50, 100, 250)):
        self.bins = tuple(bins)

    def compute(self, conversations: Sequence[Conversation], scrubbed: Sequence[str]) -> list[float]:
        lengths = []
        for conversation in conversations:
            messages = _user_messages(conversation)
            lengths.append(float(np.mean([len(m.split()) for m in messages])) if messages else None)
        return lengths


_PLACEHOLDER = re.compile(r"<[A-Z_]+>")


class Language:
    """The language of the user's messages (ISO 639-1 code), detected offline with ``py3langid``.

    Parameters
    ----------
    languages : sequence of str or None
        Restrict the answer to these codes (fewer confusions between close languages); ``None`` allows the
        model's 97 languages.
    min_chars : int
        Text shorter than this (after removing scrubber placeholders) is ``None``: too short to tell.
    min_confidence : float
        Below this normalised probability the answer is ``None``.
    """

    name = "language"
    kind = CATEGORICAL

    def __init__(self, languages: Sequence[str] | None = None, min_chars: int = 12, min_confidence: float = 0.5):
        self.languages = None if languages is None else tuple(languages)
        self.min_chars = min_chars
        self.min_confidence = min_confidence

    @cached_property
    def _identifier(self):
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        if self.languages is not None:
            identifier.set_languages(list(self.languages))
        return identifier

    def detect(self, text: str) -> str | None:
        """The language of ``text``, or ``None``."""
        text = _PLACEHOLDER.sub(" ", text).strip()
        if len(text) < self.min_chars:
            return None
        language, confidence = self._identifier.classify(text)
        return language if confidence >= self.min_confidence else None

    def compute(self, conversations: Sequence[Conversation], scrubbed: Sequence[str]) -> list[str | None]:
        return [self.detect(text) for text in scrubbed]


class SentimentShift:
    """How the user's mood moved: mean sentiment of the last ``window`` user messages minus the first ``window``.

    Sentiment is VADER's compound score (−1 very negative … +1 very positive) from ``vaderSentiment``, a lexicon
    that ships in the package. Conversations with fewer than ``min_user_messages`` user messages get ``None``.
    The messages are read in the private zone; only binned, k-supported cells are released.
    """

    name = "sentiment_shift"
    kind = NUMERIC
    integer = False

    def __init__(
        self, min_user_messages: int = 6, window: int = 3, bins: Sequence[float] = (-0.5, -0.1, 0.1, 0.5)
    ):
        self.min_user_messages = min_user_messages
        self.window = window
        self.bins = tuple(bins)

    @cached_property
    def _analyzer(self):
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        return SentimentIntensityAnalyzer()

    def score(self, text: str) -> float:
        """VADER's compound score of one message, −1…+1."""
        return float(self._analyzer.polarity_scores(text)["compound"])

    def compute(self, conversations: Sequence[Conversation], scrubbed: Sequence[str]) -> list[float | None]:
        if self.min_user_messages < 2 * self.window:
            raise ValueError(
                f"SentimentShift: min_user_messages={self.min_user_messages} must be at least 2 * window "
                f"({2 * self.window}) so the first and last messages do not overlap"
            )
        shifts: list[float | None] = []
        for conversation in conversations:
            messages = _user_messages(conversation)
            if len(messages) < self.min_user_messages:
                shifts.append(None)
                continue
            first = np.mean([self.score(m) for m in messages[: self.window]])
            last = np.mean([self.score(m) for m in messages[-self.window :]])
            shifts.append(round(float(last - first), 6))
        return shifts


# -- classifier facets -------------------------------------------------------------------------------------------


def _default_embedder():
    from .embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(cache_dir=Path.home() / ".cache" / "clio_lite", verbose=False)


class EmbeddingClassifier:
    """A classifier facet that works offline: embedding similarity between scrubbed text and label descriptions.

    Each label has one or more descriptions (and optionally a few example conversations); a conversation's score
    for a label is its highest cosine similarity to any of them. Zero-shot with descriptions only, few-shot with
    examples added.

    Parameters
    ----------
    name : str
        The facet's name.
    labels : mapping of str to str or sequence of str
        Each label and its description(s), written as the text a conversation of that label would be close to.
    examples : mapping of str to sequence of str, optional
        Few-shot examples per label (synthetic or already-released text: they are embedded, never released).
    multi_label : bool
        Give every label that scores within ``margin`` of the best and at least its threshold (a tuple of labels,
        best first); otherwise the best label alone.
    threshold : float or mapping of str to float
        The lowest score that gives a label (per label if a mapping).
    margin : float
        With ``multi_label``, how far below the best score another label may be and still be given.
    exclusive : sequence of str
        Labels that, when best, are given alone (e.g. "not affective"): they never combine with others.
    default : str or None
        The value when no label reaches its threshold (``None``: unknown).
    embedder : object or None
        Anything with ``embed(texts) -> ndarray`` of L2-normalised rows. ``None``: in a :class:`clio_lite.Clio` fit
        the pipeline's own embedder (and cache); on its own, the default model with the default cache.

    Examples
    --------
    >>> topic = EmbeddingClassifier("topic", {"code": "programming and software bugs", "food": "cooking a recipe"})
    >>> topic.compute([], ["my python script raises a KeyError", "how long do I bake bread"])  # doctest: +SKIP
    ['code', 'food']
    """

    kind = CATEGORICAL

    def __init__(
        self,
        name: str,
        labels: Mapping[str, str | Sequence[str]],
        examples: Mapping[str, Sequence[str]] | None = None,
        multi_label: bool = False,
        threshold: float | Mapping[str, float] = 0.0,
        margin: float = 0.0,
        exclusive: Sequence[str] = (),
        default: str | None = None,
        embedder: Any = None,
    ):
        self.name = name
        self.labels = {label: (text,) if isinstance(text, str) else tuple(text) for label, text in labels.items()}
        self.examples = {label: tuple(texts) for label, texts in (examples or {}).items()}
        self.multi_label = multi_label
        self.threshold = threshold
        self.margin = margin
        self.exclusive = tuple(exclusive)
        self.default = default
        self.embedder = embedder
        unknown = (set(self.examples) | set(self.exclusive)) - set(self.labels)
        if unknown:
            raise ValueError(f"EmbeddingClassifier {name!r}: {sorted(unknown)} are not among its labels")

    @property
    def label_names(self) -> list[str]:
        return list(self.labels)

    def _thresholds(self) -> np.ndarray:
        if isinstance(self.threshold, Mapping):
            return np.array([self.threshold.get(label, 0.0) for label in self.labels], dtype=float)
        return np.full(len(self.labels), float(self.threshold))

    def _prototypes(self, embedder: Any) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings of every description and example, and the label index of each."""
        texts: list[str] = []
        owners: list[int] = []
        for index, label in enumerate(self.labels):
            for text in self.labels[label] + self.examples.get(label, ()):
                texts.append(text)
                owners.append(index)
        return np.asarray(embedder.embed(texts), dtype=np.float32), np.asarray(owners)

    def scores(self, scrubbed: Sequence[str]) -> np.ndarray:
        """An ``(n, n_labels)`` array: each conversation's score for each label (columns in ``labels`` order)."""
        embedder = self.embedder if self.embedder is not None else _default_embedder()
        prototypes, owners = self._prototypes(embedder)
        if len(scrubbed) == 0:
            return np.zeros((0, len(self.labels)))
        similarity = np.asarray(embedder.embed(list(scrubbed)), dtype=np.float32) @ prototypes.T
        scores = np.full((len(scrubbed), len(self.labels)), -np.inf)
        for index in range(len(self.labels)):
            scores[:, index] = similarity[:, owners == index].max(axis=1)
        return scores

    def decide(self, scores: np.ndarray) -> list[Any]:
        """Labels from a score array (see the class parameters for the rule)."""
        names = self.label_names
        thresholds = self._thresholds()
        exclusive = np.array([label in self.exclusive for label in names])
        values: list[Any] = []
        for row in scores:
            best = int(np.argmax(row))
            if row[best] < thresholds[best]:
                values.append((self.default,) if self.multi_label and self.default is not None else self.default)
            elif not self.multi_label:
                values.append(names[best])
            elif exclusive[best]:
                values.append((names[best],))
            else:
                given = np.flatnonzero(~exclusive & (row >= thresholds) & (row >= row[best] - self.margin))
                values.append(tuple(names[i] for i in sorted(given, key=lambda i: (-row[i], i))))
        return values

    def compute(self, conversations: Sequence[Conversation], scrubbed: Sequence[str]) -> list[Any]:
        return self.decide(self.scores(scrubbed))


def _affective(**params: Any) -> Facet:
    from .studies.affective import affective_facet

    return affective_facet(**params)


for _name, _factory in (
    ("turns", TurnCount),
    ("message_length", MessageLength),
    ("language", Language),
    ("sentiment_shift", SentimentShift),
    ("affective", _affective),
):
    register(_name, _factory)
