"""How much personal data does clio_lite's scrubber remove, beside plain Presidio, and how fast?

Runs, in one process and on the same texts of ``../shared/data/presidio_synth`` (1,500 sentences with gold PII
spans):

- ``presidio_plain``: what a user would write: Presidio's ``AnalyzerEngine`` with the packaged small English spaCy
  model and Presidio's default recognizers and entities, then ``AnonymizerEngine``, one text at a time;
- ``presidio_batched``: the same analyzer through Presidio's ``BatchAnalyzerEngine`` (spaCy's ``nlp.pipe``);
- ``clio_lite_full_spacy``: clio_lite's scrubber running every component of the spaCy model (how it ran before);
- ``clio_lite``: clio_lite's default ``PresidioScrubber`` (spaCy tokenizer + NER only);
- ``clio_lite_patterns``: clio_lite's ``PatternScrubber`` (the fast mode's: the same rules and Presidio's pattern
  recognizers, no spaCy model run).

and prints one JSON document: per entity type span recall and character precision, the totals over the identifying
types, on a dev half and a held-out half of the records (split by a hash of the record id; the recognizers were
tuned on the dev half only), and the throughput of each configuration in documents per second. It also runs each
configuration on the 500 user prompts of ``../shared/data/arena_hard`` (real chatbot prompts with almost no personal
data) and reports how much of that ordinary text would be replaced, and as what. The measures are defined in
``docs/scrubbing.md``.

Usage::

    python benchmarks/scrub.py > scrub.json
    python benchmarks/scrub.py --configs presidio_plain clio_lite --misses 20   # also log clio_lite's dev misses
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clio_lite.scrub import PatternScrubber, PresidioScrubber, resolve_spacy_model  # noqa: E402

logger = logging.getLogger("benchmarks.scrub")

DATA = ROOT.parent / "shared" / "data" / "presidio_synth" / "presidio_synth.jsonl"
#: Real chatbot prompts (Arena-Hard), public and nearly free of personal data: how much of ordinary text is replaced.
TOPICAL_PROMPTS = ROOT.parent / "shared" / "data" / "arena_hard" / "arena_hard.jsonl"

#: Gold types that identify a person (alone or with little else); recall is required on these.
IDENTIFYING = (
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "STREET_ADDRESS",
    "ZIP_CODE",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "US_DRIVER_LICENSE",
    "IP_ADDRESS",
    "DOMAIN_NAME",
)
#: Gold types that are kept as text by design (topical, or identifying only in combination); reported, not required.
TOPICAL = ("GPE", "ORGANIZATION", "DATE_TIME", "TITLE", "AGE", "NRP")

#: A gold span is found when at least this share of its letters and digits were replaced.
COVERAGE = 0.5


def split(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """Dev and held-out halves, by the parity of the first byte of sha256(record id)."""
    dev, held_out = [], []
    for record in records:
        digest = hashlib.sha256(record["id"].encode("utf-8")).digest()
        (dev if digest[0] % 2 == 0 else held_out).append(record)
    return dev, held_out


def _mask(length: int, spans) -> list[bool]:
    replaced = [False] * length
    for start, end, *_ in spans:
        for i in range(start, end):
            replaced[i] = True
    return replaced


def evaluate(records: list[dict], predicted: list[list[tuple[int, int, str]]]) -> dict:
    """Span recall per gold type and character precision per replacing type (definitions in docs/scrubbing.md)."""
    gold_total, gold_found, gold_full = Counter(), Counter(), Counter()
    by_type_chars, by_type_in_gold, by_type_in_identifying = Counter(), Counter(), Counter()
    for record, spans in zip(records, predicted, strict=True):
        text = record["text"]
        replaced = _mask(len(text), spans)
        in_gold = _mask(len(text), ((s["start"], s["end"]) for s in record["spans"]))
        in_identifying = _mask(
            len(text), ((s["start"], s["end"]) for s in record["spans"] if s["entity_type"] in IDENTIFYING)
        )
        for span in record["spans"]:
            kind = span["entity_type"]
            letters = [i for i in range(span["start"], span["end"]) if text[i].isalnum()]
            share = sum(replaced[i] for i in letters) / len(letters) if letters else 1.0
            gold_total[kind] += 1
            gold_found[kind] += share >= COVERAGE
            gold_full[kind] += share == 1.0
        for start, end, kind in spans:
            for i in range(start, end):
                if text[i].isspace():
                    continue
                by_type_chars[kind] += 1
                by_type_in_gold[kind] += in_gold[i]
                by_type_in_identifying[kind] += in_identifying[i]

    def ratio(a, b):
        return round(a / b, 4) if b else None

    recall = {
        kind: {"spans": gold_total[kind], "recall": ratio(gold_found[kind], gold_total[kind]),
               "recall_full": ratio(gold_full[kind], gold_total[kind])}
        for kind in sorted(gold_total)
    }
    precision = {
        kind: {"chars": by_type_chars[kind], "precision": ratio(by_type_in_gold[kind], by_type_chars[kind]),
               "precision_identifying": ratio(by_type_in_identifying[kind], by_type_chars[kind])}
        for kind in sorted(by_type_chars)
    }
    identifying_total = sum(gold_total[k] for k in IDENTIFYING)
    chars = sum(by_type_chars.values())
    return {
        "records": len(records),
        "overall": {
            "identifying_spans": identifying_total,
            "recall_identifying": ratio(sum(gold_found[k] for k in IDENTIFYING), identifying_total),
            "recall_identifying_full": ratio(sum(gold_full[k] for k in IDENTIFYING), identifying_total),
            "recall_identifying_macro": ratio(
                sum(gold_found[k] / gold_total[k] for k in IDENTIFYING if gold_total[k]),
                sum(1 for k in IDENTIFYING if gold_total[k]),
            ),
            "recall_topical": ratio(sum(gold_found[k] for k in TOPICAL), sum(gold_total[k] for k in TOPICAL)),
            "replaced_chars": chars,
            "precision": ratio(sum(by_type_in_gold.values()), chars),
            "precision_identifying": ratio(sum(by_type_in_identifying.values()), chars),
        },
        "recall_by_gold_type": recall,
        "precision_by_replacing_type": precision,
    }


def _presidio_analyzer():
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    provider = NlpEngineProvider(
        nlp_configuration={"nlp_engine_name": "spacy",
                           "models": [{"lang_code": "en", "model_name": resolve_spacy_model(None)}]}
    )
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    return AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])


def presidio_plain():
    """Analyze and anonymize one text at a time with Presidio's defaults; spans are the analyzer's results."""
    from presidio_anonymizer import AnonymizerEngine

    analyzer, anonymizer = _presidio_analyzer(), AnonymizerEngine()

    def process(texts):
        spans = []
        for text in texts:
            found = analyzer.analyze(text, language="en")
            anonymizer.anonymize(text=text, analyzer_results=found)
            spans.append([(r.start, r.end, r.entity_type) for r in found])
        return spans

    return process


def presidio_batched():
    """The same analyzer through Presidio's BatchAnalyzerEngine (spaCy's nlp.pipe), then the anonymizer."""
    from presidio_analyzer import BatchAnalyzerEngine
    from presidio_anonymizer import AnonymizerEngine

    batch, anonymizer = BatchAnalyzerEngine(analyzer_engine=_presidio_analyzer()), AnonymizerEngine()

    def process(texts):
        spans = []
        for text, found in zip(texts, batch.analyze_iterator(texts, language="en", batch_size=64), strict=True):
            anonymizer.anonymize(text=text, analyzer_results=found)
            spans.append([(r.start, r.end, r.entity_type) for r in found])
        return spans

    return process


def clio_lite_scrubber(scrubber_class=PresidioScrubber, **options):
    """A clio_lite scrubber: find() then replace(), which is what scrub() does."""
    scrubber = scrubber_class(**options)

    def process(texts):
        spans = scrubber.find(texts)
        for text, found in zip(texts, spans, strict=True):
            scrubber.replace(text, found)
        return [[(s.start, s.end, s.entity_type) for s in found] for found in spans]

    return process


CONFIGS = {
    "presidio_plain": presidio_plain,
    "presidio_batched": presidio_batched,
    "clio_lite_full_spacy": lambda: clio_lite_scrubber(spacy_components=None),
    "clio_lite": clio_lite_scrubber,
    "clio_lite_patterns": lambda: clio_lite_scrubber(PatternScrubber),
}


def timed(process, texts):
    """Spans of each text, the seconds taken and the CPU seconds of this process (steadier than wall time on a
    shared machine), after a warm-up call on two texts."""
    process(texts[:2])
    started, cpu = time.perf_counter(), time.process_time()
    spans = process(texts)
    return spans, time.perf_counter() - started, time.process_time() - cpu


def over_scrubbing(texts: list[str], spans) -> dict:
    """On texts with (almost) no personal data: how much would be replaced, and as what."""
    by_type, chars, changed = Counter(), 0, 0
    for text, found in zip(texts, spans, strict=True):
        replaced = _mask(len(text), found)
        chars += sum(1 for i, flag in enumerate(replaced) if flag and not text[i].isspace())
        changed += bool(found)
        by_type.update(kind for *_, kind in found)
    total = sum(1 for text in texts for char in text if not char.isspace())
    return {
        "texts": len(texts),
        "texts_changed_share": round(changed / len(texts), 4),
        "replaced_char_share": round(chars / total, 4),
        "replacements_by_type": dict(by_type.most_common()),
    }


def _log_misses(records, predicted, limit):
    for record, spans in zip(records, predicted, strict=True):
        text = record["text"]
        replaced = _mask(len(text), spans)
        for span in record["spans"]:
            if span["entity_type"] not in IDENTIFYING:
                continue
            letters = [i for i in range(span["start"], span["end"]) if text[i].isalnum()]
            if letters and sum(replaced[i] for i in letters) / len(letters) < COVERAGE and limit > 0:
                limit -= 1
                logger.info("miss %s %r in %r", span["entity_type"], text[span["start"]:span["end"]], text)


def _user_prompts(path: Path) -> list[str]:
    prompts = []
    for line in path.open(encoding="utf-8"):
        record = json.loads(line)
        prompts.append("\n".join(m["content"] for m in record["messages"] if m["role"] == "user"))
    return prompts


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--topical", type=Path, default=TOPICAL_PROMPTS,
                        help="conversations JSONL whose user turns have (almost) no personal data; '' to skip")
    parser.add_argument("--misses", type=int, default=0, help="log up to N identifying dev spans clio_lite missed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    records = [json.loads(line) for line in args.data.open(encoding="utf-8")]
    dev, held_out = split(records)
    dev_templates = {r["labels"]["template_id"] for r in dev}
    unseen = [r for r in held_out if r["labels"]["template_id"] not in dev_templates]
    topical = _user_prompts(args.topical) if str(args.topical) and args.topical.is_file() else []
    ordered = dev + held_out
    texts = [r["text"] for r in ordered]
    out: dict = {
        "dataset": str(args.data.relative_to(ROOT.parent)) if args.data.is_relative_to(ROOT.parent) else str(args.data),
        "topical_prompts": {"path": str(args.topical.name), "texts": len(topical)} if topical else None,
        "records": {"all": len(records), "dev": len(dev), "held_out": len(held_out),
                    "held_out_unseen_templates": len(unseen)},
        "split": "dev = first byte of sha256(record id) even; recognizers tuned on dev only",
        "identifying_types": list(IDENTIFYING),
        "topical_types": list(TOPICAL),
        "coverage_for_found": COVERAGE,
        "spacy_model": resolve_spacy_model(None),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "configs": {},
    }
    for name in args.configs:
        logger.info("running %s on %d texts", name, len(texts))
        process = CONFIGS[name]()
        spans, seconds, cpu_seconds = timed(process, texts)
        by_id = dict(zip((r["id"] for r in ordered), spans, strict=True))
        out["configs"][name] = {
            "seconds": round(seconds, 2),
            "docs_per_second": round(len(texts) / seconds, 1),
            "docs_per_cpu_second": round(len(texts) / cpu_seconds, 1),
            "dev": evaluate(dev, [by_id[r["id"]] for r in dev]),
            "held_out": evaluate(held_out, [by_id[r["id"]] for r in held_out]),
            "held_out_unseen_templates": evaluate(unseen, [by_id[r["id"]] for r in unseen])["overall"],
        }
        if topical:
            topical_spans, topical_seconds, topical_cpu = timed(process, topical)
            out["configs"][name]["topical_prompts"] = over_scrubbing(topical, topical_spans) | {
                "docs_per_second": round(len(topical) / topical_seconds, 1),
                "docs_per_cpu_second": round(len(topical) / topical_cpu, 1),
            }
        summary = {part: out["configs"][name][part]["overall"] for part in ("dev", "held_out")}
        logger.info("%s: %.1f docs/s %s", name, len(texts) / seconds, json.dumps(summary))
        if name == "clio_lite" and args.misses:
            _log_misses(dev, [by_id[r["id"]] for r in dev], args.misses)
    configs = out["configs"]
    if "clio_lite" in configs and "clio_lite_full_spacy" in configs:
        out["speedup_ner_only_vs_full_spacy"] = round(
            configs["clio_lite"]["docs_per_second"] / configs["clio_lite_full_spacy"]["docs_per_second"], 2
        )
    if "clio_lite" in configs and "clio_lite_patterns" in configs:
        for per in ("docs_per_second", "docs_per_cpu_second"):
            out[f"speedup_patterns_vs_default_{per}"] = round(
                configs["clio_lite_patterns"][per] / configs["clio_lite"][per], 2
            )
    if "clio_lite" in configs and "presidio_plain" in configs:
        out["speedup_vs_presidio_plain"] = round(
            configs["clio_lite"]["docs_per_second"] / configs["presidio_plain"]["docs_per_second"], 2
        )
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
