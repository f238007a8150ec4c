"""Cluster quality against gold labels: clio_lite beside BERTopic, on the same text and embeddings. Prints JSON.

One run scrubs the texts once with the real ``PresidioScrubber``, embeds them once with all-MiniLM-L6-v2 (the
embedding cache in ``~/.cache/clio_lite``), and then, for each UMAP seed:

- reduces the embeddings once with clio_lite's ``UMAPReducer(n_components=5, random_state=seed)``, which is the
  same call as BERTopic's ``UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine",
  random_state=seed)`` (checked on every seed: ``umap_identical`` in the output) except that from 4,096 to 20,000
  points clio_lite's neighbour graph is exact where UMAP's comes from NN-descent, so there the two differ a little
  (``--reuse-umap`` gives BERTopic clio_lite's vectors);
- fits ``clio_lite.Clio`` end to end on the scrubbed texts (its real clustering, hierarchy, gate and namer), with
  stages that hand it the precomputed scrubbed texts, embeddings and 5-D vectors, and PCA for the 2-D map (the map
  changes no cluster);
- fits BERTopic with its defaults (``min_topic_size=10``) on the same embeddings with its own seeded UMAP, then with
  ``min_topic_size=50`` on the same 5-D vectors, and cuts ``hierarchical_topics`` to ``--top`` groups for its top
  level.

clio_lite runs with ``min_users=1`` and ``min_conversations`` equal to BERTopic's ``min_topic_size`` (10 and 50):
the privacy gate is not what is measured here, and CLINC150 has one synthetic user per record. On the fixtures,
which have real users, it also runs with its defaults (``min_users=25, min_conversations=50``).

Metrics, for leaves and for the top level: NMI, ARI and V-measure against gold (a) over all documents, outliers
being one more label, and (b) over clustered documents only; outlier share; clusters per level; reconstruction
accuracy (each cluster takes its majority gold class; the share of all documents, outliers counted wrong, that land
in their own class); for keyword labels, the share of each leaf's top-3 terms that are English stop words and the
share that occur in most of the leaf's documents (coherence).

Scrubbed texts, embeddings and UMAP vectors are cached on disk (``~/.cache/clio_lite/quality``, see
``VectorCache``), so a re-run only clusters; ``--prepare-only`` fills the cache, ``--tune`` fits only the clustering
for each ``HDBSCANClusterer`` setting given, and ``--clusterer`` adds clio_lite runs with other settings.

    python benchmarks/quality.py --dataset fixtures --seeds 0 1 2
    python benchmarks/quality.py --dataset clinc150 --seeds 0 1 2 [--limit 5000]

``--embedder static`` embeds with the fast mode's static model (``clio_lite.embed.StaticEmbedder``, distilled once
into ``.cache/models``) instead of MiniLM: its quality cost (docs/scaling.md, "Fast mode"). ``--embedder onnx`` and
``--embedder onnx-int8`` run MiniLM with onnxruntime (``SentenceTransformerEmbedder(backend=...)``, exported once into
``.cache/models``): the same model, fp32 or with int8 weights.

``--umap-epochs N`` runs both tools' 5-D UMAP with ``N`` layout epochs (``UMAPReducer(n_epochs=N)``) instead of
UMAP's rule (500 up to 10,000 points, 200 above): the quality cost of fewer epochs (docs/quality.md, "Speed options
and their quality cost"). The output then names ``umap_epochs``; without the option it is as before.
``--time-umap None 200`` only times the 5-D UMAP on the cached embeddings, per setting; ``--table FILE...``
prints a markdown table of saved outputs, and each one's differences from the first one's.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    adjusted_rand_score,
    homogeneity_completeness_v_measure,
    normalized_mutual_info_score,
)

from clio_lite import Clio, load_conversations  # noqa: E402
from clio_lite.embed import SentenceTransformerEmbedder, StaticEmbedder  # noqa: E402
from clio_lite.reduce import UMAPReducer  # noqa: E402
from clio_lite.scrub import PresidioScrubber, ScrubResult  # noqa: E402

logger = logging.getLogger("quality")

DATASETS = {
    # name: (path relative to the repository, gold label for leaves, gold label for the top level)
    "clinc150": (ROOT.parent / "shared" / "data" / "clinc150" / "clinc150.jsonl", "intent", "domain"),
    "topical_chat": (ROOT.parent / "shared" / "data" / "topical_chat" / "topical_chat.jsonl", None, "topic_majority"),
    "fixtures": (None, "subtopic", "category"),
}


# -- data ---------------------------------------------------------------------------------------------------------


def load_records(dataset: str, limit: int | None, n_fixtures: int, sample_seed: int) -> list[dict[str, Any]]:
    """The dataset's records, sorted by id (the order Clio works in), optionally a seeded sample of ``limit``."""
    path, _, _ = DATASETS[dataset]
    if dataset == "fixtures":
        from fixtures.generate import generate_conversations

        records = generate_conversations(n_fixtures, seed=0)
    else:
        with open(path, encoding="utf-8") as handle:
            records = [json.loads(line) for line in handle if line.strip()]
        if dataset == "clinc150":
            records = [r for r in records if r["labels"]["in_scope"]]
    if limit is not None and limit < len(records):
        records = random.Random(sample_seed).sample(records, limit)
    return sorted(records, key=lambda r: r["id"])


class LookupScrubber:
    """Hands Clio the texts scrubbed once up front, so that both tools see exactly the same text.

    Any other text (the audit re-scans the release's names and keywords) goes to the real scrubber.
    """

    def __init__(self, scrubbed_of: dict[str, str], scrubber: PresidioScrubber):
        self.scrubbed_of = scrubbed_of
        self.scrubber = scrubber
        self.model_name = scrubber.model_name

    def scrub(self, texts: Sequence[str]) -> ScrubResult:
        unknown = list(dict.fromkeys(text for text in texts if text not in self.scrubbed_of))
        fresh = self.scrubber.scrub(unknown) if unknown else ScrubResult([], Counter())
        scrubbed_of = dict(zip(unknown, fresh.texts, strict=True))
        return ScrubResult(
            [self.scrubbed_of.get(text, scrubbed_of.get(text, "")) for text in texts], fresh.entity_counts
        )


class LookupEmbedder:
    """Hands Clio the embeddings computed once up front."""

    def __init__(self, vector_of: dict[str, np.ndarray], model_id: str, fingerprint: str | None):
        self.vector_of = vector_of
        self.model_id = model_id
        self.fingerprint = fingerprint

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.vector_of[text] for text in texts])


class PrecomputedReducer:
    """Returns vectors already reduced from exactly these embeddings (checked), for Clio and for BERTopic."""

    def __init__(self, embeddings: np.ndarray, reduced: np.ndarray):
        self.embeddings = embeddings
        self.reduced = reduced

    def fit_transform(self, X: np.ndarray, y: Any = None) -> np.ndarray:
        if not np.array_equal(np.asarray(X, dtype=np.float32), self.embeddings):
            raise RuntimeError("PrecomputedReducer got other embeddings than it was built for (order or content).")
        return self.reduced

    def fit(self, X: np.ndarray, y: Any = None) -> PrecomputedReducer:
        self.fit_transform(X)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return self.fit_transform(X)


CACHE_DIR = Path.home() / ".cache" / "clio_lite" / "quality"
SCRUB_SOURCES = ("scrub.py", "recognizers.py")


class VectorCache:
    """Scrubbed texts, embeddings and UMAP vectors of one benchmark corpus, on disk, so that re-runs skip them.

    A file is keyed by the dataset, a hash of the corpus's raw texts (in order), the stage, and a hash of what made
    it (``<dataset>-<corpus hash>-<stage>-<key hash>``): the scrubber's code, the scrubbed texts and model, the
    embeddings and seed; a corpus, scrubber, model or seed that changes gets new files.
    Only the benchmark uses this: the public datasets' scrubbed texts and vectors, never a user's.
    """

    def __init__(self, directory: Path, dataset: str, texts: Sequence[str]):
        import hashlib

        self.directory = directory
        digest = hashlib.sha256("\x1f".join(texts).encode("utf-8")).hexdigest()[:16]
        self.prefix = f"{dataset}-{digest}"

    def _path(self, stage: str, key: str, suffix: str) -> Path:
        import hashlib

        return self.directory / f"{self.prefix}-{stage}-{hashlib.sha256(key.encode()).hexdigest()[:12]}{suffix}"

    def load_texts(self, stage: str, key: str) -> list[str] | None:
        path = self._path(stage, key, ".json")
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def save_texts(self, stage: str, key: str, values: list[str]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._path(stage, key, ".json").write_text(json.dumps(values), encoding="utf-8")

    def load_array(self, stage: str, key: str) -> np.ndarray | None:
        path = self._path(stage, key, ".npy")
        return np.load(path) if path.exists() else None

    def save_array(self, stage: str, key: str, values: np.ndarray) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(stage, key, ".npy")
        np.save(path.with_suffix(".tmp.npy"), values)
        path.with_suffix(".tmp.npy").replace(path)


def reduce_cached(
    cache: VectorCache, embeddings: np.ndarray, model_id: str, seed: int, n_epochs: int | None = None
) -> tuple[np.ndarray, float]:
    """clio_lite's seeded 5-D UMAP of ``embeddings``, from the cache when it was computed before; and its seconds.

    The seconds are those of the run that computed it (kept beside the vectors), so tables stay comparable.
    ``n_epochs`` is ``UMAPReducer``'s (``None``: UMAP's own rule, 500 epochs up to 10,000 points, 200 above); a
    number is part of the cache key. So is ``clio_lite/reduce.py``'s code: another reducer, other vectors.
    """
    import hashlib

    digest = hashlib.sha256(np.ascontiguousarray(embeddings).tobytes()).hexdigest()
    # The reducer's code too (its neighbour graph changed once: exact neighbours up to 20,000 points).
    code = hashlib.sha256((ROOT / "clio_lite" / "reduce.py").read_bytes()).hexdigest()[:16]
    key = f"{model_id}|{digest}|umap n_components=5 n_neighbors=15 min_dist=0 cosine|seed={seed}|reduce.py={code}"
    if n_epochs is not None:
        key += f"|n_epochs={n_epochs}"
    reduced = cache.load_array("umap", key)
    timing = cache.load_texts("umap-seconds", key)
    if reduced is not None and timing is not None:
        logger.info("seed %d: UMAP vectors from the cache", seed)
        return reduced, float(timing[0])
    tic = time.perf_counter()
    reduced = UMAPReducer(n_components=5, random_state=seed, n_epochs=n_epochs).fit_transform(embeddings)
    seconds = round(time.perf_counter() - tic, 1)
    cache.save_array("umap", key, reduced)
    cache.save_texts("umap-seconds", key, [str(seconds)])
    logger.info("seed %d: UMAP %.0f s", seed, seconds)
    return reduced, seconds


# -- metrics ------------------------------------------------------------------------------------------------------


def agreement(gold: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """NMI, ARI and V-measure over all documents (outliers, label -1, as one more label) and over clustered ones."""
    clustered = labels != -1
    out: dict[str, float] = {}
    for scope, mask in (("all", np.ones(len(labels), dtype=bool)), ("clustered", clustered)):
        if mask.sum() == 0:
            out.update({f"nmi_{scope}": 0.0, f"ari_{scope}": 0.0, f"v_{scope}": 0.0})
            continue
        g, p = gold[mask], labels[mask]
        out[f"nmi_{scope}"] = round(float(normalized_mutual_info_score(g, p)), 4)
        out[f"ari_{scope}"] = round(float(adjusted_rand_score(g, p)), 4)
        out[f"v_{scope}"] = round(float(homogeneity_completeness_v_measure(g, p)[2]), 4)
    return out


def reconstruction_accuracy(gold: np.ndarray, labels: np.ndarray) -> float:
    """Each cluster takes its majority gold class; the share of all documents (outliers wrong) in their own class."""
    correct = 0
    for cluster in np.unique(labels[labels != -1]):
        correct += Counter(gold[labels == cluster].tolist()).most_common(1)[0][1]
    return round(correct / len(labels), 4)


def level_report(gold: dict[str, np.ndarray], labels: np.ndarray, coarse: str) -> dict[str, Any]:
    report: dict[str, Any] = {
        "clusters": int(len(np.unique(labels[labels != -1]))),
        "outlier_share": round(float((labels == -1).mean()), 4),
    }
    for name, values in gold.items():
        report[f"vs_{name}"] = agreement(values, labels)
    report[f"reconstruction_accuracy_{coarse}"] = reconstruction_accuracy(gold[coarse], labels)
    return report


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def label_quality(docs: Sequence[str], labels: np.ndarray, terms_of: dict[Any, list[str]]) -> dict[str, Any]:
    """Top-3 terms of each cluster: share that are stop words (every word one), share in most of its documents."""
    padded = [" " + " ".join(_words(doc)) + " " for doc in docs]
    n_terms = stop = any_stop = coherent = 0
    for cluster, terms in terms_of.items():
        rows = np.flatnonzero(labels == cluster)
        for term in terms[:3]:
            words = _words(term)
            if not words:
                continue
            n_terms += 1
            stop += all(w in ENGLISH_STOP_WORDS for w in words)
            any_stop += any(w in ENGLISH_STOP_WORDS for w in words)
            needle = " " + " ".join(words) + " "
            coherent += sum(needle in padded[row] for row in rows) > len(rows) / 2
    share = (lambda count: round(count / n_terms, 4)) if n_terms else (lambda count: 0.0)
    return {
        "terms": n_terms,
        "stop_word_share": share(stop),
        "with_a_stop_word_share": share(any_stop),
        "coherent_share": share(coherent),
    }


def remainder_to_nearest_leaf(path: np.ndarray, leaf_ids: set[str], embeddings: np.ndarray) -> np.ndarray:
    """Diagnostic, not clio_lite's output: leaf labels if each parent-remainder document joined its nearest leaf.

    "Nearest" is cosine to the leaf centroids in the embedding space, among the leaves below the document's node.
    """
    leaves = sorted(leaf_ids)
    index = {leaf: i for i, leaf in enumerate(leaves)}
    labels = np.array([index.get(p, -1) for p in path])
    centroids = np.stack([embeddings[labels == i].mean(axis=0) for i in range(len(leaves))])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    for node in {p for p in path if not p.startswith("<") and p not in index}:
        rows = np.flatnonzero(path == node)
        below = np.array([index[leaf] for leaf in leaves if leaf.startswith(node + ".")])
        if len(below):
            labels[rows] = below[(embeddings[rows] @ centroids[below].T).argmax(axis=1)]
    return labels


# -- the two tools ------------------------------------------------------------------------------------------------


def run_clio(
    records, stages, reduced, embeddings, gold, docs, coarse, seed, min_users, min_conversations, top,
    assign_outliers=False, predict=False, clusterer_settings=None,
) -> dict[str, Any]:
    """Fit ``Clio`` on the precomputed stages; ``clusterer_settings`` (``HDBSCANClusterer`` arguments) replace the
    default clusterer's, e.g. ``{"cluster_selection_method": "leaf"}`` for the earlier default."""
    from clio_lite.cluster import HDBSCANClusterer

    scrubber, embedder = stages
    clusterer = None
    if clusterer_settings:
        clusterer = HDBSCANClusterer(
            min_cluster_size=min_conversations, top_clusters=top, assign_outliers=assign_outliers,
            **clusterer_settings,
        )
    clio = Clio(
        min_users=min_users,
        min_conversations=min_conversations,
        top_clusters=top,
        assign_outliers=assign_outliers,
        clusterer=clusterer,
        scrubber=scrubber,
        embedder=embedder,
        reducer=PrecomputedReducer(embeddings, reduced),
        map_reducer=PCA(n_components=2),
        random_state=seed,
        # No checkpoints: a PrecomputedReducer's fingerprint does not include its vectors, so a checkpoint of one
        # seed's vectors would be reused for the next seed (same embeddings).
        cache_dir=False,
        verbose=False,
    )
    started = time.perf_counter()
    clio.fit(records)
    seconds = time.perf_counter() - started
    tree = clio.release_.tree
    path = np.array([str(label) for label in clio.labels_], dtype=object)
    if len(path) != len(docs):
        raise RuntimeError(f"Clio accepted {len(path)} of {len(docs)} records; the benchmark expects all.")
    leaf_ids = {node.id for node in tree.leaves}
    index_of = {node.id: i for i, node in enumerate(tree.nodes)}
    leaf_labels = np.array([index_of[p] if p in leaf_ids else -1 for p in path])
    top_labels = np.array([-1 if p.startswith("<") else int(p.split(".")[0]) for p in path])
    per_level = Counter(node.depth for node in tree.nodes)
    predict_agreement = None
    if predict:  # the training conversations sent through Clio.predict: how many get the label fit gave them
        tic = time.perf_counter()
        predicted = clio.predict(records)
        predict_agreement = {
            "share_same_label": round(float(np.mean(predicted == clio.labels_)), 4),
            "seconds": round(time.perf_counter() - tic, 1),
        }
    counts = clio.release_.manifest["counts"]
    return {
        "tool": "clio_lite",
        "config": f"min_users={min_users}, min_conversations={min_conversations}"
        + (", assign_outliers=True" if assign_outliers else "")
        + "".join(f", {key}={value!r}" for key, value in sorted((clusterer_settings or {}).items())),
        "audit_passed": bool(clio.audit_.passed) if hasattr(clio, "audit_") else None,
        "seed": seed,
        "seconds": round(seconds, 1),
        "stage_seconds": clio.timings_,
        "levels": tree.depth,
        "clusters_per_level": [per_level[d] for d in sorted(per_level)],
        "unclustered_share": round(counts["unclustered"] / len(path), 4),
        "suppressed_share": round(counts["suppressed"] / len(path), 4),
        "in_parent_remainder_share": round((counts["released"] - counts["in_released_leaves"]) / len(path), 4),
        "leaves": level_report(gold, leaf_labels, coarse),
        "top": level_report(gold, top_labels, coarse),
        "leaves_if_remainders_joined_nearest_leaf": level_report(
            gold, remainder_to_nearest_leaf(path, leaf_ids, embeddings), coarse
        ),
        "labels": label_quality(
            docs, leaf_labels, {index_of[node.id]: list(node.keywords) for node in tree.leaves}
        ),
        "predict_on_training": predict_agreement,
    }


def cut_bertopic_hierarchy(hier_topics, topics: np.ndarray, groups: int) -> np.ndarray:
    """Split the highest merges of ``hierarchical_topics`` until ``groups`` groups; label documents by group."""
    children = {
        row.Parent_ID: (row.Child_Left_ID, row.Child_Right_ID) for row in hier_topics.itertuples(index=False)
    }
    distance = dict(zip(hier_topics.Parent_ID, hier_topics.Distance, strict=True))
    topics_under = dict(zip(hier_topics.Parent_ID, hier_topics.Topics, strict=True))
    root = max(distance, key=lambda node: distance[node])
    frontier = [root]
    while len(frontier) < groups and any(node in children for node in frontier):
        highest = max((node for node in frontier if node in children), key=lambda node: distance[node])
        frontier.remove(highest)
        frontier.extend(children[highest])
    group_of: dict[int, int] = {}
    for group, node in enumerate(frontier):
        for topic in topics_under.get(node, [int(node)]):
            group_of[int(topic)] = group
    return np.array([group_of.get(int(t), -1) if t != -1 else -1 for t in topics])


def run_bertopic(
    docs, embeddings, umap_model, gold, coarse, seed, min_topic_size, top, clio_top_counts=()
) -> tuple[dict, Any]:
    from bertopic import BERTopic

    model = BERTopic(umap_model=umap_model, min_topic_size=min_topic_size, verbose=False)
    started = time.perf_counter()
    topics = np.asarray(model.fit_transform(docs, embeddings)[0])
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    hier = model.hierarchical_topics(docs)
    hier_seconds = time.perf_counter() - started
    top_labels = cut_bertopic_hierarchy(hier, topics, top)
    terms_of = {t: [word for word, _ in model.get_topic(t)] for t in set(topics.tolist()) if t != -1}
    report = {
        "tool": "bertopic",
        "config": f"min_topic_size={min_topic_size}" + (" (default)" if min_topic_size == 10 else ""),
        "seed": seed,
        "seconds": round(seconds, 1),
        "hierarchical_topics_seconds": round(hier_seconds, 1),
        "leaves": level_report(gold, topics, coarse),
        "top": level_report(gold, top_labels, coarse),
        # The hierarchy cut to each number of top clusters clio_lite's runs of this seed had, for a like-for-like
        # top level when that number is not ``top``.
        "top_cut_to": {
            str(count): level_report(gold, cut_bertopic_hierarchy(hier, topics, count), coarse)
            for count in clio_top_counts
            if count != top
        },
        "labels": label_quality(docs, topics, terms_of),
    }
    return report, model


def tune_clustering(reduced, embeddings, scrubbed, gold, coarse, seed, size, grid) -> list[dict[str, Any]]:
    """Only the clustering (HDBSCAN and the hierarchy, no gate, namer or audit) for each setting of ``grid``.

    Cheap enough to compare many HDBSCAN settings on the cached UMAP vectors; the gate with ``min_users=1`` and
    ``min_conversations=size`` releases every node of such a hierarchy (each node holds at least ``size`` points),
    so its leaves are the release's.
    """
    from clio_lite.cluster import HDBSCANClusterer

    out = []
    for setting in grid:
        tic = time.perf_counter()
        hierarchy = HDBSCANClusterer(min_cluster_size=size, **setting).fit_hierarchy(reduced, embeddings, scrubbed)
        seconds = round(time.perf_counter() - tic, 1)
        kids = hierarchy.children()
        leaves = {node for node in range(hierarchy.n_nodes) if not kids[node]}
        leaf_labels = np.array([node if node in leaves else -1 for node in hierarchy.assignment])
        top_of = np.arange(hierarchy.n_nodes)
        for node, parent in enumerate(hierarchy.parent):  # parents come first
            if parent >= 0:
                top_of[node] = top_of[parent]
        top_labels = np.where(hierarchy.assignment >= 0, top_of[np.maximum(hierarchy.assignment, 0)], -1)
        depth = hierarchy.depth()
        out.append({
            "tool": "clio_lite clustering only",
            "config": json.dumps({"min_cluster_size": size, **setting}, sort_keys=True),
            "seed": seed,
            "seconds": seconds,
            "levels": int(depth.max()) if len(depth) else 0,
            "clusters_per_level": np.bincount(depth)[1:].tolist() if len(depth) else [],
            "unclustered_share": round(float((hierarchy.assignment < 0).mean()), 4),
            "leaves": level_report(gold, leaf_labels, coarse),
            "top": level_report(gold, top_labels, coarse),
        })
        logger.info("tune seed %d %s: %s", seed, setting, json.dumps(out[-1]["leaves"]))
    return out


# -- summary ------------------------------------------------------------------------------------------------------


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation over seeds of every number, per tool and configuration."""

    def flatten(value: Any, prefix: str = "") -> dict[str, float]:
        if isinstance(value, dict):
            out: dict[str, float] = {}
            for key, item in value.items():
                out.update(flatten(item, f"{prefix}{key}."))
            return out
        if isinstance(value, int | float) and not isinstance(value, bool):
            return {prefix.rstrip("."): float(value)}
        return {}

    grouped: dict[str, list[dict[str, float]]] = {}
    for run in runs:
        flat = flatten({k: v for k, v in run.items() if k not in ("seed", "stage_seconds")})
        grouped.setdefault(f"{run['tool']} {run['config']}", []).append(flat)
    summary = {}
    for name, flats in grouped.items():
        keys = [k for k in flats[0] if all(k in f for f in flats)]
        summary[name] = {
            key: {
                "mean": round(float(np.mean([f[key] for f in flats])), 4),
                "std": round(float(np.std([f[key] for f in flats])), 4),
            }
            for key in keys
        }
    return summary


def time_umap(embeddings: np.ndarray, epochs: Sequence[str], seed: int, repeats: int = 2) -> dict[str, Any]:
    """Seconds (wall and this process's CPU) of clio_lite's 5-D ``UMAPReducer`` per ``n_epochs`` setting.

    A fit of 5,000 points first loads numba's compiled functions (UMAP's nearest-neighbour descent runs from 4,096
    points), so no timed fit pays for that; the settings then alternate ``repeats`` times (``"None"`` is UMAP's own
    rule).
    """
    UMAPReducer(n_components=5, random_state=seed).fit_transform(embeddings[:5000])
    out: dict[str, Any] = {"points": len(embeddings), "seed": seed}
    for _ in range(repeats):
        for setting in epochs:
            n_epochs = None if setting == "None" else int(setting)
            wall, cpu = time.perf_counter(), time.process_time()
            UMAPReducer(n_components=5, random_state=seed, n_epochs=n_epochs).fit_transform(embeddings)
            out.setdefault(f"n_epochs={setting}", []).append(
                {"wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(time.process_time() - cpu, 1)}
            )
            logger.info("UMAP n_epochs=%s: %s", setting, out[f"n_epochs={setting}"][-1])
    out["load_average_after"] = os.getloadavg()[0]
    return out


def comparison_table(paths: Sequence[Path]) -> str:
    """A markdown table of saved runs (this script's JSON output), one row per file and clio_lite configuration.

    Mean ± standard deviation over the seeds of leaf NMI and ARI against the fine gold label (over all documents,
    outliers one more label, and over clustered documents only), the leaves' outlier share, the number of leaves,
    the clusters per level (each seed's, once per distinct list) and the top level's reconstruction accuracy against
    the coarse gold label; the rows are in the order of ``paths``.
    """
    header = (
        "| run | configuration | seeds | leaf NMI all | leaf ARI all | leaf NMI clustered | leaf ARI clustered "
        "| outlier share | leaves | clusters per level | top accuracy |"
    )
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for path in paths:
        result = json.loads(Path(path).read_text(encoding="utf-8"))
        fine, coarse = list(result["gold_classes"])[0], list(result["gold_classes"])[-1]
        grouped: dict[str, list[dict[str, Any]]] = {}
        for run in result["runs"]:
            if run["tool"] == "clio_lite":
                grouped.setdefault(run["config"], []).append(run)
        for config, runs in grouped.items():

            def cell(values: list[float], digits: int = 3) -> str:
                return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"

            scores = [run["leaves"][f"vs_{fine}"] for run in runs]
            levels = Counter(tuple(run["clusters_per_level"]) for run in runs)
            lines.append(" | ".join([
                f"| {Path(path).stem}",
                config,
                " ".join(str(run["seed"]) for run in runs),
                *(cell([score[key] for score in scores]) for key in ("nmi_all", "ari_all", "nmi_clustered",
                                                                        "ari_clustered")),
                cell([run["leaves"]["outlier_share"] for run in runs]),
                cell([run["leaves"]["clusters"] for run in runs], 1),
                ", ".join("/".join(map(str, level)) for level in levels),
                cell([run["top"][f"reconstruction_accuracy_{coarse}"] for run in runs]),
            ]) + " |")
    return "\n".join(lines)


def difference_table(reference: Path, others: Sequence[Path]) -> str:
    """Each run's leaf scores minus the reference run's, per configuration both have, against the seed spread.

    A cell is ``Δ (t)``: the difference of the means over seeds, and that difference over its standard error
    (``sqrt(s1²/n1 + s2²/n2)``, sample standard deviations): |t| under about 2 is inside the seed-to-seed spread.
    """
    keys = ("nmi_all", "ari_all", "nmi_clustered", "ari_clustered")

    def per_config(path: Path) -> dict[str, dict[str, list[float]]]:
        result = json.loads(Path(path).read_text(encoding="utf-8"))
        fine = list(result["gold_classes"])[0]
        out: dict[str, dict[str, list[float]]] = {}
        for run in result["runs"]:
            if run["tool"] == "clio_lite":
                values = out.setdefault(run["config"], {})
                for key in keys:
                    values.setdefault(key, []).append(run["leaves"][f"vs_{fine}"][key])
                values.setdefault("outlier_share", []).append(run["leaves"]["outlier_share"])
        return out

    def cell(a: list[float], b: list[float]) -> str:
        delta = np.mean(b) - np.mean(a)
        error = np.sqrt(np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b))
        return f"{delta:+.3f} ({delta / error:+.1f})" if error > 0 else f"{delta:+.3f}"

    base = per_config(reference)
    header = f"| run minus {Path(reference).stem} | configuration | " + " | ".join(keys + ("outlier_share",)) + " |"
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for path in others:
        for config, values in per_config(path).items():
            if config in base:
                cells = [cell(base[config][key], values[key]) for key in (*keys, "outlier_share")]
                lines.append(f"| {Path(path).stem} | {config} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="fixtures")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--limit", type=int, default=None, help="a seeded random sample of this many records")
    parser.add_argument("--n", type=int, default=4000, help="conversations generated for --dataset fixtures")
    parser.add_argument("--min-sizes", type=int, nargs="+", default=[10, 50],
                        help="BERTopic's min_topic_size and clio_lite's min_conversations, paired")
    parser.add_argument("--top", type=int, default=10, help="clusters at the top level (both tools)")
    parser.add_argument("--no-bertopic", action="store_true", help="run clio_lite only")
    parser.add_argument(
        "--tune", nargs="+", metavar="JSON",
        help='only the clustering, once per HDBSCANClusterer setting, e.g. \'{"min_samples": 1}\' (no gate, names)',
    )
    parser.add_argument(
        "--clusterer", nargs="+", metavar="JSON",
        help='also run clio_lite with these HDBSCANClusterer settings, e.g. \'{"cluster_selection_method": "leaf"}\'',
    )
    parser.add_argument(
        "--reuse-umap", action="store_true",
        help="BERTopic gets clio_lite's (cached) UMAP vectors for every configuration, instead of running its own "
        "seeded UMAP once and checking the two are identical",
    )
    parser.add_argument(
        "--prepare-only", action="store_true", help="only scrub, embed and reduce (into the cache), fit nothing"
    )
    parser.add_argument(
        "--predict", action="store_true", help="also send the training records through Clio.predict (agreement)"
    )
    parser.add_argument(
        "--assign-outliers", choices=["off", "on", "both"], default="both",
        help="run clio_lite with assign_outliers False, True or both (soft membership of remainders and noise)",
    )
    parser.add_argument(
        "--embedder", choices=["minilm", "static", "onnx", "onnx-int8"], default="minilm",
        help="all-MiniLM-L6-v2 with torch (default) or onnxruntime (fp32 or int8), or the fast mode's static model "
             "distilled from it",
    )
    parser.add_argument(
        "--umap-epochs", type=int, default=None, metavar="N",
        help="UMAP layout epochs for clio_lite's reduction and BERTopic's (UMAPReducer(n_epochs=N)); default: UMAP's "
             "rule, 500 up to 10,000 points and 200 above",
    )
    parser.add_argument(
        "--table", nargs="+", type=Path, metavar="JSON",
        help="print a markdown table of saved runs (this script's output files) and run nothing",
    )
    parser.add_argument(
        "--time-umap", nargs="+", metavar="EPOCHS",
        help="only time the 5-D UMAP on the (cached) embeddings, per n_epochs setting (a number or None), twice each",
    )
    args = parser.parse_args()
    if args.table:
        print(comparison_table(args.table))
        if len(args.table) > 1:  # the first file is the reference
            print("\n" + difference_table(args.table[0], args.table[1:]))
        return
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("BERTopic", "presidio-analyzer", "sentence_transformers", "clio_lite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    started = time.perf_counter()
    records = load_records(args.dataset, args.limit, args.n, sample_seed=0)
    _, fine, coarse = DATASETS[args.dataset]
    gold = {name: np.array([r["labels"][name] for r in records]) for name in (fine, coarse) if name}
    convs = load_conversations(records)
    if len(convs) != len(records) or [c.id for c in convs] != [r["id"] for r in records]:
        raise RuntimeError(f"{len(records) - len(convs)} records were rejected: {convs.rejected[:3]}")
    texts = [c.user_text() for c in convs]
    logger.info("%s: %d records; scrubbing", args.dataset, len(texts))

    prep: dict[str, float] = {}
    cache = VectorCache(CACHE_DIR, args.dataset, texts)
    tic = time.perf_counter()
    scrubber = PresidioScrubber()
    # The scrubber's rules live in its code, so the cached texts are keyed by that code too.
    scrub_code = "".join((ROOT / "clio_lite" / name).read_text(encoding="utf-8") for name in SCRUB_SOURCES)
    scrub_key = f"{scrubber.model_name}|{scrub_code}"
    scrubbed = cache.load_texts("scrubbed", scrub_key)
    if scrubbed is None:
        scrubbed = []
        for start in range(0, len(texts), 1000):
            scrubbed.extend(scrubber.scrub(texts[start : start + 1000]).texts)
            logger.info("scrubbed %d / %d", len(scrubbed), len(texts))
        cache.save_texts("scrubbed", scrub_key, scrubbed)
    prep["scrub"] = round(time.perf_counter() - tic, 1)
    tic = time.perf_counter()
    if args.embedder == "static":
        embedder = StaticEmbedder(models_dir=ROOT / ".cache" / "models")
    else:
        backend = "torch" if args.embedder == "minilm" else args.embedder
        embedder = SentenceTransformerEmbedder(cache_dir=Path.home() / ".cache" / "clio_lite", verbose=False,
                                               backend=backend, models_dir=ROOT / ".cache" / "models")
    embed_key = f"{embedder.model_id}|" + "\x1f".join(scrubbed)  # keyed by the scrubbed texts
    embeddings = cache.load_array("embeddings", embed_key)
    if embeddings is None:
        embeddings = embedder.embed(scrubbed)
        cache.save_array("embeddings", embed_key, embeddings)
        logger.info("embedded %d texts with %s", len(scrubbed), embedder.model_id)
    prep["embed"] = round(time.perf_counter() - tic, 1)
    if args.time_umap:
        print(json.dumps({"dataset": args.dataset, "embedder": embedder.model_id,
                          **time_umap(embeddings, args.time_umap, args.seeds[0])}, indent=2))
        return
    scrubbed_of = dict(zip(texts, scrubbed, strict=True))
    vector_of = dict(zip(scrubbed, embeddings, strict=True))
    stages = (
        LookupScrubber(scrubbed_of, scrubber),
        LookupEmbedder(vector_of, embedder.model_id, embedder.fingerprint),
    )

    assign = {"off": [False], "on": [True], "both": [False, True]}[args.assign_outliers]
    settings = [None] + [json.loads(setting) for setting in args.clusterer or []]
    clio_configs = [(1, size, a, c) for size in args.min_sizes for a in assign for c in settings]
    if args.dataset == "fixtures":  # the default thresholds, with the privacy gate on
        clio_configs += [(25, 50, a, c) for a in assign for c in settings]
    runs: list[dict[str, Any]] = []
    umap_checks: list[dict[str, Any]] = []
    for seed in args.seeds:
        reduced, umap_seconds = reduce_cached(cache, embeddings, embedder.model_id, seed, args.umap_epochs)
        if args.prepare_only:
            continue
        if args.tune:
            grid = [json.loads(setting) for setting in args.tune]
            for size in args.min_sizes:
                runs.extend(tune_clustering(reduced, embeddings, scrubbed, gold, coarse, seed, size, grid))
            continue
        top_counts = set()
        for min_users, min_conversations, assign_outliers, clusterer_settings in clio_configs:
            run = run_clio(
                records, stages, reduced, embeddings, gold, scrubbed, coarse, seed, min_users, min_conversations,
                args.top, assign_outliers=assign_outliers, predict=args.predict, clusterer_settings=clusterer_settings,
            )
            top_counts.add(run["top"]["clusters"])
            run["umap_seconds"] = umap_seconds
            runs.append(run)
            logger.info("seed %d: clio_lite %s: %s", seed, run["config"], json.dumps(run["leaves"]))
        if args.no_bertopic:
            continue
        from umap import UMAP

        for i, size in enumerate(args.min_sizes):
            if i == 0 and not args.reuse_umap:  # BERTopic's own seeded UMAP, checked against clio_lite's reduction
                umap_model = UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", random_state=seed,
                                  n_epochs=args.umap_epochs)
            else:
                umap_model = PrecomputedReducer(embeddings, reduced)
            run, model = run_bertopic(
                scrubbed, embeddings, umap_model, gold, coarse, seed, size, args.top, sorted(top_counts)
            )
            if i == 0 and not args.reuse_umap:
                own = np.asarray(model.umap_model.embedding_, dtype=np.float32)
                umap_checks.append({
                    "seed": seed,
                    "umap_identical": bool(np.array_equal(own, reduced)),
                    "max_abs_difference": float(np.abs(own - reduced).max()),
                })
                run["includes_umap"] = True
            else:
                run["includes_umap"] = False
                run["umap_seconds"] = umap_seconds
            runs.append(run)
            logger.info("seed %d: bertopic %s: %s", seed, run["config"], json.dumps(run["leaves"]))

    options = {"umap_epochs": args.umap_epochs} if args.umap_epochs is not None else {}
    print(json.dumps({
        "dataset": args.dataset,
        "records": len(records),
        "limit": args.limit,
        "embedder": embedder.model_id,
        **options,
        "gold_classes": {name: int(len(np.unique(values))) for name, values in gold.items()},
        "seeds": args.seeds,
        "top_target": args.top,
        "prep_seconds": prep,
        "umap_checks": umap_checks,
        "total_seconds": round(time.perf_counter() - started, 1),
        "summary": summarise(runs),
        "runs": runs,
    }, indent=2))


if __name__ == "__main__":
    main()
