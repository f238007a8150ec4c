"""Shared test set-up: offline models, a persistent numba cache, and one fitted pipeline for the end-to-end tests."""

from __future__ import annotations

import os
from pathlib import Path

# Before any library import: no model hub, no public-suffix-list fetch, numba compiled once per checkout.
ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))

SHARED_DATA = ROOT.parent / "shared" / "data"

import pytest  # noqa: E402

# A tree needs clusters of at least min_conversations; the fixture corpus is sized so several levels exist.
E2E_PARAMS = {"min_users": 10, "min_conversations": 20, "random_state": 0, "verbose": False}
E2E_SIZE = 1000


@pytest.fixture(scope="session")
def corpus() -> list[dict]:
    """Synthetic conversations with PII, gold labels and heavy-tailed users, plus six malformed records."""
    from fixtures.generate import generate_conversations

    records = generate_conversations(E2E_SIZE, seed=1)
    bad = [
        {"id": "bad-no-user", "messages": [{"role": "user", "content": "hello there"}]},
        {"id": "bad-empty", "user_id": "u-x", "messages": []},
        {**records[0], "messages": [{"role": "user", "content": "a different conversation, same id"}]},
        {"id": "bad-role", "user_id": "u-x", "messages": [{"role": "narrator", "content": "once upon a time"}]},
        {"id": "bad-content", "user_id": "u-x", "messages": [{"role": "user", "content": 42}]},
        {"id": "bad-huge", "user_id": "u-x", "messages": [{"role": "user", "content": "x" * 1_048_576}]},
    ]
    return records + bad


@pytest.fixture(scope="session")
def static_models_dir() -> Path:
    """Where the fast mode's static model is distilled: once per checkout (minutes on a CPU), like numba's cache."""
    from clio_lite.embed import distill_static_model

    models = ROOT / ".cache" / "models"
    distill_static_model(models_dir=models)
    return models


@pytest.fixture(scope="session")
def static_embedder(static_models_dir):
    from clio_lite.embed import StaticEmbedder

    return StaticEmbedder(models_dir=static_models_dir)


@pytest.fixture(scope="session")
def onnx_models_dir() -> Path:
    """Where MiniLM's ONNX forms (fp32 and int8) are exported: once per checkout (seconds), like the static model."""
    from clio_lite.embed import SentenceTransformerEmbedder

    models = ROOT / ".cache" / "onnx-models"  # apart from the static model's folder, which tests copy whole
    for backend in ("onnx", "onnx-int8"):
        SentenceTransformerEmbedder(cache_dir=None, verbose=False, backend=backend, models_dir=models).embed(["x"])
    return models


@pytest.fixture(scope="session")
def embedding_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("embedding-cache")


@pytest.fixture(scope="session")
def fitted(corpus, embedding_cache):
    """One Clio fitted on the corpus with the real components."""
    from clio_lite import Clio

    return Clio(cache_dir=embedding_cache, **E2E_PARAMS).fit(corpus)


@pytest.fixture(scope="session")
def saved_release(fitted, tmp_path_factory) -> Path:
    return fitted.release_.save(tmp_path_factory.mktemp("release") / "release")
