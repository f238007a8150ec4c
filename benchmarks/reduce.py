"""The reduce stage: what the cheap map costs and how faithful it is, and the clustering UMAP's transform in
worker processes. Prints JSON.

``--maps N``: ``Clio(random_state=0)`` fitted on N generated conversations (``fixtures.generate``, seed 0) three
times over one cache (so scrub, embed and the 5-D clustering space are computed once and shared): with the map of
earlier versions (``map_reducer=UMAPReducer(n_components=2)``: UMAP of all 384-d embeddings), with the default
map (:class:`clio_lite.reduce.SampledMap`: UMAP of a sample of ``map_fit_limit`` embeddings, the rest placed by
their neighbours in the 5-D space; at N ≤ 20,000 the same as the earlier map), and with the earlier map at another
seed (how much UMAP's own layout moves with its seed: the yardstick), and with the default map at smaller
``--map-limits`` (so that the sample is a sample at this N). The released trees are the same (only the map
differs); per pair of maps it reports, over the released nodes' centres (``x``, ``y``):

- ``spearman``: Spearman correlation of the pairwise distances between node centres (all nodes, and leaves only);
- ``neighbours``: mean share of each leaf's 5 nearest leaves (by centre) that are the same on both maps.

and, per map, the same two figures against the embedding space itself (``vs_embedding_space``: each node's
centroid of its members' embeddings, unit-normalised), which is what a map should show.

and the seconds of each map alone (its reducer on the same input, timed in this process after the fits).

``--transform N``: N points (the static embedder's vectors of N generated conversations, repeated texts
included), the 5-D UMAP fitted on a seeded ``--fit-limit`` of them (as ``fit_transform_sampled`` does) and the rest
placed in blocks of that size, in this process only and in worker processes too (``transform_blocks``): seconds
(this process's CPU seconds leave out the workers'), whether the bytes are the same, the pickled reducer's size.

``--beside N``: the reduce stage (``Clio._reduce``: the 5-D clustering UMAP and the default map) on the embeddings
of N generated conversations (``Clio(random_state=0)``'s, through the benchmark's cache), each run in a fresh
process with no cache, with ``LocalExecutor(processes=1)`` (both UMAPs one after the other, here) and ``2`` (the
map's UMAP in a worker process beside the clustering one): the stage's wall seconds, the CPU seconds of this
process and of its worker process, the load average, and whether the outputs are the same bytes. ``--warm`` first
runs a small UMAP in each process (as a process that has fitted before: numba's code loaded).

    nice -n 5 python benchmarks/reduce.py --maps 10000 > reduce.json
    nice -n 5 python benchmarks/reduce.py --transform 200000 --fit-limit 50000 > transform.json
    nice -n 5 python benchmarks/reduce.py --beside 10000 > beside.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))

from fast_mode import Clock  # noqa: E402  (this folder is on the path when a benchmark runs as a script)
from scipy.spatial.distance import pdist  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from clio_lite import Clio, load_conversations  # noqa: E402
from clio_lite.embed import StaticEmbedder, distill_static_model  # noqa: E402
from clio_lite.pipeline import fit_transform_sampled  # noqa: E402
from clio_lite.reduce import SampledMap, UMAPReducer, transform_blocks  # noqa: E402
from fixtures.generate import generate_conversations  # noqa: E402

logger = logging.getLogger("reduce")
CACHE = ROOT / ".cache" / "bench-reduce"
MODELS = ROOT / ".cache" / "models"


def centres(clio: Clio) -> dict[str, tuple[float, float, bool]]:
    nodes = clio.release_.tree.nodes
    parents = {node.parent_id for node in nodes}
    return {node.id: (node.x, node.y, node.id not in parents) for node in nodes}


def agreement(a: dict, b: dict, k: int = 5) -> dict:
    """How alike two maps place the same released nodes."""
    assert a.keys() == b.keys(), "the two fits released different trees"
    ids = sorted(a)
    leaves = [i for i in ids if a[i][2]]
    out: dict = {"nodes": len(ids), "leaves": len(leaves)}
    for name, chosen in (("all", ids), ("leaves", leaves)):
        pa = pdist(np.array([a[i][:2] for i in chosen]))
        pb = pdist(np.array([b[i][:2] for i in chosen]))
        out[f"spearman_{name}"] = round(float(spearmanr(pa, pb).statistic), 3)
    pa, pb = (np.array([m[i][:2] for i in leaves]) for m in (a, b))

    def nearest(points: np.ndarray) -> np.ndarray:
        d = np.linalg.norm(points[:, None] - points[None], axis=2)
        np.fill_diagonal(d, np.inf)
        return np.argsort(d, axis=1, kind="stable")[:, :k]

    na, nb = nearest(pa), nearest(pb)
    out[f"neighbours_{k}"] = round(float(np.mean([len(set(x) & set(y)) / k for x, y in zip(na, nb, strict=True)])), 3)
    return out


def embedding_centres(clio: Clio) -> dict[str, tuple]:
    """Each released node's centroid in the embedding space (unit-normalised mean of its members' embeddings)."""
    labels = np.asarray(clio.labels_, dtype=str)
    embeddings = np.asarray(clio.embeddings_, dtype=np.float64)
    out = {}
    for node_id, (_, _, leaf) in centres(clio).items():
        members = (labels == node_id) | np.char.startswith(labels, node_id + ".")
        centre = embeddings[members].mean(axis=0)
        out[node_id] = (*(centre / np.linalg.norm(centre)), leaf)
    return out


def faithfulness(truth: dict, placed: dict, k: int = 5) -> dict:
    """How well a map's node centres keep the nodes' distances and neighbours in the embedding space."""
    ids = sorted(truth)
    out: dict = {}
    for name, chosen in (("all", ids), ("leaves", [i for i in ids if truth[i][-1]])):
        true = pdist(np.array([truth[i][:-1] for i in chosen]))
        shown = pdist(np.array([placed[i][:2] for i in chosen]))
        out[f"spearman_{name}"] = round(float(spearmanr(true, shown).statistic), 3)
    leaves = [i for i in ids if truth[i][-1]]

    def nearest(points: np.ndarray) -> np.ndarray:
        d = np.linalg.norm(points[:, None] - points[None], axis=2)
        np.fill_diagonal(d, np.inf)
        return np.argsort(d, axis=1, kind="stable")[:, :k]

    nt = nearest(np.array([truth[i][:-1] for i in leaves]))
    ns = nearest(np.array([placed[i][:2] for i in leaves]))
    out[f"neighbours_{k}"] = round(float(np.mean([len(set(x) & set(y)) / k for x, y in zip(nt, ns, strict=True)])), 3)
    return out


def maps(n: int, mode: str, map_limits: list[int]) -> dict:
    records = generate_conversations(n, seed=0)
    CACHE.mkdir(parents=True, exist_ok=True)
    if mode == "fast" and not (CACHE / "models").exists():
        distill_static_model(models_dir=MODELS)
        shutil.copytree(MODELS, CACHE / "models", ignore=shutil.ignore_patterns(".distilling-*"))
    params = dict(mode=mode, cache_dir=CACHE, random_state=0, verbose=False)
    fits = {}
    for name, extra in (
        ("sampled_map", {}),
        ("umap_384d", {"map_reducer": UMAPReducer(n_components=2)}),
        ("umap_384d_other_seed", {"map_reducer": UMAPReducer(n_components=2, random_state=1234)}),
        *((f"sampled_map_{limit}", {"map_fit_limit": limit}) for limit in map_limits if limit < n),
    ):
        with Clock() as clock:
            fits[name] = Clio(**params, **extra).fit(records)
        logger.info("%s: fit %.1f s wall; stages %s", name, clock.wall, fits[name].timings_)
    result: dict = {"n": n, "mode": mode, "map_fit_limit": Clio().map_fit_limit,
                    "released_nodes": len(fits["sampled_map"].release_.tree.nodes)}
    placed = {name: centres(clio) for name, clio in fits.items()}
    result["sampled_map_vs_umap_384d"] = agreement(placed["umap_384d"], placed["sampled_map"])
    result["umap_384d_other_seed_vs_umap_384d"] = agreement(placed["umap_384d"], placed["umap_384d_other_seed"])
    for limit in map_limits:
        if limit < n:
            result[f"sampled_map_{limit}_vs_umap_384d"] = agreement(placed["umap_384d"], placed[f"sampled_map_{limit}"])
    truth = embedding_centres(fits["sampled_map"])
    result["vs_embedding_space"] = {name: faithfulness(truth, centres_) for name, centres_ in placed.items()}
    # Each map alone, on the same input as in the fit (the 5-D space read back through the pipeline's own path).
    embeddings = np.asarray(fits["sampled_map"].embeddings_, dtype=np.float32)
    with Clock() as clock:
        reduced = fit_transform_sampled(UMAPReducer(n_components=5, random_state=0), embeddings, 50_000, 0)
    result["seconds_umap_5d"] = clock.read()
    with Clock() as clock:
        fit_transform_sampled(UMAPReducer(n_components=2, random_state=1), embeddings, 50_000, 1)
    result["seconds_map_umap_384d"] = clock.read()
    for limit in sorted({*map_limits, 20_000}):
        if limit < n or limit == 20_000:
            with Clock() as clock:
                SampledMap(fit_limit=limit, random_state=1).fit_transform(embeddings, space=reduced)
            result[f"seconds_sampled_map_{limit}"] = clock.read()
    return result


def transform(n: int, fit_limit: int, processes: int) -> dict:
    records = generate_conversations(n, seed=0)
    texts = [conversation.user_text() for conversation in load_conversations(records)]
    distill_static_model(models_dir=MODELS)
    vectors = StaticEmbedder(models_dir=MODELS).embed(texts)
    # The split fit_transform_sampled makes: a seeded sample fitted, the rest in blocks of fit_limit.
    sample = np.zeros(n, dtype=bool)
    sample[np.random.default_rng(0).choice(n, size=fit_limit, replace=False)] = True
    rest = np.flatnonzero(~sample)
    blocks = [rest[start : start + fit_limit] for start in range(0, len(rest), fit_limit)]
    reducer = UMAPReducer(n_components=5, random_state=0)
    result: dict = {"n": n, "fit_limit": fit_limit, "blocks": len(blocks)}
    with Clock() as clock:
        reducer.fit_transform(vectors[sample])
    result["seconds_fit"] = clock.read()
    outputs = {}
    for label, count in (("one_process", 1), (f"{processes}_processes", processes)):
        with Clock() as clock:
            outputs[label] = np.concatenate(list(transform_blocks(reducer, vectors, blocks, processes=count)))
        result[f"seconds_transform_{label}"] = clock.read()
        logger.info("%s: %.1f s wall", label, clock.wall)
    first, second = outputs.values()
    result["same_bytes"] = first.tobytes() == second.tobytes()
    import cloudpickle

    result["fitted_reducer_pickle_mb"] = round(len(cloudpickle.dumps(reducer)) / 1e6, 1)
    return result


def beside(n: int, warm: bool, repeats: int) -> dict:
    """The reduce stage in fresh processes, the map's UMAP here after the clustering one, or beside it."""
    embeddings = CACHE / f"beside-{n}.npy"
    if not embeddings.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        clio = Clio(random_state=0, cache_dir=CACHE, verbose=False).fit(generate_conversations(n, seed=0))
        np.save(embeddings, np.asarray(clio.embeddings_, dtype=np.float32))
    runs = []
    for _ in range(repeats):
        for processes in (1, 2):
            command = [sys.executable, __file__, "--beside-child", str(embeddings), str(processes), str(int(warm))]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            runs.append(json.loads(done.stdout.splitlines()[-1]))
            logger.info("%s", runs[-1])
    digests = {run.pop("digest") for run in runs}
    return {"n": n, "warm": warm, "same_bytes": len(digests) == 1, "runs": runs}


def beside_child(path: str, processes: int, warm: bool) -> None:
    from clio_lite.executor import LocalExecutor

    embeddings = np.load(path)
    if warm:
        UMAPReducer(n_components=2, random_state=0).fit_transform(embeddings[:300])
    clio = Clio(random_state=0, cache_dir=False, verbose=False, executor=LocalExecutor(processes=processes))
    clio.work_ = {"reduce": {}}
    load = os.getloadavg()[0]
    with Clock() as clock:
        reduced, positions = clio._reduce(embeddings, clio._seeds())
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the worker process, ended with the stage
    print(json.dumps({
        "processes": processes, "map_fit": clio.work_["reduce"]["map_fit"], "wall_s": round(clock.wall, 1),
        "cpu_s_this_process": round(clock.cpu, 1), "cpu_s_worker": round(children.ru_utime + children.ru_stime, 1),
        "load_1min_before": round(load, 2), "load_1min_after": round(os.getloadavg()[0], 2),
        "digest": hashlib.sha256(reduced.tobytes() + positions.tobytes()).hexdigest(),
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--maps", type=int, default=0, metavar="N", help="compare the maps on N conversations")
    parser.add_argument("--map-limits", type=int, nargs="*", default=[2000, 5000],
                        help="also compare SampledMap with these map_fit_limit values (those below N)")
    parser.add_argument("--mode", default="default", choices=("default", "fast"), help="Clio mode for --maps")
    parser.add_argument("--transform", type=int, default=0, metavar="N", help="time the 5-D transform on N points")
    parser.add_argument("--fit-limit", type=int, default=50_000, help="UMAP's fit sample for --transform")
    parser.add_argument("--processes", type=int, default=2, help="processes for --transform")
    parser.add_argument("--beside", type=int, default=0, metavar="N",
                        help="time the reduce stage with the map's UMAP here or in a worker process, N conversations")
    parser.add_argument("--warm", action="store_true", help="--beside: numba's code loaded before the stage")
    parser.add_argument("--repeats", type=int, default=1, help="--beside: pairs of runs")
    parser.add_argument("--beside-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.beside_child:
        path, processes, warm = args.beside_child
        beside_child(path, int(processes), warm == "1")
        return
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from umap import UMAP

    # numba compiles (or loads) UMAP's code on first use: kept out of the timings.
    UMAP(n_components=2, random_state=0).fit_transform(np.random.default_rng(0).normal(size=(300, 8)))
    result: dict = {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()}
    if args.maps:
        result["maps"] = maps(args.maps, args.mode, args.map_limits)
    if args.transform:
        result["transform"] = transform(args.transform, args.fit_limit, args.processes)
    if args.beside:
        result["beside"] = beside(args.beside, args.warm, args.repeats)
    result["load_average_at_end"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
