"""Fast mode's speed: the static (model2vec) embedder beside all-MiniLM-L6-v2, and ``Clio(mode="fast")`` end to end.
Prints JSON.

On the same texts (the user text of ``fixtures.generate.generate_conversations(n, seed=0)``), in this process:

- ``embedding``: for each embedder, the seconds to load it and to embed every text with no cache (wall and CPU
  seconds of this process, all threads), and texts per second;
- ``static_at_scale`` (with ``--static-scale N``): the static embedder alone on N texts, in one call and in chunks
  of 256 as the executor cuts them;
- ``distill`` (with ``--distill``): distilling the static model from MiniLM into an empty folder, wall and CPU;
- ``end_to_end`` (with ``--end-to-end N``): ``Clio(random_state=0)`` and ``Clio(mode="fast", random_state=0)`` fitted
  on N generated conversations with an empty cache each (the distilled model copied in first), per stage.

Its quality cost is measured by ``benchmarks/quality.py --embedder static``. Both go in docs/scaling.md, "Fast mode".

    nice -n 5 python benchmarks/fast_mode.py --n 2000 --distill --end-to-end 2000 > fast.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))

from clio_lite import Clio, load_conversations  # noqa: E402
from clio_lite.embed import SentenceTransformerEmbedder, StaticEmbedder, distill_static_model  # noqa: E402
from fixtures.generate import generate_conversations  # noqa: E402

logger = logging.getLogger("fast_mode")
MODELS = ROOT / ".cache" / "models"


class Clock:
    """Wall and CPU seconds (all threads of this process) of a block."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def time_embedding(name: str, make, texts: list[str]) -> dict:
    with Clock() as load:
        embedder = make()
        embedder.embed(texts[:2])  # loads the model
    with Clock() as run:
        vectors = embedder.embed(texts)
    logger.info("%s: %d texts in %.1f s wall, %.1f s CPU", name, len(texts), run.wall, run.cpu)
    return {
        "embedder": embedder.model_id,
        "dimensions": int(vectors.shape[1]),
        "load_seconds": {"wall": round(load.wall, 2), "cpu": round(load.cpu, 2)},
        "embed_seconds": {"wall": round(run.wall, 2), "cpu": round(run.cpu, 2)},
        "texts_per_second": {"wall": round(len(texts) / run.wall, 1), "cpu": round(len(texts) / run.cpu, 1)},
    }


def fit_seconds(records: list[dict], mode: str) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        if mode == "fast":
            shutil.copytree(MODELS, Path(cache) / "models", ignore=shutil.ignore_patterns(".distilling-*"))
        with Clock() as clock:
            clio = Clio(mode=mode, cache_dir=cache, random_state=0, verbose=False).fit(records)
    logger.info("Clio(mode=%r): %.1f s wall, %.1f s CPU", mode, clock.wall, clock.cpu)
    return {
        "mode": mode,
        "seconds": {"wall": round(clock.wall, 1), "cpu": round(clock.cpu, 1)},
        "stage_wall_seconds": {stage: round(seconds, 2) for stage, seconds in clio.timings_.items()},
        "released_clusters": len(clio.release_.tree.nodes),
        "audit_passed": bool(clio.audit_.passed),
        "peak_rss_mb_so_far": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="texts embedded by both embedders")
    parser.add_argument("--distill", action="store_true", help="also time a distillation into an empty folder")
    parser.add_argument("--static-scale", type=int, default=0, metavar="N", help="also embed N texts, static only")
    parser.add_argument("--end-to-end", type=int, default=0, metavar="N", help="also fit both modes on N convs")
    parser.add_argument("--modes", nargs="+", default=["default", "fast"], choices=("default", "fast"),
                        help="the modes --end-to-end fits (default: both)")
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    result: dict = {"n": args.n, "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()}
    if args.distill:
        with tempfile.TemporaryDirectory() as folder, Clock() as clock:
            distill_static_model(models_dir=folder)
        result["distill_seconds"] = {"wall": round(clock.wall, 1), "cpu": round(clock.cpu, 1)}
    distill_static_model(models_dir=MODELS)
    records = generate_conversations(max(args.n, args.end_to_end), seed=0)
    texts = [conversation.user_text() for conversation in load_conversations(records[: args.n])]
    result["embedding"] = [
        time_embedding("static", lambda: StaticEmbedder(models_dir=MODELS), texts),
        time_embedding("minilm", lambda: SentenceTransformerEmbedder(cache_dir=None, verbose=False), texts),
    ]
    static, minilm = result["embedding"]
    result["static_speedup"] = {
        clock: round(minilm["embed_seconds"][clock] / static["embed_seconds"][clock], 1) for clock in ("wall", "cpu")
    }
    if args.static_scale:
        many = [c.user_text() for c in load_conversations(generate_conversations(args.static_scale, seed=0))]
        embedder = StaticEmbedder(models_dir=MODELS)
        embedder.embed(many[:2])
        result["static_at_scale"] = {"n": len(many), "mean_characters": round(sum(map(len, many)) / len(many))}
        for chunk in (len(many), 256):
            with Clock() as clock:
                for start in range(0, len(many), chunk):
                    embedder.embed(many[start : start + chunk])
            result["static_at_scale"][f"chunks_of_{chunk}"] = {
                "wall": round(clock.wall, 2), "cpu": round(clock.cpu, 2),
                "texts_per_cpu_second": round(len(many) / clock.cpu),
            }
    if args.end_to_end:
        import numpy as np
        from umap import UMAP

        # numba compiles (or loads) UMAP's code on first use: kept out of both timings.
        UMAP(n_components=2, random_state=0).fit_transform(np.random.default_rng(0).normal(size=(300, 8)))
        result["end_to_end"] = [fit_seconds(records[: args.end_to_end], mode) for mode in args.modes]
    result["load_average_at_end"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
