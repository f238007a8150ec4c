"""Speed benchmark: clio_lite per stage and end to end, beside the raw libraries and a user's own Presidio + BERTopic.

In one run, on the same generated corpus (``fixtures.generate.generate_conversations(n, seed=0)``) at each size, it
times, each in a fresh child process (so that its peak memory is its own ``ru_maxrss``):

- ``clio``: ``Clio(random_state=0).fit(records)`` end to end with an empty cache, per stage (``timings_``);
- ``clio_fast``: the same with ``Clio(mode="fast")``; the distilled static model is copied from ``.cache/models``
  (distilled there first if missing: a one-off, timed by ``benchmarks/fast_mode.py --distill``), not distilled in the
  timed run;
- ``clio_scrub``: ``Clio``'s scrub stage alone, as ``fit`` runs it (quicker than ``clio`` when only scrubbing is
  compared);
- ``clio_embed``: ``Clio``'s embed stage alone, as ``fit`` runs it, with its default embedder, over the same texts
  the raw embed kinds embed (the users' texts, not scrubbed: the same input for all three);
- ``raw_scrub``: Presidio alone, ``BatchAnalyzerEngine.analyze_iterator`` + ``AnonymizerEngine`` over every text,
  with the same NLP engine, recognizers, entities and threshold as clio_lite's scrubber;
- ``raw_embed``: a bare ``SentenceTransformer.encode`` of the same texts (batch 64, normalised), same model;
- ``raw_onnx``: a bare onnxruntime loop over the same texts with the ONNX file clio_lite's default embedder runs
  (exported beforehand, untimed, as clio_lite finds it exported): the model's tokenizer, batches of 32 sorted by
  length, mean pooling, normalisation; the raw library for clio_lite's default (ONNX) embed stage;
- ``baseline``: what a user would write without clio_lite: a plain loop of ``AnalyzerEngine.analyze`` +
  ``anonymize`` per text, then ``BERTopic(embedding_model=<same model>).fit_transform`` (needs the ``bench`` extra).

Every child also loads its models: that is part of what a user waits for. Times are wall-clock seconds on whatever
machine runs it; compare ratios from the same run. Optionally (``--umap-check N``) it also measures what fitting UMAP
on a sample costs in quality: the same corpus with ``umap_fit_limit=None`` and with a limit of N/3, adjusted Rand
index of the leaf labels against the gold subtopics.

    nice -n 5 python benchmarks/speed.py --sizes 1000 10000 > speed.json

With ``--input jsonl`` the clio kinds read the corpus from a JSONL file written before the clock starts
(``Clio.fit(path)``, which streams it), as a user with a million conversations on disk would; the default hands
``fit`` the list of records.

Prints one JSON document to stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import subprocess
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

KINDS = ("clio", "clio_fast", "clio_scrub", "clio_embed", "raw_scrub", "raw_embed", "raw_onnx", "baseline")
log = logging.getLogger("speed")


def _texts(n: int) -> tuple[list[dict], list[str]]:
    from clio_lite import load_conversations
    from fixtures.generate import generate_conversations

    records = generate_conversations(n, seed=0)
    convs = load_conversations(records)
    return records, [c.user_text() for c in sorted(convs, key=lambda c: c.id)]


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _cpu_seconds() -> float:
    """CPU time of this process, all threads, and of its ended child processes (the scrub stage's worker processes,
    which end with the stage): less sensitive than wall time to other work on a shared machine."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


#: ``--embed-backend``: the backend of the ``clio_embed`` kind's embedder (``None``: clio_lite's default).
EMBED_BACKEND: str | None = None

#: ``--scrub-processes``: how many processes clio_lite's scrub stage uses (``None``: its default, ``"auto"``).
SCRUB_PROCESSES: int | str | None = None
#: ``--input``: how the clio kinds get the corpus, ``"memory"`` (a list of records) or ``"jsonl"`` (a file path).
INPUT = "memory"


def _executor():
    """The executor clio_lite runs with in this measurement."""
    from clio_lite.executor import LocalExecutor

    return None if SCRUB_PROCESSES is None else LocalExecutor(processes=SCRUB_PROCESSES)


class _Clock:
    """Wall and CPU seconds since it was made."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), _cpu_seconds()

    def read(self) -> dict:
        wall, cpu = time.perf_counter() - self.wall, _cpu_seconds() - self.cpu
        return {"seconds": round(wall, 2), "cpu_seconds": round(cpu, 2)}


def _timed_clio(**params):
    """A ``Clio`` that also records each stage's CPU seconds and the process's peak RSS when the stage ends."""
    from contextlib import contextmanager

    from clio_lite import Clio

    class TimedClio(Clio):
        @contextmanager
        def _stage(self, name):
            start = _cpu_seconds()
            with super()._stage(name):
                yield
            self.cpu_timings_[name] = round(_cpu_seconds() - start, 2)
            self.peak_rss_mb_after_stage_[name] = _peak_mb()

    clio = TimedClio(**params)
    clio.cpu_timings_, clio.peak_rss_mb_after_stage_ = {}, {}
    return clio


def measure_clio(n: int, cache_dir: str | None = None, mode: str = "default") -> dict:
    """``Clio(random_state=0, mode=mode).fit`` on n generated conversations; with an empty temporary cache, or with
    ``cache_dir`` (kept: a second run after a kill, or of the same corpus, recomputes nothing already done)."""
    with tempfile.TemporaryDirectory() as temporary:
        cache = Path(cache_dir or temporary)
        if mode == "fast":
            _copy_static_model(cache / "models")
        if INPUT == "jsonl":  # written by the parent process: the generator's memory is not this process's peak
            source = _corpus_file(n, Path(tempfile.gettempdir()))
        else:
            from fixtures.generate import generate_conversations

            source = generate_conversations(n, seed=0)  # records only: nothing else of the corpus held beside the run
        clock = _Clock()
        clio = _timed_clio(random_state=0, verbose=False, cache_dir=cache, executor=_executor(), mode=mode)
        clio.fit(source)
        total = clock.read()
    return {**total, "mode": mode, "input": INPUT, "stages": clio.timings_, "cpu_stages": clio.cpu_timings_,
            "work": clio.work_, "peak_rss_mb_after_stage": clio.peak_rss_mb_after_stage_,
            "released_clusters": len(clio.release_.tree.nodes), "counts": clio.release_.counts,
            "audit_passed": bool(clio.audit_.passed)}


def _corpus_file(n: int, folder: Path) -> Path:
    """``generate_conversations(n, seed=0)`` as a JSONL file in ``folder``, written once per size and reused."""
    path = folder / f"clio_lite_speed_corpus_{n}.jsonl"
    if not path.exists():
        from fixtures.generate import generate_conversations

        partial = path.with_suffix(".partial")
        with partial.open("w") as handle:
            handle.writelines(json.dumps(record) + "\n" for record in generate_conversations(n, seed=0))
        partial.rename(path)
    return path


def measure_clio_fast(n: int, cache_dir: str | None = None) -> dict:
    return measure_clio(n, cache_dir, mode="fast")


def _copy_static_model(models: Path) -> None:
    """The fast mode's distilled model, made once under ``.cache/models`` and copied into the run's cache."""
    import shutil

    from clio_lite.embed import distill_static_model

    kept = ROOT / ".cache" / "models"
    distill_static_model(models_dir=kept)
    if not models.exists():
        shutil.copytree(kept, models, ignore=shutil.ignore_patterns(".distilling-*", ".exporting-*"))


def _presidio_engines():
    from presidio_anonymizer import AnonymizerEngine

    from clio_lite.scrub import PresidioScrubber

    scrubber = PresidioScrubber()
    batch = scrubber._analyzer  # the same NLP engine and recognizers as clio_lite's scrubber
    return scrubber, batch, AnonymizerEngine()


def measure_clio_scrub(n: int) -> dict:
    """The scrub stage alone, exactly as ``Clio.fit`` runs it (scrubber built in the stage, empty cache)."""
    from clio_lite import Clio
    from clio_lite.scrub import PresidioScrubber

    _, texts = _texts(n)
    with tempfile.TemporaryDirectory() as cache:
        clio = Clio(random_state=0, verbose=False, cache_dir=cache, executor=_executor())
        clio.timings_, clio.work_ = {}, {}
        clock = _Clock()
        with clio._stage("scrub"):
            scrubbed, _ = clio._scrub(PresidioScrubber(), texts)
        total = clock.read()
    return {**total, "texts": len(scrubbed), "work": clio.work_["scrub"]}


def measure_clio_embed(n: int) -> dict:
    """The embed stage alone, exactly as ``Clio.fit`` runs it (its default embedder built in the stage, empty cache)."""
    from clio_lite import Clio

    _, texts = _texts(n)
    with tempfile.TemporaryDirectory() as cache:
        clock = _Clock()  # from before the model loads, as in the raw kinds
        clio = Clio(random_state=0, verbose=False, cache_dir=cache, executor=_executor())
        clio.timings_, clio.work_ = {}, {}
        embedder = clio._default_embedder()
        if EMBED_BACKEND is not None:
            embedder.backend = EMBED_BACKEND
        with clio._stage("embed"):
            vectors = clio._embed(embedder, texts)
        total = clock.read()
    return {**total, "shape": list(vectors.shape), "embedder": embedder.model_id, "work": clio.work_["embed"]}


def measure_raw_scrub(n: int) -> dict:
    _, texts = _texts(n)
    clock = _Clock()  # from before Presidio's import, as clio_lite's scrub stage (which imports it) is timed
    from presidio_anonymizer.entities import OperatorConfig

    scrubber, batch, anonymizer = _presidio_engines()
    operators = {e: OperatorConfig("replace", {"new_value": f"<{e}>"}) for e in scrubber.entities}
    results = batch.analyze_iterator(texts, language="en", batch_size=scrubber.batch_size,
                                     entities=list(scrubber.entities), score_threshold=scrubber.score_threshold)
    scrubbed = [anonymizer.anonymize(text=t, analyzer_results=r, operators=operators).text
                for t, r in zip(texts, results, strict=True)]
    return {**clock.read(), "texts": len(scrubbed)}


def measure_raw_embed(n: int) -> dict:
    _, texts = _texts(n)
    clock = _Clock()  # from before the imports, as clio_lite's stages (which import their libraries) are timed
    from sentence_transformers import SentenceTransformer

    from clio_lite.embed import resolve_model

    model = SentenceTransformer(resolve_model("all-MiniLM-L6-v2"))
    vectors = model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    return {**clock.read(), "shape": list(vectors.shape)}


def measure_raw_onnx(n: int) -> dict:
    from clio_lite.embed import SentenceTransformerEmbedder, default_models_dir, resolve_model
    from clio_lite.embed_onnx import export_onnx

    _, texts = _texts(n)
    source = resolve_model("all-MiniLM-L6-v2")
    default = SentenceTransformerEmbedder(verbose=False)
    # the file clio_lite's default embedder runs here (int8 where the CPU has int8 dot products: default_backend)
    path = export_onnx(source, default.model, default.fingerprint, default_models_dir(),
                       quantize=default.backend == "onnx-int8")
    clock = _Clock()  # from before the imports, as clio_lite's stages (which import their libraries) are timed
    import numpy as np
    import onnxruntime
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = len(os.sched_getaffinity(0))
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [node.name for node in session.get_inputs()]
    vectors = np.zeros((len(texts), 384), dtype=np.float32)
    order = np.argsort([-len(text) for text in texts])
    for start in range(0, len(texts), 32):
        rows = order[start : start + 32]
        encoded = tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=256,
                            return_tensors="np")
        hidden = session.run(None, {name: encoded[name].astype(np.int64) for name in names})[0]
        mask = encoded["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        vectors[rows] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    return {**clock.read(), "shape": list(vectors.shape), "onnx_file": path.parent.name, "backend": default.backend}


def measure_baseline(n: int) -> dict:
    _, texts = _texts(n)
    clock = _Clock()  # from before the imports, as clio_lite's end-to-end run (which imports its libraries) is timed
    from bertopic import BERTopic
    from presidio_anonymizer.entities import OperatorConfig
    from sentence_transformers import SentenceTransformer

    from clio_lite.embed import resolve_model

    scrubber, batch, anonymizer = _presidio_engines()
    analyzer = batch.analyzer_engine
    operators = {e: OperatorConfig("replace", {"new_value": f"<{e}>"}) for e in scrubber.entities}
    scrubbed = []
    for text in texts:  # the plain loop a user writes
        found = analyzer.analyze(text=text, language="en", entities=list(scrubber.entities),
                                 score_threshold=scrubber.score_threshold)
        scrubbed.append(anonymizer.anonymize(text=text, analyzer_results=found, operators=operators).text)
    scrub = clock.read()
    model = SentenceTransformer(resolve_model("all-MiniLM-L6-v2"))
    topics, _ = BERTopic(embedding_model=model).fit_transform(scrubbed)
    total = clock.read()
    return {**total, "stages": {"scrub": scrub["seconds"], "bertopic": round(total["seconds"] - scrub["seconds"], 2)},
            "cpu_stages": {"scrub": scrub["cpu_seconds"],
                           "bertopic": round(total["cpu_seconds"] - scrub["cpu_seconds"], 2)},
            "topics": len(set(topics))}


def measure_umap_check(n: int) -> dict:
    from sklearn.metrics import adjusted_rand_score

    from clio_lite import Clio

    records, _ = _texts(n)
    gold = {r["id"]: r["labels"]["subtopic"] for r in records}
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        for name, limit in (("full", None), ("sampled", n // 3)):
            clio = Clio(random_state=0, verbose=False, cache_dir=cache, umap_fit_limit=limit,
                        min_users=5, min_conversations=10).fit(records)
            ids = [c.id for c in clio.conversations_]
            clustered = [i for i, label in enumerate(clio.labels_) if not label.startswith("<")]
            out[name] = {
                "umap_fit_limit": limit,
                "reduce_seconds": clio.timings_["reduce"],
                "ari_leaf_vs_subtopic": round(adjusted_rand_score(
                    [gold[ids[i]] for i in clustered], [clio.labels_[i] for i in clustered]), 4),
                "clustered_share": round(len(clustered) / len(ids), 4),
            }
    return out


def measure_bookkeeping(n: int) -> dict:
    """clio_lite's own memory for n conversations: the scrub and embed stages with stand-in models (upper-casing,
    random vectors of the real shape), so only the conversations, texts, stage results and embeddings count."""
    from collections import Counter

    import numpy as np

    from clio_lite.checkpoint import ResultCache
    from clio_lite.executor import embed_texts, scrub_texts
    from clio_lite.scrub import ScrubResult

    class StandInScrubber:
        def scrub(self, texts):
            return ScrubResult([text.upper() for text in texts], Counter())

    class StandInEmbedder:
        model_id = "stand-in"

        def embed(self, texts):
            return np.random.default_rng(len(texts)).random((len(texts), 384), dtype=np.float32)

    _, texts = _texts(n)
    loaded = _peak_mb()
    with tempfile.TemporaryDirectory() as cache:
        scrubbed, _, _ = scrub_texts(StandInScrubber(), texts, ResultCache(f"{cache}/r.sqlite", "scrub", "s"))
        del texts
        vectors, _ = embed_texts(StandInEmbedder(), scrubbed, ResultCache(f"{cache}/r.sqlite", "embed", "e"))
    return {"peak_rss_mb_with_conversations_loaded": loaded, "embeddings_mb": round(vectors.nbytes / 2**20, 1)}


def measure_pipeline_memory(n: int) -> dict:
    """Peak memory of ``Clio.fit`` on a JSONL file of n generated conversations, with the models stood in for
    (no scrubbing; hashed bag-of-words projected to 384-d; PCA instead of UMAP), so that what counts is clio_lite's
    own memory: reading, the stage results, the embeddings, HDBSCAN, the gate, naming and the audit. Add the
    models' and UMAP's memory to it (measured separately) for a full run."""
    from collections import Counter

    import numpy as np
    from sklearn.decomposition import PCA
    from sklearn.feature_extraction.text import HashingVectorizer

    from clio_lite.scrub import ScrubResult

    class StandInScrubber:
        def scrub(self, texts):
            return ScrubResult(list(texts), Counter())

    class StandInEmbedder:
        model_id = "stand-in"

        def __init__(self):
            self._hashing = HashingVectorizer(n_features=2**12, alternate_sign=False)
            self._projection = np.random.default_rng(0).normal(size=(2**12, 384)).astype(np.float32)

        def embed(self, texts):
            vectors = np.asarray(self._hashing.transform(texts) @ self._projection, dtype=np.float32)
            return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    with tempfile.TemporaryDirectory() as temporary:
        path = Path(temporary) / "conversations.jsonl"
        # Written by another process, so that generating the records does not count in this one's peak.
        writer = ("import json, sys; from fixtures.generate import generate_conversations; "
                  "open(sys.argv[2], 'w').writelines(json.dumps(r) + '\\n' "
                  "for r in generate_conversations(int(sys.argv[1]), seed=0))")
        subprocess.run([sys.executable, "-c", writer, str(n), str(path)], check=True, cwd=ROOT)
        before = _peak_mb()
        clock = _Clock()
        clio = _timed_clio(random_state=0, verbose=False, cache_dir=Path(temporary) / "cache",
                           scrubber=StandInScrubber(), embedder=StandInEmbedder(), reducer=PCA(n_components=5),
                           map_reducer=PCA(n_components=2), min_users=25, min_conversations=50)
        clio.fit(path)
        return {**clock.read(), "peak_rss_mb_before_fit": before, "stages": clio.timings_,
                "cpu_stages": clio.cpu_timings_, "peak_rss_mb_after_stage": clio.peak_rss_mb_after_stage_,
                "embeddings_type": type(clio.embeddings_).__name__,
                "released_clusters": len(clio.release_.tree.nodes)}


def _warm_umap_points(n: int):
    """n clustered 384-d unit vectors (60 centres, seeded), after one small UMAP fit has loaded UMAP's compiled code."""
    import numpy as np

    from clio_lite.reduce import UMAPReducer

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(60, 384))
    X = (centres[rng.integers(0, 60, n)] + 0.6 * rng.normal(size=(n, 384))).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    UMAPReducer(n_components=5, random_state=0).fit_transform(X[:200])  # imports and compiled code first
    return X


def measure_umap_memory(n: int) -> dict:
    """Peak memory added by one 5-D UMAP fit on n clustered 384-d unit vectors."""
    from clio_lite.reduce import UMAPReducer

    X = _warm_umap_points(n)
    before = _peak_mb()
    clock = _Clock()
    UMAPReducer(n_components=5, random_state=0).fit_transform(X)
    return {**clock.read(), "peak_rss_mb_before_fit": before}


def measure_umap_sampled_memory(n: int) -> dict:
    """Peak memory of the default mode's clustering-space UMAP at n points: 5-D, fitted on a sample of
    ``umap_fit_limit`` (50,000) rows and the rest placed by ``transform`` (``pipeline.fit_transform_sampled``)."""
    from clio_lite.pipeline import fit_transform_sampled
    from clio_lite.reduce import UMAPReducer

    X = _warm_umap_points(n)
    before = _peak_mb()
    clock = _Clock()
    fit_transform_sampled(UMAPReducer(n_components=5, random_state=0), X, 50_000, 0)
    return {**clock.read(), "peak_rss_mb_before_fit": before, "umap_fit_limit": 50_000}


def _processes(value: str) -> int | str:
    return value if value == "auto" else int(value)


def _child(kind: str, n: int, cache_dir: str | None = None) -> dict:
    """Run one measurement in a fresh interpreter; its result with its peak memory."""
    command = [sys.executable, __file__, "--measure", kind, "--n", str(n)]
    if cache_dir and kind in ("clio", "clio_fast"):
        command += ["--cache-dir", cache_dir]
    if kind in ("clio", "clio_fast"):
        command += ["--input", INPUT]
    if SCRUB_PROCESSES is not None:
        command += ["--scrub-processes", str(SCRUB_PROCESSES)]
    if EMBED_BACKEND is not None:
        command += ["--embed-backend", EMBED_BACKEND]
    log.info("measuring %s on %d conversations", kind, n)
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000],
                        help="corpus sizes for the four kinds; a bare --sizes runs only the extra measurements")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--umap-check", type=int, default=None, metavar="N",
                        help="also compare UMAP fitted on all N conversations with one fitted on N/3")
    parser.add_argument("--bookkeeping", type=int, default=None, metavar="N",
                        help="also measure clio_lite's own memory for N conversations, with stand-in models")
    parser.add_argument("--pipeline-memory", type=int, default=None, metavar="N",
                        help="also measure Clio.fit's own peak memory on a JSONL file of N, with stand-in models")
    parser.add_argument("--umap-sampled-memory", type=int, default=None, metavar="N",
                        help="also measure the peak memory of the default mode's UMAP on N points (fit on 50,000)")
    parser.add_argument("--umap-memory", type=int, default=None, metavar="N",
                        help="also measure the peak memory of one UMAP fit on N points")
    parser.add_argument("--cache-dir", default=None, metavar="DIR",
                        help="clio_lite's cache for the clio runs (default: a new empty one per run); kept, so that "
                             "a rerun after a kill resumes from it")
    parser.add_argument("--measure", choices=(*KINDS, "umap_check", "bookkeeping", "pipeline_memory", "umap_memory",
                                                "umap_sampled_memory"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--scrub-processes", type=_processes, default=None, metavar="N",
                        help="processes for clio_lite's scrub stage: a number or 'auto' (default: clio_lite's default)")
    parser.add_argument("--input", choices=("memory", "jsonl"), default="memory",
                        help="how the clio kinds get the corpus: a list of records, or a JSONL file they stream")
    parser.add_argument("--embed-backend", choices=("onnx", "torch", "onnx-int8"), default=None,
                        help="the clio_embed kind's embed backend (default: clio_lite's default, onnx)")
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    global SCRUB_PROCESSES, INPUT, EMBED_BACKEND
    SCRUB_PROCESSES, INPUT, EMBED_BACKEND = args.scrub_processes, args.input, args.embed_backend
    if args.measure:
        extra = {"cache_dir": args.cache_dir} if args.measure in ("clio", "clio_fast") else {}
        result = globals()[f"measure_{args.measure}"](args.n, **extra)
        result["peak_rss_mb"] = _peak_mb()
        child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if child_peak:  # worker processes ran beside this one: the largest one's peak (their memory adds up)
            result["peak_rss_mb_largest_worker_process"] = round(child_peak / 1024, 1)
        print(json.dumps(result))
        return 0

    report: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                "load_average_at_start": os.getloadavg()},
                    "scrub_processes": SCRUB_PROCESSES or "clio_lite's default", "input": INPUT,
                    "embed_backend": EMBED_BACKEND or "clio_lite's default",
                    "corpus": "fixtures.generate.generate_conversations(n, seed=0)", "sizes": {}}
    for n in sorted(args.sizes):  # smallest first
        if INPUT == "jsonl" and {"clio", "clio_fast"} & set(args.kinds):
            _corpus_file(n, Path(tempfile.gettempdir()))  # here, before any child's clock and outside its memory
        runs = {kind: _child(kind, n, args.cache_dir and f"{args.cache_dir}/{n}") for kind in args.kinds}
        for result in runs.values():
            if "seconds" in result:
                result["conversations_per_second"] = round(n / result["seconds"], 1)
        report["sizes"][str(n)] = {"runs": runs, "ratios": _ratios(runs)}
        print(json.dumps(report["sizes"][str(n)]), file=sys.stderr)
    report["growth"] = _growth(report["sizes"])
    if args.umap_check:
        report["umap_sample_check"] = _child("umap_check", args.umap_check)
    if args.bookkeeping:
        report["bookkeeping_memory"] = {"n": args.bookkeeping, **_child("bookkeeping", args.bookkeeping)}
    if args.pipeline_memory:
        report["pipeline_memory"] = {"n": args.pipeline_memory, **_child("pipeline_memory", args.pipeline_memory)}
    if args.umap_sampled_memory:
        report["umap_sampled_memory"] = {"n": args.umap_sampled_memory,
                                         **_child("umap_sampled_memory", args.umap_sampled_memory)}
    if args.umap_memory:
        report["umap_memory"] = {"n": args.umap_memory, **_child("umap_memory", args.umap_memory)}
    report["machine"]["load_average_at_end"] = os.getloadavg()
    print(json.dumps(report, indent=2))
    return 0


def _ratios(runs: dict) -> dict:
    """clio_lite's stage throughput over the raw library's, and the baseline's time over clio_lite's; by wall
    time and by CPU time (the fairer of the two when other work shares the machine)."""
    clio = runs.get("clio", {})
    ratios: dict = {}
    for clock, stage_key, total_key in (("wall", "stages", "seconds"), ("cpu", "cpu_stages", "cpu_seconds")):
        stages = clio.get(stage_key, {})
        if total_key in runs.get("raw_scrub", {}) and stages.get("scrub"):
            raw = runs["raw_scrub"][total_key]
            ratios[f"scrub_throughput_vs_raw_presidio_{clock}"] = round(raw / stages["scrub"], 3)
        alone = runs.get("clio_scrub", {})
        if total_key in runs.get("raw_scrub", {}) and alone.get(total_key):
            ratios[f"scrub_stage_alone_throughput_vs_raw_presidio_{clock}"] = round(
                runs["raw_scrub"][total_key] / alone[total_key], 3)
        if total_key in runs.get("raw_embed", {}) and stages.get("embed"):
            ratios[f"embed_throughput_vs_raw_encode_{clock}"] = round(runs["raw_embed"][total_key] / stages["embed"], 3)
        if total_key in runs.get("raw_onnx", {}) and stages.get("embed"):
            ratios[f"embed_throughput_vs_raw_onnxruntime_{clock}"] = round(
                runs["raw_onnx"][total_key] / stages["embed"], 3)
        embed_alone = runs.get("clio_embed", {})
        for raw in ("raw_embed", "raw_onnx"):
            if total_key in runs.get(raw, {}) and embed_alone.get(total_key):
                ratios[f"embed_stage_alone_throughput_vs_{raw}_{clock}"] = round(
                    runs[raw][total_key] / embed_alone[total_key], 3)
        if total_key in runs.get("baseline", {}) and total_key in clio:
            ratios[f"end_to_end_speedup_vs_presidio_loop_bertopic_{clock}"] = round(
                runs["baseline"][total_key] / clio[total_key], 3)
        fast = runs.get("clio_fast", {})
        if total_key in runs.get("baseline", {}) and total_key in fast:
            ratios[f"fast_mode_end_to_end_speedup_vs_presidio_loop_bertopic_{clock}"] = round(
                runs["baseline"][total_key] / fast[total_key], 3)
    if "peak_rss_mb" in runs.get("baseline", {}) and "peak_rss_mb" in clio:
        ratios["peak_memory_vs_baseline"] = round(clio["peak_rss_mb"] / runs["baseline"]["peak_rss_mb"], 3)
    return ratios


def _growth(sizes: dict) -> dict:
    """Seconds per 1,000 conversations and peak memory at each size, for each kind."""
    growth: dict = {}
    for n, entry in sizes.items():
        for kind, result in entry["runs"].items():
            if "seconds" in result:
                growth.setdefault(kind, {})[n] = {
                    "seconds_per_1000": round(result["seconds"] / int(n) * 1000, 2),
                    "cpu_seconds_per_1000": round(result.get("cpu_seconds", 0) / int(n) * 1000, 2),
                    "peak_rss_mb": result["peak_rss_mb"],
                }
    return growth


if __name__ == "__main__":
    sys.exit(main())
