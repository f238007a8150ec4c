"""Stage checkpoints: per-text results in SQLite, whole-stage arrays as atomically written .npy, stage fingerprints."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clio_lite.checkpoint import (
    ArrayCheckpoints,
    ResultCache,
    atomic_write_bytes,
    describe,
    fingerprint,
    hash_array,
)
from clio_lite.reduce import UMAPReducer
from clio_lite.scrub import PresidioScrubber


@settings(max_examples=25, deadline=None)
@given(items=st.dictionaries(st.text(max_size=40), st.binary(max_size=64), max_size=20))
def test_results_come_back_for_exactly_the_texts_stored(tmp_path_factory, items):
    cache = ResultCache(tmp_path_factory.mktemp("cache") / "results.sqlite", "scrub", "f" * 64)
    cache.put_many(items.items())
    assert cache.get_many(list(items) + ["\x00never stored"]) == items
    assert len(cache) == len(items)


def test_results_of_another_stage_or_configuration_are_not_returned(tmp_path):
    path = tmp_path / "results.sqlite"
    ResultCache(path, "scrub", "config-a").put_many([("hello", b"A")])
    assert ResultCache(path, "scrub", "config-a").get_many(["hello"]) == {"hello": b"A"}  # survives reopening
    assert ResultCache(path, "scrub", "config-b").get_many(["hello"]) == {}
    assert ResultCache(path, "embed", "config-a").get_many(["hello"]) == {}


def test_a_failed_chunk_commits_nothing(tmp_path):
    cache = ResultCache(tmp_path / "results.sqlite", "scrub", "x")

    def items():
        yield "first", b"1"
        raise RuntimeError("killed mid-chunk")

    with pytest.raises(RuntimeError):
        cache.put_many(items())
    cache.put_many([("done", b"ok")])
    assert cache.get_many(["first", "done"]) == {"done": b"ok"}


def test_fingerprints_change_with_class_parameters_and_model_weights():
    base = fingerprint(PresidioScrubber())
    assert fingerprint(PresidioScrubber()) == base
    assert fingerprint(PresidioScrubber(score_threshold=0.5)) != base
    assert fingerprint(UMAPReducer(random_state=1)) != fingerprint(UMAPReducer(random_state=2))
    assert fingerprint(UMAPReducer(), fit_limit=10) != fingerprint(UMAPReducer(), fit_limit=None)

    class Model:
        def __init__(self, weights):
            self.fingerprint = weights

    assert fingerprint(Model("weights-a")) != fingerprint(Model("weights-b"))


def test_describe_leaves_out_loaded_state_and_where_the_cache_lives(tmp_path):
    scrubber = PresidioScrubber()
    before = describe(scrubber)
    scrubber.__dict__["_engines"] = object()  # as if the models were loaded
    scrubber.cache_dir = tmp_path
    assert describe(scrubber) == before


def test_hash_array_sees_values_shape_and_dtype():
    a = np.arange(6, dtype=np.float32)
    assert hash_array(a) == hash_array(a.copy())
    assert hash_array(a) != hash_array(a.reshape(2, 3))
    assert hash_array(a) != hash_array(a.astype(np.float64))
    b = a.copy()
    b[3] += 1e-6
    assert hash_array(a) != hash_array(b)


def test_arrays_round_trip_memory_mapped_and_missing_or_corrupt_ones_read_as_none(tmp_path):
    store = ArrayCheckpoints(tmp_path)
    key = store.key("input", "config")
    assert store.load("reduce", key, "reduced") is None
    array = np.random.default_rng(0).random((5, 3)).astype(np.float32)
    path = store.save("reduce", key, "reduced", array)
    loaded = store.load("reduce", key, "reduced", mmap=True)
    assert isinstance(loaded, np.memmap) and loaded.tobytes() == array.tobytes()
    path.write_bytes(b"not an array")
    assert store.load("reduce", key, "reduced") is None


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, lambda handle: handle.write(b"old"))

    def half_then_fail(handle):
        handle.write(b"new, half written")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_a_corrupt_results_file_is_rebuilt_and_the_run_goes_on(tmp_path, caplog):
    path = tmp_path / "results.sqlite"
    ResultCache(path, "scrub", "x").put_many([("hello", b"1")])
    path.write_bytes(b"this is not a database" * 10)
    cache = ResultCache(path, "scrub", "x")
    assert cache.get_many(["hello"]) == {}
    cache.put_many([("hello", b"2")])
    assert cache.get_many(["hello"]) == {"hello": b"2"}
    assert "corrupt" in caplog.text
