"""Kill a run mid-stage with SIGKILL, start it again: nothing finished is redone and the release is the same bytes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT

N = 300
CHUNK = 32

# One run of the pipeline: the real Presidio scrubber (counting, by hash, every text it scrubs) and the real
# embedding model; PCA for the reduction keeps the test quick (UMAP's checkpoint is checked in the same way below).
SCRIPT = """
import hashlib, json, sys
import clio_lite.executor
from clio_lite import Clio
from clio_lite.scrub import PresidioScrubber
from fixtures.generate import generate_conversations
from sklearn.decomposition import PCA

clio_lite.executor.CHUNK_SIZE = {chunk}
log = open(sys.argv[2], "a")

class CountingScrubber(PresidioScrubber):
    def scrub(self, texts):
        for text in texts:
            log.write(hashlib.sha256(text.encode()).hexdigest() + "\\n")
        log.flush()
        return super().scrub(texts)

records = generate_conversations({n}, seed=11)
records += [dict(records[i], id=f"again-{{i}}") for i in range(0, {n}, 7)]
clio = Clio(min_users=5, min_conversations=10, random_state=0, verbose=False, cache_dir=sys.argv[1],
            scrubber=CountingScrubber(), reducer=PCA(n_components=5), map_reducer=PCA(n_components=2))
clio.fit(records)
clio.release_.save(sys.argv[3])
json.dump(clio.work_, open(sys.argv[4], "w"))
"""


def _start(tmp_path: Path, name: str, cache: Path) -> tuple[subprocess.Popen, dict[str, Path]]:
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(chunk=CHUNK, n=N))
    paths = {"log": tmp_path / f"{name}.scrubbed", "release": tmp_path / name, "work": tmp_path / f"{name}.json"}
    command = [sys.executable, str(script), str(cache), *(str(paths[k]) for k in ("log", "release", "work"))]
    # The script lives in tmp_path, so this checkout (clio_lite and fixtures) goes first on the child's path.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE), paths


def _finish(process: subprocess.Popen) -> None:
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr.decode()[-2000:]


def _rows(cache: Path, stage: str) -> int:
    try:
        with sqlite3.connect(cache / "results.sqlite", timeout=1) as db:
            return db.execute(f"SELECT COUNT(*) FROM results_{stage}").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, Path]:
    tmp_path = tmp_path_factory.mktemp("uninterrupted")
    process, paths = _start(tmp_path, "whole", tmp_path / "cache")
    _finish(process)
    return paths


def _corpus_hashes() -> set[str]:
    from clio_lite import load_conversations
    from fixtures.generate import generate_conversations

    records = generate_conversations(N, seed=11)
    return {hashlib.sha256(c.user_text().encode()).hexdigest() for c in load_conversations(records)}


@pytest.mark.parametrize("stage", ["scrub", "embed"])
def test_a_run_killed_mid_stage_resumes_without_redoing_work_and_writes_the_same_release(
    uninterrupted, tmp_path, stage
):
    cache = tmp_path / "cache"
    process, first = _start(tmp_path, "killed", cache)
    deadline = time.monotonic() + 600
    while _rows(cache, stage) < 2 * CHUNK:  # two chunks of the stage are done and committed
        assert process.poll() is None, "the run ended before it could be killed; make the corpus larger"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    scrubbed_before = _rows(cache, "scrub")
    done_before = _rows(cache, stage)
    assert done_before < len(_corpus_hashes()), "the stage had already finished: the kill came too late"

    process, second = _start(tmp_path, "resumed", cache)
    _finish(process)
    for name in ("tree.json", "nodes.parquet", "manifest.json"):
        assert (second["release"] / name).read_bytes() == (uninterrupted["release"] / name).read_bytes(), name

    work = json.loads(second["work"].read_text())
    distinct = work["scrub"]["distinct"]
    assert distinct == len(_corpus_hashes()) < work["scrub"]["texts"]  # duplicates were folded
    assert work[stage]["cached"] == done_before and work[stage]["computed"] == distinct - done_before
    # The scrubber itself saw, in the second run, only the conversations the first had not finished.
    corpus = _corpus_hashes()
    scrubbed_first = set(first["log"].read_text().split()) & corpus
    scrubbed_again = [h for h in second["log"].read_text().split() if h in corpus]
    assert len(scrubbed_again) == distinct - scrubbed_before == len(set(scrubbed_again))
    assert len(scrubbed_first) >= scrubbed_before


def test_a_finished_run_started_again_computes_nothing_and_reads_its_checkpoints(tmp_path):
    from clio_lite import Clio
    from fixtures.generate import generate_conversations

    records = generate_conversations(120, seed=3)
    params = dict(min_users=3, min_conversations=5, random_state=0, verbose=False, cache_dir=tmp_path / "cache")
    first = Clio(**params).fit(records)
    assert first.work_["reduce"] == {"reduced": "computed", "positions": "computed", "map_fit": "this process"}
    again = Clio(**params).fit(records)
    assert again.work_["scrub"]["computed"] == again.work_["embed"]["computed"] == 0
    assert again.work_["reduce"] == {"reduced": "checkpoint", "positions": "checkpoint"}
    assert again.release_.tree.digest() == first.release_.tree.digest()
    assert again.release_.manifest["scrubbed_entities"] == first.release_.manifest["scrubbed_entities"]
    # The map's checkpoint is keyed by its own settings: a new map_fit_limit redraws the map only.
    new_map = Clio(**params, map_fit_limit=50).fit(records)
    assert new_map.work_["reduce"] == {
        "reduced": "checkpoint", "map_sample": "computed", "map_fit": "this process", "positions": "computed"
    }
    assert [n.id for n in new_map.release_.tree.nodes] == [n.id for n in first.release_.tree.nodes]
    assert [(n.x, n.y) for n in new_map.release_.tree.nodes] != [(n.x, n.y) for n in first.release_.tree.nodes]


def _reduce_checkpoints(cache: Path) -> set[Path]:
    return set((cache / "checkpoints" / "reduce").glob("*/*.npy"))


def test_a_run_with_one_of_the_two_umaps_checkpointed_computes_only_the_other(tmp_path):
    """The state a kill between the two UMAPs leaves (they run side by side, either may finish first)."""
    from clio_lite import Clio
    from fixtures.generate import generate_conversations

    records = generate_conversations(120, seed=3)
    cache = tmp_path / "cache"
    params = dict(min_users=3, min_conversations=5, random_state=0, verbose=False, cache_dir=cache)
    whole = Clio(**params).fit(records)  # 120 points: the map is one UMAP of all of them
    files = {path.stem: path for path in _reduce_checkpoints(cache)}
    assert set(files) == {"reduced", "positions"}
    files["reduced"].unlink()  # killed before the clustering space was done, after the map
    again = Clio(**params).fit(records)
    assert again.work_["reduce"] == {"reduced": "computed", "positions": "checkpoint"}
    files["positions"].unlink()  # killed before the map was done, after the clustering space
    again = Clio(**params).fit(records)
    assert again.work_["reduce"] == {"reduced": "checkpoint", "positions": "computed", "map_fit": "this process"}
    assert again.release_.tree.digest() == whole.release_.tree.digest()

    before = _reduce_checkpoints(cache)
    sampled = Clio(**params, map_fit_limit=50).fit(records)  # the map: UMAP of 50 points, the others placed
    made = {path.stem: path for path in _reduce_checkpoints(cache) - before}
    assert set(made) == {"map_sample", "positions"} and np.load(made["map_sample"]).shape == (50, 2)
    placed = made["positions"].read_bytes()
    made["positions"].unlink()
    next(path for path in before if path.stem == "reduced").unlink()  # the map's UMAP done, nothing else
    again = Clio(**params, map_fit_limit=50).fit(records)
    assert again.work_["reduce"] == {"reduced": "computed", "map_sample": "checkpoint", "positions": "computed"}
    assert [(n.x, n.y) for n in again.release_.tree.nodes] == [(n.x, n.y) for n in sampled.release_.tree.nodes]
    assert made["positions"].read_bytes() == placed


KILL_SCRIPT = """
import json, sys
from clio_lite import Clio
from clio_lite.executor import LocalExecutor
from fixtures.generate import generate_conversations
from tests.faults import KilledAfterTheMap

clio = Clio(min_users=3, min_conversations=5, random_state=0, verbose=False, cache_dir=sys.argv[1],
            reducer=KilledAfterTheMap(), executor=LocalExecutor(processes=2))
clio.fit(generate_conversations(120, seed=3))
clio.release_.save(sys.argv[2])
json.dump(clio.work_, open(sys.argv[3], "w"))
"""


def test_a_run_killed_while_the_clustering_space_is_fitted_keeps_the_map_its_worker_process_made(tmp_path):
    from clio_lite import Clio
    from clio_lite.executor import LocalExecutor
    from fixtures.generate import generate_conversations
    from tests.faults import KilledAfterTheMap

    cache, marker = tmp_path / "cache", tmp_path / "killed-once"
    env = {**os.environ, "CLIO_TEST_KILL_MARKER": str(marker), "CLIO_TEST_CACHE": str(cache),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-c", KILL_SCRIPT, str(cache), str(tmp_path / "release"), str(tmp_path / "work.json")]
    killed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=600, check=False)
    assert killed.returncode == -signal.SIGKILL and marker.exists(), killed.stderr.decode()[-2000:]
    assert [path.stem for path in _reduce_checkpoints(cache)] == ["positions"]  # the map, from the worker process

    resumed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    work = json.loads((tmp_path / "work.json").read_text())
    assert work["reduce"] == {"reduced": "computed", "positions": "checkpoint"}
    assert work["scrub"]["computed"] == work["embed"]["computed"] == 0

    uninterrupted = Clio(min_users=3, min_conversations=5, random_state=0, verbose=False, cache_dir=tmp_path / "other",
                         reducer=KilledAfterTheMap(), executor=LocalExecutor(processes=1))
    saved = uninterrupted.fit(generate_conversations(120, seed=3)).release_.save(tmp_path / "uninterrupted")
    assert uninterrupted.work_["reduce"]["map_fit"] == "this process"
    for name in ("tree.json", "nodes.parquet", "manifest.json"):
        assert (tmp_path / "release" / name).read_bytes() == (saved / name).read_bytes(), name
