"""Coverage-guided fuzzing (atheris / libFuzzer) of the JSONL, JSON, gzip and Parquet readers and of Release.load.

Not part of ``make test`` (the hypothesis tests in ``tests/test_fuzz.py`` are); run it by hand for as long as you
like, e.g. a bounded run of 20,000 inputs per target:

    pip install atheris==3.0.0
    PYTHONPATH=. python fuzz/fuzz_readers.py jsonl -runs=20000
    PYTHONPATH=. python fuzz/fuzz_readers.py release -runs=20000

Any exception other than the documented ones (``ValueError`` for a file that cannot be read as a whole,
``FileNotFoundError``) is a crash, and libFuzzer saves the input that caused it.
"""

from __future__ import annotations

import gzip
import json
import logging
import sys
import tempfile
from pathlib import Path

import atheris
import numpy  # noqa: F401  (imported first: only clio_lite's own modules are instrumented)
import pandas  # noqa: F401
import pyarrow.parquet  # noqa: F401

with atheris.instrument_imports(include=["clio_lite"]):
    from clio_lite.io import load_conversations
    from clio_lite.release import RELEASE_FILES, Release
    from clio_lite.schema import REJECTION_CODES

logging.disable(logging.CRITICAL)
WORK = Path(tempfile.mkdtemp(prefix="clio-fuzz-"))
SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".parquet")


def fuzz_reader(data: bytes) -> None:
    """One file of any bytes, as JSONL, gzipped JSONL, a JSON array or Parquet (the first byte picks which)."""
    if not data:
        return
    suffix = SUFFIXES[data[0] % len(SUFFIXES)]
    body = data[1:]
    path = WORK / f"input{suffix}"
    path.write_bytes(gzip.compress(body) if suffix == ".jsonl.gz" and data[0] & 0x80 else body)
    try:
        convs = load_conversations(path, max_message_chars=200, max_conversation_chars=1000)
    except ValueError:
        return
    assert convs.n_read == len(convs) + len(convs.rejected)
    for rejection in convs.rejected:
        assert rejection.code in REJECTION_CODES and rejection.code != "internal", rejection


def _seed_release() -> dict[str, bytes]:
    from clio_lite.release import ClusterNode, ClusterTree

    nodes = [ClusterNode("0", None, 1, "A", "About a.", ("a",), 10, 5, 1.0, 0.0, 0.0),
             ClusterNode("0.0", "0", 2, "B", "About b.", ("b",), 6, 3, 0.6, 1.0, 1.0)]
    target = Release(ClusterTree(nodes), {"counts": {"read": 10}}).save(WORK / "seed")
    return {name: (target / name).read_bytes() for name in RELEASE_FILES}


SEED = None


def fuzz_release(data: bytes) -> None:
    """A release directory whose tree.json (or manifest.json, by the first byte) is replaced by the input."""
    global SEED
    SEED = SEED or _seed_release()
    if not data:
        return
    target = WORK / "release"
    target.mkdir(exist_ok=True)
    for name, content in SEED.items():
        (target / name).write_bytes(content)
    (target / ("tree.json" if data[0] % 2 else "manifest.json")).write_bytes(data[1:])
    try:
        release = Release.load(target)
    except ValueError:
        return
    json.dumps(release.tree.to_dict())  # what loads can be used


if __name__ == "__main__":
    target = {"jsonl": fuzz_reader, "release": fuzz_release}[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
