"""Readers: turn a file, a DataFrame or a list of dicts into :class:`~clio_lite.schema.Conversations`.

Every record a source holds ends up either accepted or rejected, never silently dropped: a bad record (invalid
UTF-8, broken JSON, a missing field, ...) becomes a :class:`~clio_lite.schema.Rejection` and reading goes on.
Only problems with the source as a whole (a missing file, an unknown format, no records at all, an undecodable
``.json`` array or gzip stream) raise.

Positions: ``Rejection.index`` is the 0-based position of the record in the source. For JSONL that is its
position among the non-blank lines (blank lines are not records), and the reason ends with the 1-based line
number, e.g. ``"... (line 12)"``, so the line can be found with an editor.

Release writers live elsewhere; this module only reads.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import os
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from clio_lite.schema import (
    DEFAULT_MAX_MESSAGE_CHARS,
    Conversation,
    Conversations,
    RecordError,
    Rejection,
    parse_record,
    record_id,
)

logger = logging.getLogger(__name__)

#: Formats ``load_conversations`` reads, for its ``format`` argument.
SUPPORTED_FORMATS = ("jsonl", "json", "parquet")
#: File extensions and the format each means; a further ``.gz`` is allowed after the JSON ones.
EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet", ".pq": "parquet"}
_FORMAT_ALIASES = {"ndjson": "jsonl", "jsonl.gz": "jsonl", "json.gz": "json", "pq": "parquet"}
_SUPPORTED_TEXT = (
    "supported: .jsonl, .jsonl.gz, .ndjson, .json (a JSON array), .json.gz, .parquet; "
    f"or pass format= one of {', '.join(repr(f) for f in SUPPORTED_FORMATS)}"
)
_BOM = b"\xef\xbb\xbf"
_N_REASONS_LOGGED = 3


class _Item(NamedTuple):
    """One record as a reader saw it: the raw record, or the error that kept it from being read."""

    record: Any = None
    error: RecordError | None = None
    where: str | None = None  # e.g. "line 12", appended to validation reasons


# ----------------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------------


def load_conversations(
    source: str | os.PathLike[str] | pd.DataFrame | Iterable[Mapping[str, Any]] | Conversations,
    *,
    format: str | None = None,
    max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS,
) -> Conversations:
    """Read conversations from a file, a DataFrame or a list of dicts, validating every record.

    Each record is validated by :func:`clio_lite.schema.parse_record`; records that fail become
    :class:`~clio_lite.schema.Rejection` entries in ``result.rejected`` (with the reason, never the content),
    so that ``result.n_read`` is the number of records in the source. Of several records with the same id the
    first valid one is accepted and the later ones rejected. A warning summarising the rejections is logged.

    Parameters
    ----------
    source
        A path (``str`` or ``Path``) to a ``.jsonl``, ``.jsonl.gz``, ``.ndjson``, ``.json`` (a JSON array of
        records), ``.json.gz`` or ``.parquet`` file; a pandas ``DataFrame`` with one record per row; an
        iterable of dicts; or a ``Conversations``, which is returned as is.
    format
        ``"jsonl"``, ``"json"`` or ``"parquet"``, to read a file whose extension does not say. A trailing
        ``.gz`` on the file name still means gzip.
    max_message_chars
        The longest message accepted, in characters; longer ones reject their record.

    Returns
    -------
    Conversations
        The accepted conversations, with ``rejected`` and ``source`` (the path as given, ``"<DataFrame>"`` or
        ``"<list>"``).

    Raises
    ------
    FileNotFoundError
        If the path does not exist.
    ValueError
        If the source holds no records, the format is unknown, or the file as a whole cannot be decoded
        (a ``.json`` file that is not a JSON array, a corrupt gzip stream or Parquet file).
    TypeError
        If ``source`` is none of the accepted kinds (e.g. a single dict rather than a list of them).

    Examples
    --------
    >>> convs = load_conversations([
    ...     {"id": 1, "user_id": "u1", "messages": [{"role": "user", "content": "hi"}]},
    ...     {"id": 2, "messages": [{"role": "user", "content": "hello"}]},
    ... ])
    >>> len(convs), convs.n_read, convs.rejected[0].field
    (1, 2, 'user_id')
    """
    if isinstance(max_message_chars, bool) or not isinstance(max_message_chars, int) or max_message_chars < 1:
        raise ValueError(f"max_message_chars must be a positive integer, got {max_message_chars!r}")
    if isinstance(source, Conversations):
        return source
    if isinstance(source, pd.DataFrame):
        return _collect(_iter_dataframe(source), "<DataFrame>", max_message_chars)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        items = _iter_path(path, format)
        return _collect(items, str(source), max_message_chars)
    if isinstance(source, bytes | bytearray):
        raise TypeError("source is bytes; write them to a .jsonl file or pass a path, a DataFrame or a list")
    if isinstance(source, Mapping):
        raise TypeError(
            "source is a single record; pass a list of records, e.g. load_conversations([record])"
        )
    if isinstance(source, Iterable):
        return _collect((_Item(_to_python(r)) for r in source), "<list>", max_message_chars)
    raise TypeError(
        f"cannot read conversations from a {type(source).__name__}; pass a path, a DataFrame, a list of "
        "dicts or a Conversations"
    )


# ----------------------------------------------------------------------------------------------------------
# Validation of the items a reader yields
# ----------------------------------------------------------------------------------------------------------


def _collect(items: Iterator[_Item], name: str, max_message_chars: int) -> Conversations:
    """Validate every item, drop duplicate ids, log a summary, and package the result."""
    accepted: list[Conversation] = []
    rejected: list[Rejection] = []
    first_seen: dict[str, int] = {}
    n_read = 0
    for index, item in enumerate(items):
        n_read += 1
        suffix = f" ({item.where})" if item.where else ""
        if item.error is not None:
            rejected.append(Rejection(index, item.error.reason, item.error.field, None))
            continue
        try:
            conv = parse_record(item.record, max_message_chars=max_message_chars)
        except RecordError as err:
            rejected.append(Rejection(index, err.reason + suffix, err.field, record_id(item.record)))
            continue
        except Exception as err:  # a record must never crash the reader; this would be a bug in parse_record
            logger.debug("unexpected error validating record %d of %s", index, name, exc_info=True)
            reason = f"could not be validated ({type(err).__name__}); please report this as a clio_lite bug"
            rejected.append(Rejection(index, reason + suffix, None, record_id(item.record)))
            continue
        if conv.id in first_seen:
            reason = f"duplicate id {conv.id!r} (first seen at record {first_seen[conv.id]})"
            rejected.append(Rejection(index, reason + suffix, "id", conv.id))
            continue
        first_seen[conv.id] = index
        accepted.append(conv)

    if n_read == 0:
        raise ValueError(f"{name} holds no records")
    if rejected:
        examples = "; ".join(
            f"record {r.index}" + (f" ({r.field})" if r.field else "") + f": {r.reason}"
            for r in rejected[:_N_REASONS_LOGGED]
        )
        more = f"; and {len(rejected) - _N_REASONS_LOGGED} more" if len(rejected) > _N_REASONS_LOGGED else ""
        logger.warning(
            "%s: rejected %d of %d records (see .rejected); first: %s%s",
            name,
            len(rejected),
            n_read,
            examples,
            more,
        )
    logger.info("%s: accepted %d of %d records", name, len(accepted), n_read)
    return Conversations(accepted, rejected, source=name)


# ----------------------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------------------


def _detect_format(path: Path, format: str | None) -> tuple[str, bool]:
    """``(format, gzipped)`` for ``path``, from ``format`` if given, else from the extension."""
    name = path.name.lower()
    gzipped = name.endswith(".gz")
    if format is not None:
        fmt = _FORMAT_ALIASES.get(format.lower().lstrip("."), format.lower().lstrip("."))
        if fmt not in SUPPORTED_FORMATS:
            raise ValueError(f"unknown format {format!r} for {path}; {_SUPPORTED_TEXT}")
        gzipped = gzipped or format.lower().endswith(".gz")
    else:
        stem = name[: -len(".gz")] if gzipped else name
        fmt = next((f for ext, f in EXTENSIONS.items() if stem.endswith(ext)), "")
        if not fmt:
            raise ValueError(f"cannot tell the format of {path} from its extension; {_SUPPORTED_TEXT}")
    if fmt == "parquet" and gzipped:
        raise ValueError(f"{path}: gzipped Parquet is not supported; Parquet compresses internally")
    return fmt, gzipped


def _iter_path(path: Path, format: str | None) -> Iterator[_Item]:
    """Check the path and format now (so errors raise at the call), then return the record iterator."""
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; pass one .jsonl, .json or .parquet file")
    fmt, gzipped = _detect_format(path, format)
    if fmt == "jsonl":
        return _iter_jsonl(path, gzipped)
    if fmt == "json":
        return _iter_json_array(path, gzipped)
    return _iter_parquet(path)


def _iter_jsonl(path: Path, gzipped: bool) -> Iterator[_Item]:
    """One item per non-blank line; lines are read as bytes and decoded one by one."""
    opener = gzip.open if gzipped else open
    try:
        with opener(path, "rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                if lineno == 1 and raw.startswith(_BOM):
                    raw = raw[len(_BOM) :]
                if not raw.strip():
                    continue
                yield _parse_jsonl_line(raw.rstrip(b"\r\n"), lineno)
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise ValueError(f"{path}: cannot decompress the gzip stream ({err})") from err


def _parse_jsonl_line(raw: bytes, lineno: int) -> _Item:
    where = f"line {lineno}"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        reason = f"{where} is not valid UTF-8 ({err.reason} at byte {err.start}); re-encode the file as UTF-8"
        return _Item(error=RecordError(None, reason), where=where)
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        reason = f"{where} is not valid JSON: {err.msg} (column {err.colno})"
        return _Item(error=RecordError(None, reason), where=where)
    except RecursionError:
        return _Item(error=RecordError(None, f"{where} is not readable JSON: nested too deeply"), where=where)
    if not isinstance(record, dict):
        kind = "array" if isinstance(record, list) else "null" if record is None else type(record).__name__
        reason = f"{where} is a JSON {kind}, expected a JSON object (one record per line)"
        return _Item(error=RecordError(None, reason), where=where)
    return _Item(record, where=where)


def _iter_json_array(path: Path, gzipped: bool) -> Iterator[_Item]:
    """One item per element of the file's top-level JSON array."""
    try:
        data = gzip.decompress(path.read_bytes()) if gzipped else path.read_bytes()
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise ValueError(f"{path}: cannot decompress the gzip stream ({err})") from err
    data = data.removeprefix(_BOM)
    if not data.strip():
        raise ValueError(f"{path} holds no records (the file is empty)")
    try:
        records = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not valid UTF-8 ({err.reason} at byte {err.start})") from err
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path} is not valid JSON: {err.msg} (line {err.lineno}, column {err.colno}); "
            "a .json file must hold one JSON array of records; use .jsonl for one record per line"
        ) from err
    except RecursionError as err:
        raise ValueError(f"{path} is not readable JSON: nested too deeply") from err
    if not isinstance(records, list):
        raise ValueError(
            f"{path} holds a JSON {type(records).__name__}, expected a JSON array of records; "
            "use .jsonl for one record per line"
        )
    return (_Item(r) for r in records)


def _iter_parquet(path: Path) -> Iterator[_Item]:
    try:
        df = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise ValueError(f"{path} is not a readable Parquet file ({type(err).__name__}: {err})") from err
    return _iter_dataframe(df)


# ----------------------------------------------------------------------------------------------------------
# DataFrames and in-memory values
# ----------------------------------------------------------------------------------------------------------


def _iter_dataframe(df: pd.DataFrame) -> Iterator[_Item]:
    """One item per row, as a dict without the row's missing (None / NaN) cells."""
    columns = list(df.columns)
    for row in df.itertuples(index=False, name=None):
        yield _Item(
            {col: _to_python(value) for col, value in zip(columns, row, strict=True) if not _missing(value)}
        )


def _missing(value: Any) -> bool:
    """True for an empty cell: None, NaN, NaT or pd.NA (never for lists or arrays)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    return False


def _to_python(value: Any) -> Any:
    """Plain Python containers and scalars for numpy arrays / scalars and pyarrow values, recursively."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, np.ndarray | list | tuple):
        return [_to_python(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _to_python(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    as_py = getattr(value, "as_py", None)  # pyarrow scalars and list values
    if callable(as_py):
        try:
            return _to_python(as_py())
        except Exception:  # not a pyarrow value after all
            return value
    return value
