"""Running the per-conversation model stages (scrub, embed): de-duplicated, cached, chunked, locally or on Ray.

Each stage goes the same way:

1. identical texts are collapsed (each distinct text is computed once and the result fanned out);
2. texts whose result is in the stage's :class:`~clio_lite.checkpoint.ResultCache` are taken from it;
3. the rest is sorted by length and cut into chunks of :data:`CHUNK_SIZE` texts, and each chunk goes to a worker:
   on this machine (:class:`LocalExecutor`: this process, and for scrubbing, when there is enough of it, worker
   processes beside it) or to an actor pool on a Ray cluster (:class:`RayExecutor`, as a Ray Data ``map_batches``
   job whose workers load their model once);
4. each finished chunk is committed to the cache at once, in order, so a run killed mid-stage keeps what it did.

Because the chunks are cut the same way everywhere (and a resumed run's remaining chunks are exactly the ones the
killed run had not finished), a model sees the same batches whether it runs here, on Ray, or after a restart: the
results, and so the release, are byte-identical. (A sentence-transformers model's float results depend on which
texts share its batch, in the last bits.)
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import os
import pickle
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import BrokenExecutor, Future
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .accounting import check_stage_rows
from .checkpoint import ResultCache

logger = logging.getLogger(__name__)

#: Texts per chunk: the unit of work sent to a worker and committed to the cache.
CHUNK_SIZE = 256

#: At most this many processes scrub at once when :class:`LocalExecutor` chooses (each holds its own models, about
#: 0.6 GB for Presidio with spaCy's small model).
MAX_AUTO_PROCESSES = 4

# Environment that keeps workers offline, passed to Ray workers as it is set in the driver.
_WORKER_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "NUMBA_CACHE_DIR")


# -- workers: what runs on one chunk, here or in a Ray actor --------------------------------------------------------


def placeholder_counts(original: str, scrubbed: str, entities: Sequence[str]) -> Counter:
    """Entities replaced in one text, counted by the ``<ENTITY>`` placeholders that scrubbing added."""
    counts: Counter = Counter()
    for entity in entities:
        added = scrubbed.count(f"<{entity}>") - original.count(f"<{entity}>")
        if added > 0:
            counts[entity] = added
    return counts


def scrub_each(scrubber: Any, texts: list[str]) -> list[tuple[str, Counter]]:
    """Scrub ``texts`` in one batch and return each text's scrubbed form with its own entity counts.

    A scrubber reports counts per batch; per-text counts (needed to fan one result out to identical texts and to
    cache it) are read from its ``per_text_counts`` if it has them, else from the placeholders each text gained,
    checked against the batch's totals. Should they not add up (a scrubber whose replacements are not
    ``<ENTITY>``), the texts are scrubbed one by one instead.
    """
    result = scrubber.scrub(texts)
    per_text = getattr(result, "per_text_counts", None)
    if per_text is not None:
        return [(text, Counter(counts)) for text, counts in zip(result.texts, per_text, strict=True)]
    entities = sorted(result.entity_counts)
    counts = [placeholder_counts(o, s, entities) for o, s in zip(texts, result.texts, strict=True)]
    if sum(counts, Counter()) == Counter(result.entity_counts):
        return list(zip(result.texts, counts, strict=True))
    logger.debug("scrubber's placeholders do not match its counts; scrubbing this chunk text by text")
    singles = [scrubber.scrub([text]) for text in texts]
    return [(single.texts[0], Counter(single.entity_counts)) for single in singles]


def _without_state(stage: Any, keep: Sequence[str] = (), **params: Any) -> Any:
    """A shallow copy of ``stage`` without its cached properties (loaded models, open caches) except ``keep``,
    with ``params`` set.

    Sent to a Ray worker it is small to serialise and loads its model there, once; in this process it keeps the
    models already loaded (``keep``) and drops only what ``params`` replaces.
    """
    stage = copy.copy(stage)
    for name in list(vars(stage)):
        if name not in keep and isinstance(getattr(type(stage), name, None), functools.cached_property):
            del stage.__dict__[name]
    for name, value in params.items():
        if hasattr(stage, name):
            setattr(stage, name, value)
    return stage


class ScrubWorker:
    """Scrubs one chunk; its result is JSON: ``[[scrubbed text, {entity: count}], ...]``."""

    stage = "scrub"

    def __init__(self, scrubber: Any):
        self.scrubber = scrubber

    def for_remote(self) -> ScrubWorker:
        return ScrubWorker(_without_state(self.scrubber))

    @property
    def min_texts_per_process(self) -> int | None:
        """Texts per worker process below which a process costs more than it saves; ``None``: never in processes.

        Read from the scrubber (clio_lite's scrubbers say it; a scrubber of one's own runs in this process unless it
        has the attribute too: it might count or remember what it sees, which a worker process would not report).
        """
        return getattr(self.scrubber, "min_texts_per_process", None)

    def __call__(self, texts: list[str]) -> bytes:
        return json.dumps([[text, dict(counts)] for text, counts in scrub_each(self.scrubber, texts)]).encode()

    @staticmethod
    def split(payload: bytes) -> list[bytes]:
        """One cache value per text."""
        return [json.dumps(item).encode() for item in json.loads(payload)]


class EmbedWorker:
    """Embeds one chunk; its result is the float32 rows' little-endian bytes."""

    stage = "embed"

    def __init__(self, embedder: Any):
        self.embedder = embedder

    def for_remote(self) -> EmbedWorker:
        return EmbedWorker(_without_state(self.embedder))

    #: torch already spreads one model's work over every core: more processes would only add model copies.
    min_texts_per_process = None

    def __call__(self, texts: list[str]) -> bytes:
        vectors = np.ascontiguousarray(self.embedder.embed(texts), dtype="<f4")
        # A custom embedder that drops or adds rows fails here, naming itself, not later in a reshape.
        check_stage_rows(len(texts), embed=len(vectors) if vectors.ndim == 2 else 0)
        return vectors.tobytes()

    @staticmethod
    def split(payload: bytes, n: int) -> list[bytes]:
        rows = np.frombuffer(payload, dtype="<f4").reshape(n, -1)
        return [row.tobytes() for row in rows]


# -- executors -------------------------------------------------------------------------------------------------------


class LocalExecutor:
    """Runs the chunks on this machine: in this process, and, for a stage that gains from it, in worker processes.

    spaCy's named-entity model and clio_lite's rules run in one thread, so scrubbing uses one core per process. With
    more than one process this process scrubs chunks too, the others each load the scrubber once and take chunks as
    they free up, and results are handed on in chunk order (committed in order, so a killed run resumes as usual).
    A chunk's result does not depend on the process that computed it. Embedding stays in this process: torch already
    uses every core.

    Parameters
    ----------
    processes : int or "auto"
        How many processes scrub, this one included. ``"auto"``: one per idle CPU (this process's own included, as
        the one-minute load average tells; at most :data:`MAX_AUTO_PROCESSES`), fewer when there are too few texts
        for another process to pay for its start-up (the scrubber's ``min_texts_per_process`` texts per process).
        ``1``: this process only.
        A scrubber without ``min_texts_per_process``, or one that cannot be pickled, always runs in this process.

    Notes
    -----
    Each worker process holds its own copy of the models (about 0.6 GB RSS for the default scrubber) while the stage
    runs; the processes end with the stage. They are started with joblib's loky, which needs no
    ``if __name__ == "__main__":`` guard in the calling script.
    """

    def __init__(self, processes: int | str = "auto"):
        self.processes = processes

    def processes_for(self, worker: Any, chunks: Sequence[list[str]]) -> int:
        """How many processes (this one included) would run ``worker`` over ``chunks``."""
        per_process = getattr(worker, "min_texts_per_process", None)
        if per_process is None or len(chunks) < 2:
            return 1
        if self.processes == "auto":
            texts = sum(len(chunk) for chunk in chunks)
            # A worker process only pays on a core nothing else is using: on a busy machine it would add its
            # start-up and model load and take a share of the same cores.
            cores = min(_usable_cpus(), 1 + _idle_cpus())
            return max(1, min(cores, MAX_AUTO_PROCESSES, len(chunks), texts // max(per_process, 1)))
        if not isinstance(self.processes, int) or isinstance(self.processes, bool) or self.processes < 1:
            raise ValueError(f"LocalExecutor(processes={self.processes!r}): expected 'auto' or a positive integer.")
        return min(self.processes, len(chunks))

    def map_chunks(self, worker: Callable[[list[str]], bytes], chunks: Sequence[list[str]]) -> Iterator[bytes]:
        processes = self.processes_for(worker, chunks)
        payload = _remote_payload(worker) if processes > 1 else None
        if payload is None:
            for chunk in chunks:
                yield worker(chunk)
            return
        logger.debug("%s: %d chunks over %d processes", getattr(worker, "stage", "stage"), len(chunks), processes)
        yield from _map_with_helpers(worker, payload, chunks, processes - 1)


def _usable_cpus() -> int:
    return len(_usable_cpus_set())


def _idle_cpus() -> int:
    """Cores left idle by everything running (one-minute load average); all usable ones where load is not known."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return _usable_cpus()
    return max(0, round(_usable_cpus() - load))


def _free_cpus(interval: float = 0.2) -> float:
    """Cores this process could use now: the usable ones less those busy with other processes' work.

    Measured over the next ``interval`` seconds from ``/proc/stat`` (the usable cores' busy time) less this
    process's own CPU time in the same span. Unlike the one-minute load average (:func:`_idle_cpus`), this does not
    count the work this process itself just did: after the embed stage has kept every core busy for a minute, the
    load average still says the machine is full. Where ``/proc/stat`` cannot be read: ``1 + _idle_cpus()``.
    """
    usable = _usable_cpus_set()

    def busy_seconds() -> float | None:
        try:
            with open("/proc/stat") as stat:
                lines = [line.split() for line in stat if line.startswith("cpu") and line[3:4].isdigit()]
        except OSError:
            return None
        ticks = 0
        for fields in lines:
            if int(fields[0][3:]) in usable:
                values = [int(value) for value in fields[1:9]]  # user nice system idle iowait irq softirq steal
                ticks += sum(values) - values[3] - values[4]
        return ticks / os.sysconf("SC_CLK_TCK")

    start, own_start, clock = busy_seconds(), time.process_time(), time.monotonic()
    if start is None:
        return float(min(_usable_cpus(), 1 + _idle_cpus()))
    time.sleep(interval)
    end, own, elapsed = busy_seconds(), time.process_time() - own_start, time.monotonic() - clock
    elsewhere = max(0.0, ((end or start) - start - own) / elapsed)
    return max(0.0, len(usable) - elsewhere)


def _usable_cpus_set() -> set[int]:
    """The CPUs this process may run on (its affinity; every CPU where that is not known)."""
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return set(range(os.cpu_count() or 1))


def _remote_payload(worker: Any) -> bytes | None:
    """The worker without its loaded models (its ``for_remote()``, if it has one), pickled for a worker process;
    ``None`` if it cannot be."""
    import cloudpickle

    for_remote = getattr(worker, "for_remote", None)
    try:
        return cloudpickle.dumps(for_remote() if for_remote is not None else worker)
    except Exception as error:  # noqa: BLE001 - any pickling failure means: run here
        logger.info("running %s in this process only: it cannot be sent to a worker process (%s)",
                    getattr(worker, "stage", "the stage"), error)
        return None


# The worker of a helper process, unpickled once by the process's initializer (so its model loads once).
_process_worker: Any = None


def _start_process_worker(payload: bytes) -> None:
    global _process_worker
    _end_with_parent()
    _process_worker = pickle.loads(payload)


def _end_with_parent() -> None:
    """Have the kernel kill this worker process when the process that started it ends (Linux; elsewhere nothing).

    A run killed with SIGKILL (or for memory) would otherwise leave its idle worker processes behind, each holding
    its models, and holding open the killed run's output pipes.
    """
    import ctypes
    import signal

    parent = os.getppid()
    try:
        set_death_signal = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return
    set_death_signal(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent ended before the signal was set
        os._exit(1)


def _run_in_process_worker(texts: list[str]) -> bytes:
    return _process_worker(texts)


def _map_with_helpers(
    worker: Callable[[list[str]], bytes], payload: bytes, chunks: Sequence[list[str]], helpers: int,
    queued_per_helper: int = 2,
) -> Iterator[bytes]:
    """Each chunk's result in order, computed by ``helpers`` worker processes and by this process.

    Should a worker process die (killed for memory, say) or none start, the chunks not yet handed on are computed
    here, with a warning: the results are the same.
    """
    done_here: dict[int, bytes] = {}
    handed_on = 0
    try:
        for result in _pooled(worker, payload, chunks, helpers, done_here, queued_per_helper):
            yield result
            handed_on += 1
    except (BrokenExecutor, OSError) as error:
        logger.warning("a worker process failed (%s: %s); the rest of the stage runs in this process",
                       type(error).__name__, error)
        for index in range(handed_on, len(chunks)):
            yield done_here.pop(index) if index in done_here else worker(chunks[index])


def _pooled(
    worker: Callable[[list[str]], bytes],
    payload: bytes,
    chunks: Sequence[list[str]],
    helpers: int,
    done_here: dict[int, bytes],
    queued_per_helper: int = 2,
) -> Iterator[bytes]:
    """Up to ``queued_per_helper`` chunks per helper are queued (one, for a few long chunks, so this process is not
    left waiting on a queue it could have shared); while the next chunk due is still running in a helper, this process
    computes the first chunk nobody has taken (into ``done_here``). So every process stays busy and a slow one holds
    nobody up for long."""
    from joblib.externals.loky import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=helpers, initializer=_start_process_worker, initargs=(payload,))
    finished = False
    try:
        queued: dict[int, Future] = {}
        taken = 0
        for due in range(len(chunks)):
            while True:
                while taken < len(chunks) and len(queued) < queued_per_helper * helpers:
                    queued[taken] = pool.submit(_run_in_process_worker, chunks[taken])
                    taken += 1
                if due in done_here:
                    yield done_here.pop(due)
                    break
                if queued[due].done() or taken == len(chunks):
                    yield queued.pop(due).result()
                    break
                done_here[taken] = worker(chunks[taken])
                taken += 1
        finished = True
    finally:
        # On an error (or a consumer that stopped early) the helpers are stopped, not waited for.
        pool.shutdown(wait=True, kill_workers=not finished)


class Beside:
    """One call, ``worker(argument)``, run in a worker process while this process does other work.

    :meth:`result` waits for it. Should the worker process die, or not start, or should ``worker`` not be
    picklable, the call runs in this process instead (with a warning): the result is the same. With
    ``in_worker=False`` it simply runs in this process when :meth:`result` is asked for. Use it as a context
    manager: leaving the block stops a worker still running (this process failed meanwhile, say).

    Parameters
    ----------
    worker : callable
        Picklable (with cloudpickle); its ``for_remote()``, if it has one, is what is sent.
    argument : object
        Sent to the worker process with the call.
    in_worker : bool
        Start a worker process (``True``), or run in this process.
    on_result : callable or None
        Called once with the result, as soon as it is known: in a thread of this process when the worker process
        returns it (while this process is still busy with its own work), else in :meth:`result`. What it raises,
        :meth:`result` raises.
    """

    def __init__(self, worker: Callable[[Any], Any], argument: Any, in_worker: bool = True,
                 on_result: Callable[[Any], None] | None = None):
        self.worker, self.argument, self.on_result = worker, argument, on_result
        self._pool = self._future = None
        self._lock = threading.Lock()
        self._delivered, self._error = False, None
        payload = _remote_payload(worker) if in_worker else None
        if payload is None:
            return
        from joblib.externals.loky import ProcessPoolExecutor

        try:
            self._pool = ProcessPoolExecutor(max_workers=1, initializer=_start_process_worker, initargs=(payload,))
            self._future = self._pool.submit(_run_in_process_worker, argument)
        except (BrokenExecutor, OSError) as error:
            self._failed(error)
            return
        self._future.add_done_callback(self._on_done)

    @property
    def in_worker(self) -> bool:
        """Whether the call was sent to a worker process (it may still have run here, had that process failed)."""
        return self._future is not None

    def result(self) -> Any:
        """The call's result (waiting for the worker process, or computing it here)."""
        value: Any = None
        if self._future is not None:
            try:
                value = self._future.result()
            except (BrokenExecutor, OSError) as error:
                self._failed(error)
            else:
                self._deliver(value)
                self.close()
                return self._raise_or(value)
        value = self.worker(self.argument)
        self._deliver(value)
        return self._raise_or(value)

    def close(self) -> None:
        """Stop the worker process (killed if its call is still running)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, kill_workers=not (self._future is not None and self._future.done()))
            self._pool = None

    def __enter__(self) -> Beside:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _failed(self, error: BaseException) -> None:
        logger.warning("a worker process failed (%s: %s); %s runs in this process",
                       type(error).__name__, error, getattr(self.worker, "stage", "its work"))
        self._future = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, kill_workers=True)
            self._pool = None

    def _on_done(self, future: Future) -> None:
        if not future.cancelled() and future.exception() is None:
            self._deliver(future.result())

    def _deliver(self, value: Any) -> None:
        with self._lock:  # once, whichever thread comes first; the other waits until it is done
            if self._delivered or self.on_result is None:
                return
            self._delivered = True
            try:
                self.on_result(value)
            except Exception as error:  # noqa: BLE001 - raised again by result(), in the caller's thread
                self._error = error

    def _raise_or(self, value: Any) -> Any:
        if self._error is not None:
            raise self._error
        return value


class _RayChunkMapper:
    """The callable class Ray Data runs in each actor: builds the worker (and so loads the model) once."""

    def __init__(self, worker: Callable[[list[str]], bytes]):
        self.worker = worker

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        results = [self.worker(json.loads(payload)) for payload in batch["texts"]]
        return {"index": list(batch["index"]), "result": results}


class RayExecutor:
    """Runs the chunks as a Ray Data ``map_batches`` job on an actor pool; results come back in order.

    Parameters
    ----------
    address : str or None
        The cluster to join (``"auto"``, ``"ray://head:10001"``, ``"127.0.0.1:6379"``). ``None`` joins the cluster
        in ``RAY_ADDRESS`` if set, else starts a local one. Ignored if Ray is already initialised in this process.
    num_workers : int or None
        Actors per stage; ``None`` uses one per CPU of the cluster.
    num_cpus, num_gpus : float
        Resources each actor asks for (``num_gpus=1`` puts the embedder on a GPU).

    Notes
    -----
    The ``clio_lite`` package of this process is shipped to the workers (Ray's ``py_modules``), so they run the
    same code; its dependencies must be installed on every node.
    """

    def __init__(
        self, address: str | None = None, num_workers: int | None = None, num_cpus: float = 1, num_gpus: float = 0
    ):
        self.address = address
        self.num_workers = num_workers
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus

    @staticmethod
    def runtime_env() -> dict[str, Any]:
        """What the workers need from this process: this ``clio_lite`` package and the offline settings."""
        env = {name: os.environ[name] for name in _WORKER_ENV if name in os.environ}
        return {"py_modules": [str(Path(__file__).resolve().parent)], "env_vars": env}

    def _connect(self):
        try:
            import ray
        except ImportError as error:
            raise ModuleNotFoundError(
                "Clio(executor='ray') needs Ray: `pip install 'clio_lite[ray]'` (installs ray[data])."
            ) from error
        if not ray.is_initialized():
            address = self.address or os.environ.get("RAY_ADDRESS")
            ray.init(address=address, runtime_env=self.runtime_env(), include_dashboard=False, log_to_driver=False)
        import ray.data

        return ray

    def map_chunks(self, worker: Callable[[list[str]], bytes], chunks: Sequence[list[str]]) -> Iterator[bytes]:
        if not chunks:
            return
        ray = self._connect()
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        size = self.num_workers or max(1, int(ray.cluster_resources().get("CPU", 1) // max(self.num_cpus, 1)))
        items = [{"index": i, "texts": json.dumps(chunk)} for i, chunk in enumerate(chunks)]
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            _RayChunkMapper,
            fn_constructor_args=(worker.for_remote(),),
            batch_size=1,  # one chunk per call: the model sees the same batches as in a local run
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=min(size, len(items))),
            num_cpus=self.num_cpus,
            num_gpus=self.num_gpus or None,
        )
        for expected, row in enumerate(dataset.iter_rows()):
            if row["index"] != expected:
                raise RuntimeError(f"Ray returned chunk {row['index']} where {expected} was due; a bug in clio_lite")
            yield row["result"]


def make_executor(executor: Any) -> Any:
    """``None``/``"local"`` → :class:`LocalExecutor`; ``"ray"`` → :class:`RayExecutor`; an object as it is."""
    if executor is None or executor == "local":
        return LocalExecutor()
    if executor == "ray":
        return RayExecutor()
    if isinstance(executor, str):
        raise ValueError(f"Clio(executor={executor!r}): expected 'local', 'ray' or an executor object.")
    return executor


# -- the stages ----------------------------------------------------------------------------------------------------


def _run_stage(
    worker: Any,
    texts: Sequence[str],
    cache: ResultCache | None,
    executor: Any,
    description: str,
    verbose: bool,
) -> tuple[dict[str, bytes], dict[str, int]]:
    """Every distinct text's result (cached or computed) and how many texts were distinct, cached, computed."""
    unique = list(dict.fromkeys(texts))
    results = cache.get_many(unique) if cache is not None else {}
    # Shortest first: a chunk holds texts of about one length, so a model pads its batches little. Sorted by
    # (length, text), a total order: a resumed run cuts the same chunks (the finished ones are a prefix).
    missing = sorted((text for text in unique if text not in results), key=lambda text: (len(text), text))
    chunks = [missing[start : start + CHUNK_SIZE] for start in range(0, len(missing), CHUNK_SIZE)]
    stats = {"texts": len(texts), "distinct": len(unique), "cached": len(unique) - len(missing), "computed": 0}
    with tqdm(total=len(unique), initial=stats["cached"], desc=description, unit="text", disable=not verbose) as bar:
        for chunk, payload in zip(chunks, executor.map_chunks(worker, chunks), strict=True):
            values = worker.split(payload) if isinstance(worker, ScrubWorker) else worker.split(payload, len(chunk))
            pairs = list(zip(chunk, values, strict=True))
            if cache is not None:
                cache.put_many(pairs)
            results.update(pairs)
            stats["computed"] += len(chunk)
            bar.update(len(chunk))
    return results, stats


def scrub_texts(
    scrubber: Any, texts: Sequence[str], cache: ResultCache | None = None, executor: Any = None, verbose: bool = False
) -> tuple[list[str], Counter, dict[str, int]]:
    """Scrub ``texts`` (each distinct text once, cached ones not at all); return the scrubbed texts in order,
    the entity counts over all texts (duplicates counted as often as they occur) and the work done."""
    worker = ScrubWorker(scrubber)
    results, stats = _run_stage(worker, texts, cache, make_executor(executor), "Scrubbing PII", verbose)
    decoded = {text: json.loads(value) for text, value in results.items()}
    scrubbed = [decoded[text][0] for text in texts]
    counts: Counter = Counter()
    for text in texts:
        counts.update(decoded[text][1])
    return scrubbed, counts, stats


def embed_texts(
    embedder: Any,
    texts: Sequence[str],
    cache: ResultCache | None = None,
    executor: Any = None,
    verbose: bool = False,
    allocate: Callable[[tuple[int, int], Any], np.ndarray] | None = None,
) -> tuple[np.ndarray, dict[str, int]]:
    """Embed ``texts`` (each distinct text once, cached ones not at all); an ``(n, dim)`` float32 array in order.

    ``allocate(shape, dtype)`` gives the array the rows are written into (e.g. a memory-mapped file:
    :meth:`clio_lite.checkpoint.ArrayCheckpoints.writer`); by default a new in-memory one.
    """
    if len(texts) == 0:
        return np.asarray(embedder.embed([]), dtype=np.float32), {"texts": 0, "distinct": 0, "cached": 0, "computed": 0}
    # The stage's cache replaces the embedder's own, and its progress bar the embedder's.
    loaded = [name for name in vars(embedder) if name != "_cache"]  # keep a loaded model, not the embedder's cache
    worker = EmbedWorker(_without_state(embedder, keep=loaded, cache_dir=None, verbose=False))
    results, stats = _run_stage(worker, texts, cache, make_executor(executor), "Embedding", verbose)
    dim = len(results[texts[0]]) // 4
    vectors = (allocate or np.empty)((len(texts), dim), np.float32)  # filled in place: no list of rows beside it
    for row, text in enumerate(texts):
        vectors[row] = np.frombuffer(results[text], dtype="<f4")
    return vectors, stats
