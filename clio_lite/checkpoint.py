"""Stage checkpoints: what an expensive stage computed, kept on disk so that a rerun (or a run restarted after a
crash or a kill) recomputes nothing already done.

Two kinds of store, neither using pickle:

- :class:`ResultCache`, a SQLite table of per-text results (scrubbed text and its entity counts, embeddings) keyed by
  ``sha256(stage, stage fingerprint, text)``. A stage writes one transaction per chunk, so a run killed mid-stage
  keeps every chunk it finished; SQLite's journal makes each chunk all-or-nothing.
- :class:`ArrayCheckpoints`, ``.npy`` files keyed by ``sha256(input array, stage fingerprint)``, written to a
  temporary file and renamed into place (atomic on POSIX), for whole-stage outputs such as the UMAP coordinates.
  A large output (the embeddings) is filled in place in a memory-mapped ``.npy`` (:meth:`ArrayCheckpoints.writer`)
  and read back memory-mapped, so it lives on disk, not in RAM.

A *fingerprint* names a stage's configuration: its class, its public parameters, the versions of the libraries that
compute it and, for a model, the hash of its weights. Change any of these and the old entries are simply not found.

The cache holds scrubbed conversation text and vectors computed from it: keep it where the conversations themselves
may live (see ``docs/scaling.md``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .sqlite_cache import SQLiteCache

#: Libraries whose version changes what a stage computes; they are part of every fingerprint.
_STAGE_PACKAGES = (
    "presidio-analyzer", "presidio-anonymizer", "spacy", "sentence-transformers", "torch", "onnx", "onnxruntime",
    "umap-learn",
)


#: Public attributes that do not change what a stage computes: where things are kept, progress output, and thread
#: counts (the embedders' floats do not depend on them: tested in ``tests/test_embed_onnx.py``).
_NOT_CONFIG = ("verbose", "cache_dir", "models_dir", "threads")


def describe(value: Any) -> Any:
    """A JSON-safe description of ``value``: plain values as they are, an object as its class and public params.

    Cached properties and fitted attributes (names starting or ending with ``_``) are left out: they are state,
    not configuration.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.integer | np.floating):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, list | tuple):
        return [describe(item) for item in value]
    if isinstance(value, dict):
        return {str(key): describe(item) for key, item in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if not hasattr(value, "__dict__"):
        return type(value).__name__
    params = {
        key: describe(item)
        for key, item in sorted(vars(value).items())
        if not key.startswith("_") and not key.endswith("_") and key not in _NOT_CONFIG
    }
    return {"class": f"{type(value).__module__}.{type(value).__qualname__}", "params": params}


def package_versions(packages: Sequence[str]) -> dict[str, str]:
    """Each package's installed version, or ``"not installed"``."""
    versions = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def fingerprint(stage: Any, **extra: Any) -> str:
    """sha256 of a stage's configuration, library versions and model fingerprint (its ``fingerprint`` attribute,
    if it has one: the embedder's hash of its weights); ``extra`` adds settings that live outside the object."""
    model = getattr(stage, "fingerprint", None)
    # An embedder's model_id names the backend that computes its vectors (which a fallback may change).
    model_id = getattr(stage, "model_id", None)
    spacy_model = None
    if hasattr(stage, "model_name") and hasattr(stage, "spacy_model"):
        # A spaCy model is named by its package; its version says which weights the name stands for.
        try:
            spacy_model = f"{stage.model_name}=={metadata.version(stage.model_name.replace('_', '-'))}"
        except (metadata.PackageNotFoundError, ModuleNotFoundError, ValueError):
            spacy_model = None
    payload = {
        "stage": describe(stage),
        "model": model if isinstance(model, str) else None,
        "model_id": model_id if isinstance(model_id, str) else None,
        "spacy_model": spacy_model,
        "versions": package_versions(_STAGE_PACKAGES),
        "extra": describe(extra),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def hash_array(array: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


class ResultCache:
    """Per-text results of one stage in a SQLite file, keyed by (stage fingerprint, text).

    Parameters
    ----------
    path : str or Path
        The SQLite file; created with its folder if missing.
    stage : str
        Which stage's results the table holds (``"scrub"``, ``"embed"``).
    stage_fingerprint : str
        :func:`fingerprint` of the stage object: results of another configuration are never returned.
    """

    def __init__(self, path: str | os.PathLike, stage: str, stage_fingerprint: str):
        self.path = Path(path)
        self.stage = stage
        self.stage_fingerprint = stage_fingerprint
        # A corrupt file is rebuilt and an unwritable one turns caching off, with a warning: a cache never stops a
        # run (see sqlite_cache.py).
        self._store = SQLiteCache(
            self.path,
            [f"CREATE TABLE IF NOT EXISTS {self._table} (key BLOB PRIMARY KEY, value BLOB NOT NULL)"],
            what=f"{stage} cache",
        )

    @property
    def _table(self) -> str:
        if not self.stage.isidentifier():
            raise ValueError(f"stage name {self.stage!r} must be an identifier")
        return f"results_{self.stage}"

    def key(self, text: str) -> bytes:
        return hashlib.sha256(f"{self.stage}\x00{self.stage_fingerprint}\x00{text}".encode()).digest()

    def get_many(self, texts: Sequence[str]) -> dict[str, bytes]:
        """The stored results of those ``texts`` that have one, by text."""
        by_key = {self.key(text): text for text in texts}
        keys = list(by_key)

        def query(db: sqlite3.Connection) -> dict[str, bytes]:
            found: dict[str, bytes] = {}
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                rows = db.execute(
                    f"SELECT key, value FROM {self._table} WHERE key IN ({','.join('?' * len(chunk))})", chunk
                )
                found.update((by_key[key], value) for key, value in rows)
            return found

        return self._store.read(query, {})

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Store ``(text, result)`` pairs in one transaction: all of them are kept, or none."""
        rows = [(self.key(text), value) for text, value in items]
        self._store.write(lambda db: db.executemany(f"INSERT OR REPLACE INTO {self._table} VALUES (?, ?)", rows))

    def __len__(self) -> int:
        return self._store.read(lambda db: db.execute(f"SELECT COUNT(*) FROM {self._table}").fetchone()[0], 0)

    def close(self) -> None:
        self._store.close()


def atomic_write_bytes(path: str | os.PathLike, write: Any) -> Path:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it to ``path``.

    A reader sees the old file or the whole new one, never a part: a kill mid-write leaves only a stray temporary
    file, which the next write replaces.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


class ArrayCheckpoints:
    """Whole-stage outputs as ``.npy`` files under ``root/<stage>/<key>/<name>.npy``, written atomically.

    Examples
    --------
    >>> import tempfile
    >>> store = ArrayCheckpoints(tempfile.mkdtemp())
    >>> key = store.key(hash_array(np.zeros(3)), "config")
    >>> store.load("reduce", key, "reduced") is None
    True
    >>> _ = store.save("reduce", key, "reduced", np.ones(2, dtype=np.float32))
    >>> store.load("reduce", key, "reduced").tolist()
    [1.0, 1.0]
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @staticmethod
    def key(*parts: str) -> str:
        return hashlib.sha256("\x00".join(parts).encode()).hexdigest()

    def path(self, stage: str, key: str, name: str) -> Path:
        return self.root / stage / key / f"{name}.npy"

    def save(self, stage: str, key: str, name: str, array: np.ndarray) -> Path:
        array = np.ascontiguousarray(array)
        return atomic_write_bytes(self.path(stage, key, name), lambda handle: np.save(handle, array))

    def writer(self, stage: str, key: str, name: str) -> MemmapWriter:
        """A :class:`MemmapWriter` for ``name``: fill the array it allocates, then commit it into place."""
        return MemmapWriter(self.path(stage, key, name))

    def load(self, stage: str, key: str, name: str, mmap: bool = False) -> np.ndarray | None:
        """The saved array, or ``None`` if there is none (or it cannot be read: then it is recomputed)."""
        path = self.path(stage, key, name)
        if not path.is_file():
            return None
        try:
            return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError):
            return None


class MemmapWriter:
    """An array filled in place in a memory-mapped ``.npy`` file, then renamed into place and opened read-only.

    The array never has to fit in RAM: the operating system pages it to and from the file. Until :meth:`commit`
    it lives under a temporary name, so a reader finds the old file or the whole new one, never a part.

    Examples
    --------
    >>> import tempfile
    >>> writer = ArrayCheckpoints(tempfile.mkdtemp()).writer("embed", "key", "embeddings")
    >>> array = writer.allocate((2, 3), np.float32)
    >>> array[:] = 1.0
    >>> done = writer.commit()
    >>> type(done).__name__, done.flags.writeable, done.sum().item()
    ('memmap', False, 6.0)
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._temporary: Path | None = None
        self._array: np.memmap | None = None

    def allocate(self, shape: tuple[int, ...], dtype: Any) -> np.memmap:
        """A writable array of ``shape`` and ``dtype`` backed by a temporary file beside the target."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        os.close(descriptor)
        self._temporary = Path(temporary)
        self._array = np.lib.format.open_memmap(temporary, mode="w+", dtype=dtype, shape=shape)
        return self._array

    def commit(self) -> np.memmap:
        """Flush the array to disk, rename it into place and return it opened read-only (``mmap_mode="r"``)."""
        if self._array is None or self._temporary is None:
            raise RuntimeError("allocate() the array before committing it")
        self._array.flush()
        with open(self._temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        del self._array  # unmapped before the rename
        self._array = None
        os.replace(self._temporary, self.path)
        self._temporary = None
        return np.load(self.path, mmap_mode="r", allow_pickle=False)

    def abort(self) -> None:
        """Drop the temporary file (after a failure); the target is left as it was."""
        self._array = None
        if self._temporary is not None:
            self._temporary.unlink(missing_ok=True)
            self._temporary = None
