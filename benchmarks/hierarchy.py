"""How well do the hierarchy's levels match the gold taxonomy of the bundled sample? Prints JSON.

Compares, on the same embeddings, UMAP vectors and HDBSCAN run, four ways to build the top level (about 10
groups) over HDBSCAN's leaves:

- ``tfidf_average``: clio_lite's way, average linkage of the cosine between the leaves' TF-IDF profiles of the
  scrubbed texts (``fit_hierarchy(..., texts=...)``);
- ``ward_embedding``: a Ward dendrogram of leaf centroids in the embedding space (a clusterer given no texts);
- ``ward_umap``: the same dendrogram in the 5-D UMAP space;
- ``condensed_tree``: the condensed tree's own splits, splitting the largest cluster from the root (the whole
  condensed tree, not cut at the selected clusters).

    python benchmarks/hierarchy.py [--seeds 0 1 2] [--n 4000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))

import numpy as np  # noqa: E402
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score  # noqa: E402

from clio_lite import load_conversations  # noqa: E402
from clio_lite.cluster import (  # noqa: E402
    HDBSCANClusterer,
    _parse_condensed_tree,
    hierarchy_from_condensed_tree,
    prune_to_selected,
)
from clio_lite.embed import SentenceTransformerEmbedder  # noqa: E402
from clio_lite.reduce import UMAPReducer  # noqa: E402
from clio_lite.scrub import PresidioScrubber  # noqa: E402
from fixtures.generate import generate_conversations  # noqa: E402


def top_labels(hierarchy, n: int) -> np.ndarray:
    labels = np.full(n, -1)
    members = hierarchy.members()
    for node in np.flatnonzero(hierarchy.parent < 0):
        labels[members[node]] = node
    return labels


def condensed_tree_top(raw_tree, n: int, target: int) -> np.ndarray:
    """Split the largest condensed-tree cluster from the root until ``target`` clusters; label points by them."""
    parent_of, children, falls_from = _parse_condensed_tree(raw_tree, n)
    root = n
    size = {c: 0 for c in {root, *parent_of}}
    for cluster in falls_from[falls_from >= 0]:
        size[int(cluster)] += 1
    for cluster in sorted(size, reverse=True):
        if cluster in parent_of:
            size[parent_of[cluster]] += size[cluster]
    frontier = [root]
    while len(frontier) < target and any(c in children for c in frontier):
        largest = max((c for c in frontier if c in children), key=lambda c: size[c])
        frontier.remove(largest)
        frontier.extend(children[largest])
    top_of = {}
    for cluster in sorted(size):
        top_of[cluster] = cluster if cluster in frontier else top_of.get(parent_of.get(cluster, -1), -1)
    return np.array([top_of.get(int(c), -1) for c in falls_from])


def scores(gold: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    clustered = labels >= 0
    correct = sum(
        np.unique(gold[labels == label], return_counts=True)[1].max() for label in np.unique(labels[clustered])
    )
    return {
        "reconstruction_accuracy": round(float(correct / len(labels)), 3),
        "nmi": round(float(normalized_mutual_info_score(gold[clustered], labels[clustered])), 3),
        "ari": round(float(adjusted_rand_score(gold[clustered], labels[clustered])), 3),
        "clustered_share": round(float(clustered.mean()), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--min-cluster-size", type=int, default=50)
    args = parser.parse_args()

    records = generate_conversations(args.n, seed=0)
    category = np.array([r["labels"]["category"] for r in records])
    subtopic = np.array([r["labels"]["subtopic"] for r in records])
    convs = load_conversations(records)
    started = time.perf_counter()
    scrubbed = PresidioScrubber().scrub([c.user_text() for c in convs]).texts
    embeddings = SentenceTransformerEmbedder(cache_dir=Path.home() / ".cache" / "clio_lite", verbose=False).embed(
        scrubbed
    )
    runs = []
    for seed in args.seeds:
        reduced = UMAPReducer(n_components=5, random_state=seed).fit_transform(embeddings)
        clusterer = HDBSCANClusterer(min_cluster_size=args.min_cluster_size)
        ours = clusterer.fit_hierarchy(reduced, embeddings, texts=scrubbed)
        ward = clusterer.fit_hierarchy(reduced, embeddings)
        raw = clusterer.model_.condensed_tree_._raw_tree
        # The same fine clusters as the clusterer's (its selected clusters, HDBSCAN's noise unclustered).
        selected = prune_to_selected(raw, clusterer.model_.labels_)
        in_umap = hierarchy_from_condensed_tree(selected, reduced, min_node_size=args.min_cluster_size)
        leaves = np.array([node if not (ours.parent == node).any() else -1 for node in ours.assignment])
        runs.append({
            "seed": seed,
            "levels": int(ours.depth().max()),
            "nodes": ours.n_nodes,
            "leaves_vs_subtopic": scores(subtopic, leaves),
            "top_vs_category": {
                "tfidf_average": scores(category, top_labels(ours, len(records))),
                "ward_embedding": scores(category, top_labels(ward, len(records))),
                "ward_umap": scores(category, top_labels(in_umap, len(records))),
                "condensed_tree": scores(category, condensed_tree_top(raw, len(records), 10)),
            },
        })
    print(json.dumps({
        "corpus": {"n": args.n, "categories": len(set(category)), "subtopics": len(set(subtopic))},
        "min_cluster_size": args.min_cluster_size,
        "seconds": round(time.perf_counter() - started, 1),
        "runs": runs,
    }, indent=2))


if __name__ == "__main__":
    main()
