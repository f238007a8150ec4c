"""The model stages run de-duplicated, cached and chunked, in this process or on a real local Ray cluster; one call
runs in a worker process beside this one; the cores free for this process are measured."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sklearn.decomposition import PCA

from clio_lite import Clio
from clio_lite.checkpoint import ResultCache, fingerprint
from clio_lite.cluster import HDBSCANClusterer
from clio_lite.embed import SentenceTransformerEmbedder
from clio_lite.executor import (
    Beside,
    EmbedWorker,
    LocalExecutor,
    RayExecutor,
    ScrubWorker,
    _free_cpus,
    _usable_cpus,
    embed_texts,
    placeholder_counts,
    scrub_texts,
)
from clio_lite.scrub import PatternScrubber, PresidioScrubber, ScrubResult

TEXTS = [
    "Email jane.doe@example.com about the invoice",
    "How do I sort a list in python?",
    "Email jane.doe@example.com about the invoice",
    "Call Maria Lopez on 415-555-0132 tomorrow",
    "How do I sort a list in python?",
    "My card 4111 1111 1111 1111 was charged twice",
    "Email jane.doe@example.com about the invoice",
]


class CountingScrubber(PresidioScrubber):
    """The real Presidio scrubber, remembering every text it was asked to scrub."""

    def __init__(self, **params):
        super().__init__(**params)
        self.seen: list[str] = []

    def scrub(self, texts):
        self.seen.extend(texts)
        return super().scrub(texts)


@pytest.fixture(scope="module")
def scrubber() -> CountingScrubber:
    return CountingScrubber()


def test_each_distinct_text_is_scrubbed_once_with_the_same_result_as_without_dedupe(scrubber):
    plain = PresidioScrubber().scrub(TEXTS)
    scrubber.seen.clear()
    scrubbed, counts, work = scrub_texts(scrubber, TEXTS)
    assert sorted(scrubber.seen) == sorted(set(TEXTS))
    assert scrubbed == plain.texts
    assert counts == plain.entity_counts and counts["EMAIL_ADDRESS"] == 3
    assert work == {"texts": 7, "distinct": 4, "cached": 0, "computed": 4}


def test_text_scrubbed_once_is_never_scrubbed_again(scrubber, tmp_path):
    cache = ResultCache(tmp_path / "results.sqlite", "scrub", fingerprint(scrubber))
    first = scrub_texts(scrubber, TEXTS[:4], cache)
    scrubber.seen.clear()
    second = scrub_texts(scrubber, TEXTS, cache)
    assert sorted(scrubber.seen) == sorted(set(TEXTS) - set(TEXTS[:4]))
    assert second[0][:4] == first[0]
    assert second[1] == PresidioScrubber().scrub(TEXTS).entity_counts
    assert second[2]["cached"] == 3 and second[2]["computed"] == 1


class RenamingScrubber:
    """Replaces a name with a pseudonym: no <ENTITY> placeholder to count, so per-text counts need one-by-one calls."""

    def scrub(self, texts):
        out = [text.replace("Maria", "Person-1") for text in texts]
        return ScrubResult(out, Counter({"PERSON": sum("Maria" in text for text in texts)}))


def test_counts_stay_exact_for_a_scrubber_without_placeholders():
    texts = ["Maria says hi", "Maria again", "no one", "Maria says hi"]
    scrubbed, counts, _ = scrub_texts(RenamingScrubber(), texts)
    assert scrubbed == ["Person-1 says hi", "Person-1 again", "no one", "Person-1 says hi"]
    assert counts == {"PERSON": 3}


def test_placeholder_counts_ignore_placeholders_already_in_the_text():
    assert placeholder_counts("I am <PERSON>, Ann", "I am <PERSON>, <PERSON>", ["PERSON", "URL"]) == {"PERSON": 1}


def test_embedding_fans_out_identical_texts_and_caches_by_model(tmp_path):
    embedder = SentenceTransformerEmbedder(cache_dir=None, verbose=False)
    cache = ResultCache(tmp_path / "results.sqlite", "embed", fingerprint(embedder))
    vectors, work = embed_texts(embedder, TEXTS, cache)
    unique = list(dict.fromkeys(TEXTS))
    direct = SentenceTransformerEmbedder(cache_dir=None, verbose=False).embed(unique)
    assert vectors.tobytes() == direct[[unique.index(t) for t in TEXTS]].tobytes()
    assert work["computed"] == 4
    again, work = embed_texts(embedder, TEXTS, cache)
    assert work["computed"] == 0 and again.tobytes() == vectors.tobytes()


# -- worker processes on this machine ------------------------------------------------------------------------


class PidRecordingScrubber(PresidioScrubber):
    """The real Presidio scrubber, leaving a file named after the process that scrubbed each batch."""

    def __init__(self, record_dir="", **params):
        super().__init__(**params)
        self.record_dir = record_dir

    def scrub(self, texts):
        (Path(self.record_dir) / str(os.getpid())).touch()
        return super().scrub(texts)


def _corpus(n: int) -> list[str]:
    from clio_lite import load_conversations
    from fixtures.generate import generate_conversations

    texts = [conversation.user_text() for conversation in load_conversations(generate_conversations(n, seed=2))]
    return texts + texts[: n // 5]  # some identical texts


def test_scrubbing_in_worker_processes_gives_the_same_results_in_order(monkeypatch, tmp_path):
    monkeypatch.setattr("clio_lite.executor.CHUNK_SIZE", 16)
    texts = _corpus(120)
    scrubber = PidRecordingScrubber(record_dir=str(tmp_path))
    alone = scrub_texts(scrubber, texts, executor=LocalExecutor(processes=1))
    assert {path.name for path in tmp_path.iterdir()} == {str(os.getpid())}
    cache = ResultCache(tmp_path / "cache" / "results.sqlite", "scrub", fingerprint(scrubber))
    spread = scrub_texts(scrubber, texts, cache, executor=LocalExecutor(processes=2))
    assert spread == alone  # scrubbed texts, entity counts, work done
    assert len({path.name for path in tmp_path.iterdir() if path.is_file()}) == 2  # a worker process scrubbed too
    # Every chunk was committed: the same texts again come from the cache alone.
    again = scrub_texts(scrubber, texts, cache, executor=LocalExecutor(processes=2))
    assert again[0] == alone[0] and again[2]["computed"] == 0


def test_processes_are_used_for_scrubbing_only_when_they_pay(monkeypatch):
    monkeypatch.setattr("clio_lite.executor._usable_cpus", lambda: 4)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.0, 1.0, 1.0))  # this process busy, three cores idle
    chunks = [["text"] * 256] * 20  # 5,120 texts
    auto = LocalExecutor()
    assert auto.processes_for(ScrubWorker(PresidioScrubber()), chunks) == 2  # 2,500 texts a process at least
    assert auto.processes_for(ScrubWorker(PresidioScrubber()), chunks * 2) == 4
    assert auto.processes_for(ScrubWorker(PresidioScrubber()), chunks[:1]) == 1  # one chunk
    assert auto.processes_for(ScrubWorker(PresidioScrubber()), chunks[:8]) == 1  # 2,048 texts
    assert auto.processes_for(ScrubWorker(PatternScrubber()), chunks) == 1  # fast: start-up would not pay back
    monkeypatch.setattr(os, "getloadavg", lambda: (3.6, 3.0, 3.0))  # a busy machine: no process to gain
    assert auto.processes_for(ScrubWorker(PresidioScrubber()), chunks * 2) == 1
    assert auto.processes_for(ScrubWorker(RenamingScrubber()), chunks) == 1  # a scrubber of one's own stays here
    assert auto.processes_for(EmbedWorker(object()), chunks) == 1  # torch uses every core already
    assert LocalExecutor(processes=3).processes_for(ScrubWorker(PatternScrubber()), chunks[:2]) == 2
    with pytest.raises(ValueError, match="processes"):
        LocalExecutor(processes=0).processes_for(ScrubWorker(PresidioScrubber()), chunks)


class LockedScrubber(CountingScrubber):
    """A scrubber holding a lock: it cannot be pickled, so it cannot go to a worker process."""

    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()


def test_a_scrubber_that_cannot_be_pickled_scrubs_in_this_process(monkeypatch):
    monkeypatch.setattr("clio_lite.executor.CHUNK_SIZE", 16)
    texts = _corpus(40)
    scrubber = LockedScrubber()
    scrubbed, counts, _ = scrub_texts(scrubber, texts, executor=LocalExecutor(processes=2))
    assert sorted(scrubber.seen) == sorted(set(texts))
    assert (scrubbed, counts) == scrub_texts(PresidioScrubber(), texts, executor=LocalExecutor(processes=1))[:2]


class DyingScrubber(PresidioScrubber):
    """The real Presidio scrubber, except that it kills any process but the one that made it (as an out-of-memory
    kill would)."""

    def __init__(self):
        super().__init__()
        self.home = os.getpid()

    def scrub(self, texts):
        if os.getpid() != self.home:
            os._exit(1)
        return super().scrub(texts)


def test_when_a_worker_process_dies_this_process_scrubs_the_rest(monkeypatch, caplog):
    monkeypatch.setattr("clio_lite.executor.CHUNK_SIZE", 16)
    texts = _corpus(60)
    with caplog.at_level("WARNING", logger="clio_lite.executor"):
        scrubbed, counts, work = scrub_texts(DyingScrubber(), texts, executor=LocalExecutor(processes=2))
    assert "worker process failed" in caplog.text
    assert (scrubbed, counts, work) == scrub_texts(PresidioScrubber(), texts, executor=LocalExecutor(processes=1))


# -- one call beside this process -----------------------------------------------------------------------------------


class Doubling:
    """Doubles an array, and says which process did it; dies (as an out-of-memory kill would) in any process but
    the one that made it when ``die_elsewhere``; sleeps first when ``sleep`` (after noting its process in
    ``pid_file``)."""

    stage = "doubling"

    def __init__(self, die_elsewhere: bool = False, sleep: float = 0.0, pid_file: str | None = None):
        self.home, self.die_elsewhere, self.sleep, self.pid_file = os.getpid(), die_elsewhere, sleep, pid_file

    def __call__(self, values: np.ndarray) -> tuple[int, np.ndarray]:
        if self.pid_file:
            Path(self.pid_file).write_text(str(os.getpid()))
        time.sleep(self.sleep)
        if self.die_elsewhere and os.getpid() != self.home:
            os._exit(1)
        return os.getpid(), values * 2


def test_a_call_beside_runs_in_a_worker_process_and_hands_its_result_on_once():
    values = np.arange(6.0)
    received = []
    with Beside(Doubling(), values, on_result=received.append) as job:
        assert job.in_worker
        pid, doubled = job.result()
    assert pid != os.getpid() and doubled.tolist() == (values * 2).tolist()
    assert len(received) == 1 and received[0][0] == pid
    with Beside(Doubling(), values, in_worker=False, on_result=received.append) as job:
        assert not job.in_worker and job.result()[0] == os.getpid()
    assert len(received) == 2


def test_when_the_worker_process_dies_the_call_runs_here(caplog):
    received = []
    dying = Beside(Doubling(die_elsewhere=True), np.ones(3), on_result=received.append)
    with caplog.at_level("WARNING", logger="clio_lite.executor"), dying as job:
        pid, doubled = job.result()
    assert "worker process failed" in caplog.text and "doubling runs in this process" in caplog.text
    assert pid == os.getpid() and doubled.tolist() == [2.0, 2.0, 2.0]
    assert len(received) == 1


def test_a_call_that_cannot_be_pickled_runs_here():
    class Locked(Doubling):  # a local class holding a lock: not picklable
        def __init__(self):
            super().__init__()
            self.lock = threading.Lock()

    with Beside(Locked(), np.ones(2)) as job:
        assert not job.in_worker and job.result()[0] == os.getpid()


def test_leaving_the_block_stops_a_worker_process_still_running(tmp_path):
    pid_file = tmp_path / "pid"
    with Beside(Doubling(sleep=120, pid_file=str(pid_file)), np.ones(2)) as job:
        assert job.in_worker
        deadline = time.monotonic() + 120
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_what_on_result_raises_the_result_raises():
    def refuse(_):
        raise OSError("no space left on device")

    with Beside(Doubling(), np.ones(2), on_result=refuse) as job, pytest.raises(OSError, match="no space"):
        job.result()


def _spin(seconds: float) -> None:
    """Keep one core busy outside the GIL (hashing a large buffer) for ``seconds``."""
    block, end = b"x" * 8_000_000, time.monotonic() + seconds
    while time.monotonic() < end:
        hashlib.sha256(block).digest()


def test_free_cores_count_other_processes_work_but_not_this_ones():
    cores = _usable_cpus()
    assert 0.0 <= _free_cpus(interval=0.2) <= cores
    spin = "import hashlib, time\nblock = b'x' * 8_000_000\nwhile True: hashlib.sha256(block).digest()"
    others = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(cores)]
    try:
        time.sleep(0.5)  # started and spinning
        busy_elsewhere = _free_cpus(interval=0.5)
    finally:
        for process in others:
            process.kill()
            process.wait()
    threads = [threading.Thread(target=_spin, args=(1.5,)) for _ in range(cores)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    busy_here = _free_cpus(interval=0.5)
    for thread in threads:
        thread.join()
    # Every core busy with other processes: none free. This process busy on every core (as after the embed stage):
    # what it uses itself is not taken away (on a machine others share, they keep their part).
    assert busy_elsewhere < 0.5
    assert busy_here > busy_elsewhere + 0.25


# -- Ray: a real local cluster, started here ---------------------------------------------------------------------

@pytest.fixture(scope="session")
def ray_cluster():
    # Skipped here, not at import: the module is imported by the worker processes of the tests above too.
    ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'clio_lite[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=RayExecutor().runtime_env())
    yield
    ray.shutdown()


def test_ray_gives_the_release_of_the_single_process_run(ray_cluster, tmp_path):
    from fixtures.generate import generate_conversations

    records = generate_conversations(300, seed=5)
    records += [dict(records[i], id=f"dup-{i}") for i in range(0, 300, 10)]  # identical texts, other records
    params = dict(min_users=5, min_conversations=10, random_state=0, verbose=False, cache_dir=False)
    # PCA keeps the test fast; what runs on Ray is scrub and embed, and the release depends on both. The default
    # selection's epsilon is a distance in UMAP's space: on PCA's it merges everything, so the leaves are taken whole.
    stages = dict(reducer=PCA(n_components=5), map_reducer=PCA(n_components=2),
                  clusterer=HDBSCANClusterer(min_cluster_size=10, cluster_selection_method="leaf",
                                            cluster_selection_epsilon=0.0))
    local = Clio(**params, **stages).fit(records)
    on_ray = Clio(**params, **stages, executor="ray").fit(records)
    assert on_ray.work_["scrub"] == local.work_["scrub"] and local.work_["scrub"]["distinct"] < len(records)
    a = local.release_.save(tmp_path / "local")
    b = on_ray.release_.save(tmp_path / "ray")
    for name in ("tree.json", "nodes.parquet", "manifest.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert len(local.release_.tree.nodes) > 1
    assert np.array_equal(local.labels_, on_ray.labels_)


def test_an_unknown_executor_is_refused():
    with pytest.raises(ValueError, match="executor"):
        Clio(executor="spark", verbose=False).fit([{"id": "a", "user_id": "u", "messages": [
            {"role": "user", "content": "hello"}]}])


def test_the_command_line_ray_option_picks_the_ray_executor_with_its_address():
    from clio_lite.cli import _executor

    assert _executor(None) is None
    assert _executor("ray://head:10001").address == "ray://head:10001"
    assert _executor("local").address is None and isinstance(_executor("local"), RayExecutor)
