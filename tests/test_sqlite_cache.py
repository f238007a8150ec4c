"""The guarded SQLite cache (``clio_lite.sqlite_cache``), through the embedding cache that uses it: a corrupt file is
rebuilt, a full, read-only or forbidden one turns caching off with a warning naming it; nothing ever raises."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from clio_lite.embed import EmbeddingCache, SentenceTransformerEmbedder
from clio_lite.sqlite_cache import truncated
from tests.faults import needs_tmpfs, needs_unprivileged_user, run_python, shared_tempdir

KEYS = [EmbeddingCache.key("m", f"text {i}") for i in range(2000)]
VECTORS = np.random.default_rng(0).standard_normal((2000, 384)).astype(np.float32)


def filled_cache(path: Path) -> Path:
    cache = EmbeddingCache(path)
    cache.put_many(list(zip(KEYS, VECTORS, strict=True)))
    assert len(cache) == 2000
    cache.close()
    return path


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_truncated_cache_file_is_detected_rebuilt_and_used_with_a_warning(tmp_path, caplog):
    path = filled_cache(tmp_path / "embeddings.sqlite")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "truncated" in truncated(path)
    with caplog.at_level(logging.WARNING):
        cache = EmbeddingCache(path)
    [message] = warnings_of(caplog)
    assert f"the embedding cache at {path} is corrupt" in message and "truncated" in message
    assert "rebuilt empty" in message
    assert len(cache) == 0 and cache.get_many(KEYS[:3]) == {}
    cache.put_many([(KEYS[0], VECTORS[0])])
    np.testing.assert_array_equal(cache.get_many(KEYS[:1])[KEYS[0]], VECTORS[0])


def test_a_file_that_is_not_a_database_is_rebuilt(tmp_path, caplog):
    path = tmp_path / "embeddings.sqlite"
    path.write_bytes(b"this was never a database" * 100)
    with caplog.at_level(logging.WARNING):
        cache = EmbeddingCache(path)
    assert "not a SQLite database" in warnings_of(caplog)[0]
    cache.put_many([(KEYS[0], VECTORS[0])])
    assert len(cache) == 1


def test_corruption_found_while_reading_rebuilds_the_cache_instead_of_crashing(tmp_path, caplog):
    path = filled_cache(tmp_path / "embeddings.sqlite")
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page:] = b"\xa5" * (len(data) - page)  # the header page survives, every page after it is garbage
    path.write_bytes(bytes(data))
    assert truncated(path) is None  # not visible from the header: found when a query reads a page
    with caplog.at_level(logging.WARNING):
        cache = EmbeddingCache(path)
        found = cache.get_many(KEYS[:10])
    assert found == {}
    assert any("is corrupt" in m and "malformed" in m for m in warnings_of(caplog)), warnings_of(caplog)
    cache.put_many([(KEYS[0], VECTORS[0])])
    assert list(cache.get_many(KEYS[:2])) == [KEYS[0]]


def test_the_embedder_with_a_corrupt_cache_gives_the_same_vectors(tmp_path, caplog):
    texts = ["how do I sort a list in python", "best trails near the lake"]
    clean = SentenceTransformerEmbedder(cache_dir=tmp_path / "clean", verbose=False).embed(texts)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "embeddings.sqlite").write_bytes(b"\x00garbage" * 1000)
    with caplog.at_level(logging.WARNING):
        vectors = SentenceTransformerEmbedder(cache_dir=tmp_path / "broken", verbose=False).embed(texts)
    assert vectors.tobytes() == clean.tobytes()
    assert any("embedding cache" in m and "rebuilt" in m for m in warnings_of(caplog))


USE_CACHE = """
import json, logging, sys
import numpy as np
from clio_lite.embed import EmbeddingCache
messages = []
handler = logging.Handler()
handler.emit = lambda record: messages.append(record.getMessage())
logging.getLogger("clio_lite").addHandler(handler)
cache = EmbeddingCache(sys.argv[1])
keys = [EmbeddingCache.key("m", str(i)) for i in range(3000)]
cache.put_many([(key, np.ones(384, dtype=np.float32)) for key in keys])
print(json.dumps({"warnings": messages, "found": len(cache.get_many(keys[:10])), "enabled": cache._store.enabled}))
"""


def test_a_full_disk_turns_the_cache_off_with_a_warning_naming_it():
    needs_tmpfs()
    disk = shared_tempdir()
    try:
        path = disk / "cache" / "embeddings.sqlite"
        result = run_python(USE_CACHE, str(path), tmpfs=disk, tmpfs_size="256k")
        [message] = result["warnings"]
        assert f"could not use the embedding cache at {path}" in message
        assert "disk is full" in message and "caching is off for the rest of this run" in message
        assert result["found"] == 0 and result["enabled"] is False
    finally:
        import shutil

        shutil.rmtree(disk, ignore_errors=True)


@pytest.mark.parametrize("fault", ["read-only file system", "no permission"])
def test_an_unwritable_cache_folder_turns_the_cache_off_with_a_warning_naming_it(fault: str):
    import shutil

    (needs_tmpfs if fault == "read-only file system" else needs_unprivileged_user)()
    disk = shared_tempdir()
    try:
        if fault == "no permission":
            (disk / "locked").mkdir(mode=0o555)
            (disk / "locked").chmod(0o555)
            path = disk / "locked" / "embeddings.sqlite"
            result = run_python(USE_CACHE, str(path), unprivileged=True)
        else:
            path = disk / "embeddings.sqlite"
            result = run_python(USE_CACHE, str(path), tmpfs=disk, tmpfs_size="1m", setup="pass", read_only=True)
        [message] = result["warnings"]
        assert f"could not use the embedding cache at {path}" in message and "while opening" in message
        assert result["found"] == 0 and result["enabled"] is False
    finally:
        shutil.rmtree(disk, ignore_errors=True)
