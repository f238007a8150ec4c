"""Precision and recall of the offline facets against the fixture study corpus's gold labels; prints JSON.

The corpus is ``fixtures.study.generate_study_corpus(--n, seed=--seed)``: the generator's conversations (gold
affective labels mapped from their subtopics) plus long affective conversations, romantic roleplay, emotionally
themed content creation and Spanish, French and German conversations. The text the classifier sees is the
scrubbed user text, as in the pipeline (Presidio, then all-MiniLM-L6-v2, with the embedding cache in
``~/.cache/clio_lite``).

The affective classifier is tuned on a **dev** split and reported on a **held-out test** split; the split is by
user (a user's conversations all fall on one side), so no user's wording is seen in both. Tuned: the threshold
and the multi-label margin, over a grid, by micro-F1 on dev. Reported for two variants:

* ``zero_shot``: label descriptions only (the preset :func:`clio_lite.studies.affective.affective_facet`);
* ``few_shot``: the same plus ``--shots`` example conversations per label drawn from the dev split.

Per label precision and recall, micro and macro averages, the binary "affective (any)" decision, and the same on
the English conversations alone. The language facet (no tuning) is scored on every conversation. The per-message
sentiment score behind ``sentiment_shift`` (VADER) is checked against Topical-Chat's human per-turn labels
(``../shared/data/topical_chat``): AUROC of the compound score, Happy against Sad, Disgusted, Angry or Fearful.

    python benchmarks/facets.py > facets.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from random import Random

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

import numpy as np  # noqa: E402

from clio_lite.embed import SentenceTransformerEmbedder  # noqa: E402
from clio_lite.facets import Language  # noqa: E402
from clio_lite.io import load_conversations  # noqa: E402
from clio_lite.scrub import PresidioScrubber  # noqa: E402
from clio_lite.studies.affective import AFFECTIVE_LABELS, LABELS, affective_facet, is_affective  # noqa: E402
from fixtures.study import generate_study_corpus, gold_affective, gold_language  # noqa: E402

logger = logging.getLogger("benchmarks.facets")

THRESHOLDS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35)
MARGINS = (0.0, 0.025, 0.05, 0.1)


def precision_recall(pred: list[tuple], gold: list[tuple], labels: tuple[str, ...]) -> dict:
    """Per-label precision, recall, F1 and support, with micro and macro averages, for multi-label sets."""
    per_label = {}
    total_tp = total_fp = total_fn = 0
    for label in labels:
        tp = sum(label in p and label in g for p, g in zip(pred, gold, strict=True))
        fp = sum(label in p and label not in g for p, g in zip(pred, gold, strict=True))
        fn = sum(label not in p and label in g for p, g in zip(pred, gold, strict=True))
        total_tp, total_fp, total_fn = total_tp + tp, total_fp + fp, total_fn + fn
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3),
                            "support": tp + fn}
    micro_p = total_tp / (total_tp + total_fp) if total_tp + total_fp else 0.0
    micro_r = total_tp / (total_tp + total_fn) if total_tp + total_fn else 0.0
    supported = [m for m in per_label.values() if m["support"]]
    return {
        "per_label": per_label,
        "micro": {"precision": round(micro_p, 3), "recall": round(micro_r, 3),
                  "f1": round(2 * micro_p * micro_r / (micro_p + micro_r), 3) if micro_p + micro_r else 0.0},
        "macro": {"precision": round(float(np.mean([m["precision"] for m in supported])), 3),
                  "recall": round(float(np.mean([m["recall"] for m in supported])), 3)},
    }


def binary(pred: list[tuple], gold: list[tuple]) -> dict:
    """Precision and recall of the affective-or-not decision."""
    p = [("affective",) if is_affective(x) else () for x in pred]
    g = [("affective",) if is_affective(x) else () for x in gold]
    return precision_recall(p, g, ("affective",))["per_label"]["affective"]


def evaluate(classifier, scores: np.ndarray, gold: list[tuple], dev: np.ndarray, test: np.ndarray,
             english: np.ndarray, kinds: list[str]) -> dict:
    """Tune threshold and margin on dev (micro-F1), then score dev and test with the chosen pair."""
    grid = []
    for threshold in THRESHOLDS:
        for margin in MARGINS:
            classifier.threshold, classifier.margin = threshold, margin
            pred = classifier.decide(scores[dev])
            f1 = precision_recall(pred, [gold[i] for i in dev], LABELS)["micro"]["f1"]
            grid.append((f1, -threshold, -margin))
    f1, threshold, margin = max(grid)
    classifier.threshold, classifier.margin = -threshold, -margin
    pred = classifier.decide(scores)

    def part(index: np.ndarray) -> dict:
        p, g = [pred[i] for i in index], [gold[i] for i in index]
        return {"conversations": int(len(index)), **precision_recall(p, g, LABELS), "affective_any": binary(p, g)}

    by_kind = {}
    for kind in sorted({kinds[i] for i in test}):
        index = [i for i in test if kinds[i] == kind]
        by_kind[kind] = {
            "conversations": len(index),
            "exact_match": round(float(np.mean([set(pred[i]) == set(gold[i]) for i in index])), 3),
            "affective_any_accuracy": round(float(np.mean([is_affective(pred[i]) == is_affective(gold[i])
                                                           for i in index])), 3),
        }
    return {
        "tuned": {"threshold": -threshold, "margin": -margin, "dev_micro_f1": f1},
        "test_by_kind": by_kind,
        "dev": part(dev),
        "test": part(test),
        "test_english": part(test[english[test]]),
    }


NEGATIVE_MOODS = ("Sad", "Disgusted", "Angry", "Fearful")


def sentiment_agreement(path: Path) -> dict:
    """VADER's compound score against Topical-Chat's per-turn human sentiment labels (Happy vs negative moods)."""
    from clio_lite.facets import SentimentShift

    scorer = SentimentShift()
    scores, positive = [], []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            for message, mood in zip(record["messages"], record["labels"]["message_sentiments"], strict=True):
                if mood == "Happy" or mood in NEGATIVE_MOODS:
                    scores.append(scorer.score(message["content"]))
                    positive.append(mood == "Happy")
    scores_array, positive_array = np.array(scores), np.array(positive)
    order = np.argsort(scores_array, kind="stable")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    n_pos, n_neg = positive_array.sum(), (~positive_array).sum()
    auroc = (ranks[positive_array].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return {
        "dataset": "topical_chat per-turn sentiment (Happy vs Sad/Disgusted/Angry/Fearful)",
        "messages": {"happy": int(n_pos), "negative": int(n_neg)},
        "auroc": round(float(auroc), 3),
        "mean_compound": {"happy": round(float(scores_array[positive_array].mean()), 3),
                          "negative": round(float(scores_array[~positive_array].mean()), 3)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1200, help="generator conversations (the extras are added)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shots", type=int, default=5, help="few-shot examples per label, drawn from dev")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--topical-chat", type=Path,
                        default=ROOT.parent / "shared" / "data" / "topical_chat" / "topical_chat.jsonl",
                        help="Topical-Chat JSONL for the sentiment check (skipped if missing)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    start = time.perf_counter()

    records = generate_study_corpus(args.n, seed=args.seed)
    convs = load_conversations(records)
    by_id = {r["id"]: r for r in records}
    gold = [gold_affective(by_id[c.id]) for c in convs]
    languages = [gold_language(by_id[c.id]) for c in convs]
    english = np.array([language == "en" for language in languages])
    # The kind of conversation: a generator subtopic's category, or the study extra's kind (long, foreign...).
    kinds = [by_id[c.id]["gold"]["kind"] if by_id[c.id]["gold"]["kind"] != "base"
             else "generator:" + by_id[c.id]["labels"]["category"] for c in convs]
    scrubber = PresidioScrubber()
    texts = [c.user_text() for c in convs]
    scrubbed = []
    for begin in range(0, len(texts), 256):
        scrubbed.extend(scrubber.scrub(texts[begin : begin + 256]).texts)
    logger.info("scrubbed %d conversations", len(scrubbed))

    # Split by user: sha256 of the user id, so the split does not depend on the order of the records.
    on_dev = np.array([hashlib.sha256(c.user_id.encode()).digest()[0] % 2 == 0 for c in convs])
    dev, test = np.flatnonzero(on_dev), np.flatnonzero(~on_dev)

    embedder = SentenceTransformerEmbedder(cache_dir=Path.home() / ".cache" / "clio_lite", verbose=False)
    zero = affective_facet(embedder=embedder)
    results = {"corpus": {"generator_n": args.n, "seed": args.seed, "conversations": len(convs),
                          "dev": int(len(dev)), "test": int(len(test)), "split": "by user (sha256 of the user id)",
                          "gold_support": {label: sum(label in g for g in gold) for label in LABELS}}}
    results["zero_shot"] = evaluate(zero, zero.scores(scrubbed), gold, dev, test, english, kinds)
    logger.info("zero-shot done")

    rng = Random(args.seed)
    examples = {}
    for label in LABELS:
        pool = [i for i in dev if gold[i] == (label,) or (label in gold[i] and label in AFFECTIVE_LABELS)]
        examples[label] = [scrubbed[i] for i in rng.sample(pool, min(args.shots, len(pool)))]
    few = affective_facet(embedder=embedder, examples=examples)
    results["few_shot"] = {"shots_per_label": args.shots,
                           **evaluate(few, few.scores(scrubbed), gold, dev, test, english, kinds)}
    logger.info("few-shot done")

    detected = Language().compute(convs, scrubbed)
    language_labels = tuple(sorted(set(languages)))
    results["language"] = precision_recall(
        [(d,) if d else () for d in detected], [(g,) for g in languages], language_labels
    )
    results["language"]["unknown"] = sum(d is None for d in detected)
    if args.topical_chat.exists():
        results["sentiment"] = sentiment_agreement(args.topical_chat)
    results["seconds"] = round(time.perf_counter() - start, 1)
    text = json.dumps(results, indent=2, sort_keys=True)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
