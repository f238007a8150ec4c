"""Readers: turn a file, a DataFrame or a list of dicts into :class:`~clio_lite.schema.Conversations`.

Every record a source holds ends up either accepted or rejected, never silently dropped: a bad record (invalid
UTF-8, broken JSON, a missing field, ...) becomes a :class:`~clio_lite.schema.Rejection` and reading goes on.
Only problems with the source as a whole (a missing file, an unknown format, no records at all, an undecodable
``.json`` array or gzip stream) raise.

Positions: ``Rejection.index`` is the 0-based position of the record in the source. For JSONL that is its
position among the non-blank lines (blank lines are not records), and the reason ends with the 1-based line
number, e.g. ``"... (line 12)"``, so the line can be found with an editor.

Damaged files are read as far as they go: a JSONL line longer than any acceptable conversation is skipped
without being held in memory; a gzip stream that is cut short or corrupt keeps the records before the damage,
and the damage itself becomes one rejection (code ``"truncated"`` or ``"corrupt"``), as does a half-written last
line. See ``docs/robustness.md`` for every case and its reason code.

Streaming: :func:`iter_conversations` reads the same sources in chunks of validated conversations, with the same
rejections, so that a file larger than memory can be read; :func:`load_conversations` is the same reader collecting
every chunk. JSONL is read in 64 KiB blocks and Parquet a row batch at a time, so reading holds one chunk, plus, for
duplicate-id detection, each id seen with a 32-byte digest of its record's content.

Release writers live elsewhere; this module reads, and writes only the rejections (:func:`write_rejections`).
"""

from __future__ import annotations

import gzip
import hashlib
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

from clio_lite.release_files import FileWriteError
from clio_lite.schema import (
    DEFAULT_MAX_CONVERSATION_CHARS,
    DEFAULT_MAX_MESSAGE_CHARS,
    MAX_NESTING,
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
# A UTF-16 byte-order mark followed by a UTF-16 "{": a whole file in UTF-16, as some Windows tools write JSONL.
_UTF16_STARTS = (b"\xff\xfe{\x00", b"\xfe\xff\x00{")
_N_REASONS_LOGGED = 3
#: Records per chunk that :func:`iter_conversations` yields by default.
DEFAULT_CHUNK_SIZE = 10_000
_PARQUET_BATCH_ROWS = 1024  # rows decoded at a time from a Parquet file
_GZIP_SLICE_BYTES = 1 << 12
_READ_BYTES = 1 << 16  # small reads keep a gzip bomb's expansion per step bounded (deflate expands at most ~1000x)
# A JSON-escaped character takes at most 12 bytes ("\ud83d\ude00" for one emoji), plus the record's own keys.
_BYTES_PER_CHAR = 12
_LINE_OVERHEAD_BYTES = 1 << 16
# strict=False accepts raw control characters (tabs, ...) inside JSON strings, as many exporters write them.
_decoder = json.JSONDecoder(strict=False)


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
    max_conversation_chars: int = DEFAULT_MAX_CONVERSATION_CHARS,
) -> Conversations:
    """Read conversations from a file, a DataFrame or a list of dicts, validating every record.

    Each record is validated by :func:`clio_lite.schema.parse_record`; records that fail become
    :class:`~clio_lite.schema.Rejection` entries in ``result.rejected`` (with the reason, never the content),
    so that ``result.n_read`` is the number of records in the source. Of several records with the same id the
    first valid one is accepted and the later ones rejected: as ``"duplicate"`` if they are the same
    conversation, as ``"conflict"`` if their content differs. A warning summarising the rejections is logged.

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
    max_conversation_chars
        The longest conversation accepted, in characters over all its messages. JSONL lines longer than such a
        conversation can be are rejected unread.

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
    limits = _limits(max_message_chars, max_conversation_chars)
    if isinstance(source, Conversations):
        return source
    items, name = _items(source, format, limits)
    return _collect(items, name, limits)


def iter_conversations(
    source: str | os.PathLike[str] | pd.DataFrame | Iterable[Mapping[str, Any]] | Conversations,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    format: str | None = None,
    max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS,
    max_conversation_chars: int = DEFAULT_MAX_CONVERSATION_CHARS,
) -> Iterator[Conversations]:
    """Read conversations in chunks: the streaming form of :func:`load_conversations`, for files larger than memory.

    Each chunk is a :class:`~clio_lite.schema.Conversations` covering the next ``chunk_size`` records of the source
    (its ``rejected`` holds that span's rejections, with their positions in the whole source). Put together, the
    chunks hold exactly the conversations and rejections :func:`load_conversations` returns for the same source,
    in the same order, duplicate ids included (a later duplicate is rejected in whatever chunk it falls). Reading
    holds one chunk at a time; per record read, it keeps only the id and a digest of the content.

    Parameters
    ----------
    source, format, max_message_chars, max_conversation_chars
        As for :func:`load_conversations`. A ``Conversations`` is yielded whole, as one chunk.
    chunk_size
        Records (accepted or rejected) per chunk.

    Returns
    -------
    iterator of Conversations
        File-level problems (a missing file, an unknown format) raise at the call; a source with no records raises
        ``ValueError`` when the iterator is exhausted, as :func:`load_conversations` does.

    Examples
    --------
    >>> records = [{"id": i, "user_id": "u1", "messages": [{"role": "user", "content": "hi"}]} for i in range(5)]
    >>> [len(chunk) for chunk in iter_conversations(records, chunk_size=2)]
    [2, 2, 1]
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    limits = _limits(max_message_chars, max_conversation_chars)
    if isinstance(source, Conversations):
        return iter([source])
    items, name = _items(source, format, limits)
    return _chunks(items, name, limits, chunk_size)


def _limits(max_message_chars: int, max_conversation_chars: int) -> dict[str, int]:
    limits = {"max_message_chars": max_message_chars, "max_conversation_chars": max_conversation_chars}
    for name, value in limits.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return limits


def _items(source: Any, format: str | None, limits: Mapping[str, int]) -> tuple[Iterator[_Item], str]:
    """The source's records as items and its name for messages; file-level problems raise here."""
    if isinstance(source, pd.DataFrame):
        return _iter_dataframe(source), "<DataFrame>"
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        max_line_bytes = _BYTES_PER_CHAR * limits["max_conversation_chars"] + _LINE_OVERHEAD_BYTES
        return _iter_path(path, format, max_line_bytes), str(source)
    if isinstance(source, bytes | bytearray):
        raise TypeError("source is bytes; write them to a .jsonl file or pass a path, a DataFrame or a list")
    if isinstance(source, Mapping):
        raise TypeError(
            "source is a single record; pass a list of records, e.g. load_conversations([record])"
        )
    if isinstance(source, Iterable):
        return (_plain_item(r) for r in source), "<list>"
    raise TypeError(
        f"cannot read conversations from a {type(source).__name__}; pass a path, a DataFrame, a list of "
        "dicts or a Conversations"
    )


# ----------------------------------------------------------------------------------------------------------
# Validation of the items a reader yields
# ----------------------------------------------------------------------------------------------------------


def _collect(items: Iterator[_Item], name: str, limits: Mapping[str, int]) -> Conversations:
    """Validate every item, reject duplicate ids, log a summary, and package the result: :func:`_chunks` in one
    chunk."""
    whole = list(_chunks(items, name, limits, chunk_size=None))
    return whole[0] if whole else Conversations([], [], source=name)


def _chunks(
    items: Iterator[_Item], name: str, limits: Mapping[str, int], chunk_size: int | None
) -> Iterator[Conversations]:
    """Validate every item, reject duplicate ids and log a summary at the end, yielding a ``Conversations`` every
    ``chunk_size`` records (``None``: one at the end)."""
    validator = _Validator(name, limits)
    accepted: list[Conversation] = []
    rejected: list[Rejection] = []
    for item in items:
        result = validator.validate(item)
        (accepted if isinstance(result, Conversation) else rejected).append(result)
        if len(accepted) + len(rejected) == chunk_size:
            yield Conversations(accepted, rejected, source=name)
            accepted, rejected = [], []
    if accepted or rejected:
        yield Conversations(accepted, rejected, source=name)
    validator.finish()


class _Validator:
    """Validates a source's items one at a time, in order; rejects later records with an id already accepted.

    Per accepted record it keeps the id, its position and a digest of the content (not the conversation), so that
    memory grows by about a hundred bytes per record, not by the records themselves.
    """

    def __init__(self, name: str, limits: Mapping[str, int]):
        self.name = name
        self.limits = limits
        self.n_read = 0
        self.n_accepted = 0
        self.n_rejected = 0
        self.first_rejections: list[Rejection] = []  # for the summary logged at the end
        self._first_seen: dict[str, tuple[int, bytes, Any]] = {}

    def validate(self, item: _Item) -> Conversation | Rejection:
        index = self.n_read
        self.n_read += 1
        result = self._validate(index, item)
        if isinstance(result, Rejection):
            self.n_rejected += 1
            if len(self.first_rejections) < _N_REASONS_LOGGED:
                self.first_rejections.append(result)
        else:
            self.n_accepted += 1
        return result

    def _validate(self, index: int, item: _Item) -> Conversation | Rejection:
        suffix = f" ({item.where})" if item.where else ""
        if item.error is not None:
            error = item.error
            return Rejection(index, error.reason, error.field, record_id(item.record), error.code)
        try:
            conv = parse_record(item.record, **self.limits)
        except RecordError as err:
            return Rejection(index, err.reason + suffix, err.field, record_id(item.record), err.code)
        except Exception as err:  # a record must never crash the reader; this would be a bug in parse_record
            logger.debug("unexpected error validating record %d of %s", index, self.name, exc_info=True)
            reason = f"could not be validated ({type(err).__name__}); please report this as a clio_lite bug"
            return Rejection(index, reason + suffix, None, record_id(item.record), "internal")
        content = _content_digest(conv)
        if conv.id in self._first_seen:
            first_index, *first_content = self._first_seen[conv.id]
            if _same_content(content, tuple(first_content)):
                detail, code = "the same conversation again, kept once", "duplicate"
            else:
                detail, code = "different content; the first is kept", "conflict"
            reason = f"duplicate id {conv.id!r} (first seen at record {first_index}): {detail}"
            return Rejection(index, reason + suffix, "id", conv.id, code)
        self._first_seen[conv.id] = (index, *content)
        return conv

    def finish(self) -> None:
        """Raise if the source held no record; log a summary of what was rejected."""
        if self.n_read == 0:
            raise ValueError(f"{self.name} holds no records")
        if self.n_rejected:
            examples = "; ".join(
                f"record {r.index}" + (f" ({r.field})" if r.field else "") + f": {r.reason}"
                for r in self.first_rejections
            )
            extra = self.n_rejected - len(self.first_rejections)
            more = f"; and {extra} more" if extra > 0 else ""
            logger.warning(
                "%s: rejected %d of %d records (see .rejected); first: %s%s",
                self.name,
                self.n_rejected,
                self.n_read,
                examples,
                more,
            )
        logger.info("%s: accepted %d of %d records", self.name, self.n_accepted, self.n_read)


def _content_digest(conv: Conversation) -> tuple[bytes, Any]:
    """sha256 of a conversation's user, messages and metadata (NaN equal to NaN, as a record read twice would be);
    metadata that JSON cannot hold (keys that do not sort, a cycle) is kept as it is, to be compared by value."""
    digest = hashlib.sha256(json.dumps([conv.user_id, [[m.role, m.content] for m in conv.messages]]).encode())
    try:
        digest.update(_canonical(conv.metadata).encode())
    except (TypeError, ValueError, RecursionError):
        return digest.digest(), conv.metadata
    return digest.digest(), None


def _same_content(a: tuple[bytes, Any], b: tuple[bytes, Any]) -> bool:
    """Whether two :func:`_content_digest` values are the same conversation (same user, messages and metadata)."""
    if a[0] != b[0] or (a[1] is None) != (b[1] is None):
        return False
    return a[1] is None or a[1] == b[1]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def write_rejections(rejections: Iterable[Rejection], path: str | os.PathLike[str]) -> Path:
    """Write one JSON object per rejected record to ``path`` (JSONL): index, id, code, field and reason.

    Never any content of the records: reasons name fields and limits, not values. Ids are written, so the file
    belongs with the conversations, not with a release. The file is written to a temporary name beside
    ``path`` and renamed, so a failed write never leaves half a file.

    Examples
    --------
    >>> convs = load_conversations([{"id": 1, "text": "no user"}])  # doctest: +SKIP
    >>> write_rejections(convs.rejected, "rejections.jsonl")  # doctest: +SKIP
    PosixPath('rejections.jsonl')
    """
    target = Path(path)
    lines = "".join(json.dumps(r.to_dict(), ensure_ascii=True) + "\n" for r in rejections)
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(staging, "w", encoding="utf-8") as fh:
            fh.write(lines)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(staging, target)
    except OSError as err:
        staging.unlink(missing_ok=True)
        message = f"cannot write the rejections to {target}: {err.strerror or err}"
        raise FileWriteError(err.errno, message, str(target)) from err
    return target


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


def _iter_path(path: Path, format: str | None, max_line_bytes: int) -> Iterator[_Item]:
    """Check the path and format now (so errors raise at the call), then return the record iterator."""
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; pass one .jsonl, .json or .parquet file")
    fmt, gzipped = _detect_format(path, format)
    if fmt == "jsonl":
        chunks = _byte_chunks(path, gzipped)
        first = next(chunks, b"")  # file-level problems (not gzip, UTF-16) raise here, at the call
        if first.startswith(_UTF16_STARTS):
            raise ValueError(f"{path} is UTF-16 encoded; re-encode it as UTF-8 (e.g. iconv -f utf-16 -t utf-8)")
        return _iter_jsonl(_prepend(first, chunks), max_line_bytes)
    if fmt == "json":
        return _iter_json_array(path, gzipped)
    return _iter_parquet(path)


class _StreamCut(Exception):
    """The compressed stream ended early or turned corrupt after some records were read."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _byte_chunks(path: Path, gzipped: bool) -> Iterator[bytes]:
    """The file's (decompressed) bytes in chunks; ``_StreamCut`` if a gzip stream breaks after its start."""
    with open(path, "rb") as fh:
        if not gzipped:
            yield from iter(lambda: fh.read(_READ_BYTES), b"")
            return
        decompressor: Any = zlib.decompressobj(wbits=31)
        produced = False
        # Small slices: zlib raises on corrupt data without returning what it decoded before, so a slice's worth
        # is all that a corrupt stream can take with it.
        while block := fh.read(_GZIP_SLICE_BYTES):
            while block:
                if decompressor is None:  # between members: another member, or the zero padding some tools add
                    if not block.strip(b"\x00"):
                        break
                    decompressor = zlib.decompressobj(wbits=31)
                try:
                    out = decompressor.decompress(block)
                except zlib.error as err:
                    if not produced:
                        raise ValueError(f"{path}: cannot decompress the gzip stream ({err})") from err
                    raise _StreamCut("corrupt", f"the gzip stream is corrupt from here on ({err})") from err
                if out:
                    produced = True
                    yield out
                if decompressor.eof:
                    block, decompressor = decompressor.unused_data, None
                else:
                    block = b""
        if decompressor is not None:
            if not produced:
                raise ValueError(f"{path}: cannot decompress the gzip stream (it ends before any data)")
            raise _StreamCut("truncated", "the gzip stream ends early: the file is truncated and what followed is lost")


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _iter_jsonl(chunks: Iterator[bytes], max_line_bytes: int) -> Iterator[_Item]:
    """One item per non-blank line. Lines over ``max_line_bytes`` are counted but never held in memory."""
    lineno = 0
    pending = bytearray()
    skipped = 0  # bytes of the current line already dropped because it is too long
    try:
        for chunk in chunks:
            start = 0
            while True:
                newline = chunk.find(b"\n", start)
                piece = chunk[start:] if newline < 0 else chunk[start:newline]
                if skipped or len(pending) + len(piece) > max_line_bytes:
                    skipped += len(pending) + len(piece)
                    pending.clear()
                else:
                    pending += piece
                if newline < 0:
                    break
                lineno += 1
                item = _line_item(pending, skipped, lineno, max_line_bytes, complete=True)
                if item is not None:
                    yield item
                pending.clear()
                skipped = 0
                start = newline + 1
    except _StreamCut as cut:
        where = f"line {lineno + 1}"
        yield _Item(error=RecordError(None, f"{where}: {cut.reason}", cut.code), where=where)
        return
    if pending or skipped:
        item = _line_item(pending, skipped, lineno + 1, max_line_bytes, complete=False)
        if item is not None:
            yield item


def _line_item(raw: bytearray, skipped: int, lineno: int, max_line_bytes: int, complete: bool) -> _Item | None:
    where = f"line {lineno}"
    if skipped:
        reason = (
            f"{where} is {skipped:,} bytes, longer than any conversation within max_conversation_chars can be "
            f"({max_line_bytes:,} bytes); it was skipped unread"
        )
        return _Item(error=RecordError(None, reason, "too_large"), where=where)
    line = bytes(raw)
    if lineno == 1 and line.startswith(_BOM):
        line = line[len(_BOM) :]
    line = line.rstrip(b"\r")
    if not line.strip():
        return None
    item = _parse_jsonl_line(line, where)
    if not complete and item.error is not None and item.error.code == "json":
        reason = (
            f"{where}, the last line, has no newline and is not valid JSON ({item.error.reason.split(': ', 1)[-1]}): "
            "the file looks cut short; was it still being written?"
        )
        return _Item(error=RecordError(None, reason, "truncated"), where=where)
    return item


def _parse_jsonl_line(raw: bytes, where: str) -> _Item:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        reason = (
            f"{where} is not valid UTF-8 ({err.reason} at byte {err.start}); re-encode the file as UTF-8 "
            "(a line in Latin-1 or Windows-1252: iconv -f cp1252 -t utf-8)"
        )
        return _Item(error=RecordError(None, reason, "encoding"), where=where)
    try:
        record = _decoder.decode(text)
    except json.JSONDecodeError as err:
        reason = f"{where} is not valid JSON: {err.msg} (column {err.colno})"
        return _Item(error=RecordError(None, reason, "json"), where=where)
    except RecursionError:
        reason = f"{where} is not readable JSON: nested too deeply"
        return _Item(error=RecordError(None, reason, "too_deep"), where=where)
    except ValueError:  # a number of more than 4300 digits: Python refuses to convert it
        reason = f"{where} holds a number too long to read (over 4,300 digits)"
        return _Item(error=RecordError(None, reason, "too_large"), where=where)
    if not isinstance(record, dict):
        kind = "array" if isinstance(record, list) else "null" if record is None else type(record).__name__
        reason = f"{where} is a JSON {kind}, expected a JSON object (one record per line)"
        return _Item(error=RecordError(None, reason, "not_object"), where=where)
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
        records = _decoder.decode(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not valid UTF-8 ({err.reason} at byte {err.start})") from err
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path} is not valid JSON: {err.msg} (line {err.lineno}, column {err.colno}); "
            "a .json file must hold one JSON array of records; use .jsonl for one record per line"
        ) from err
    except RecursionError as err:
        raise ValueError(f"{path} is not readable JSON: nested too deeply") from err
    except ValueError as err:  # a number of more than 4300 digits
        raise ValueError(f"{path} is not readable JSON ({err})") from err
    if not isinstance(records, list):
        raise ValueError(
            f"{path} holds a JSON {type(records).__name__}, expected a JSON array of records; "
            "use .jsonl for one record per line"
        )
    return (_Item(r) for r in records)


def _iter_parquet(path: Path) -> Iterator[_Item]:
    """One item per row, decoded a row batch at a time; a file that cannot be opened raises now."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise ValueError(f"{path} is not a readable Parquet file ({type(err).__name__}: {err})") from err
    return _parquet_rows(parquet, path)


def _parquet_rows(parquet: Any, path: Path) -> Iterator[_Item]:
    import pyarrow as pa

    # Each batch becomes a table with the file's schema, whose pandas metadata (nullable integer ids, ...) makes
    # its frame the rows pd.read_parquet would give.
    schema = parquet.schema_arrow
    batches = parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS)
    while True:
        try:
            batch = next(batches, None)
            if batch is None:
                return
            frame = pa.Table.from_batches([batch], schema=schema).to_pandas()
        except Exception as err:  # pyarrow raises several types for corrupt files
            raise ValueError(f"{path} is not a readable Parquet file ({type(err).__name__}: {err})") from err
        yield from _iter_dataframe(frame)


# ----------------------------------------------------------------------------------------------------------
# DataFrames and in-memory values
# ----------------------------------------------------------------------------------------------------------


def _iter_dataframe(df: pd.DataFrame) -> Iterator[_Item]:
    """One item per row, as a dict without the row's missing (None / NaN) cells."""
    bad_cells: dict[int, tuple[str, str]] = {}  # row -> (column, why) for a cell that cannot be read
    columns = {name: _column_values(df[name], name, bad_cells) for name in df.columns}
    for row in range(len(df)):
        record = {name: values[row] for name, values in columns.items() if not _missing(values[row])}
        if row in bad_cells:
            column, why = bad_cells[row]
            code = "encoding" if why == "UnicodeDecodeError" else "corrupt"
            problem = "is not valid UTF-8 text" if code == "encoding" else f"cannot be read ({why})"
            reason = f"the '{column}' cell {problem}"
            yield _Item(record, error=RecordError(column, reason, code))
            continue
        yield _plain_item(record)


def _column_values(column: pd.Series, name: Any, bad_cells: dict[int, tuple[str, str]]) -> list[Any]:
    """A column's values; a cell that cannot be converted (invalid UTF-8 in a Parquet string: pyarrow raises
    while decoding it) becomes None, and is noted in ``bad_cells`` so that its row is rejected."""
    try:
        return column.tolist()
    except Exception:  # pyarrow raises UnicodeDecodeError or ArrowException for a damaged cell
        values = []
        for row in range(len(column)):
            try:
                values.append(column.iat[row])
            except Exception as error:
                values.append(None)
                bad_cells.setdefault(row, (str(name), type(error).__name__))
        return values


def _plain_item(value: Any) -> _Item:
    """An item of plain Python values, or a ``too_deep`` error for a value nested too deeply or holding itself."""
    try:
        return _Item(_to_python(value))
    except RecursionError:
        reason = f"lists and objects nest more than {MAX_NESTING} levels deep (or the record contains itself)"
        return _Item(value if isinstance(value, Mapping) else None, error=RecordError(None, reason, "too_deep"))


def _missing(value: Any) -> bool:
    """True for an empty cell: None, NaN, NaT or pd.NA (never for lists or arrays)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    return False


def _to_python(value: Any, depth: int = 1) -> Any:
    """Plain Python containers and scalars for numpy arrays / scalars and pyarrow values, recursively.

    Raises ``RecursionError`` past :data:`~clio_lite.schema.MAX_NESTING` levels (so a value holding itself
    ends too), well before the interpreter's own limit.
    """
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if depth > MAX_NESTING:
        raise RecursionError(f"nested more than {MAX_NESTING} levels")
    if isinstance(value, np.ndarray | list | tuple):
        return [_to_python(v, depth + 1) for v in value]
    if isinstance(value, Mapping):
        return {k: _to_python(v, depth + 1) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    as_py = getattr(value, "as_py", None)  # pyarrow scalars and list values
    if callable(as_py):
        try:
            return _to_python(as_py(), depth + 1)
        except RecursionError:
            raise
        except Exception:  # not a pyarrow value after all
            return value
    return value
