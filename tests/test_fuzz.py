"""Fuzz and property tests over the readers and the schema: thousands of malformed records, zero crashes.

Each test builds files (or in-memory sources) from valid records damaged in the ways real exports are damaged:
wrong types, missing keys, invalid UTF-8 and Latin-1 lines, control characters, NUL bytes, lone surrogates, huge
fields, deep nesting, records holding themselves, duplicate ids with the same or different content, half-written
last lines, byte-order marks, CRLF, truncated or corrupt gzip streams and corrupt Parquet files. Every record must
end accepted or rejected with a known reason code, the counts must add up, and no reason may quote content.

Bounded in time: a few hundred examples per test (a few thousand records in all), no deadline per example.
"""

from __future__ import annotations

import gzip
import io
import json
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from clio_lite import io as clio_io
from clio_lite.io import iter_conversations, load_conversations
from clio_lite.schema import MAX_ID_CHARS, REJECTION_CODES, Conversations
from tests.strategies import json_values

SECRET = "4111-1111-1111-1111"
LIMITS = {"max_message_chars": 200, "max_conversation_chars": 1000}
# The longest JSONL line the reader holds in memory at these limits (see clio_lite.io).
MAX_LINE_BYTES = 12 * LIMITS["max_conversation_chars"] + (1 << 16)
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))

odd_characters = st.sampled_from(["\x00", "\x01", "\x1b", "\x7f", "\ud800", "\udfff", "\u2028", "\ufeff", "é", "😀"])
texts = st.lists(st.text(max_size=12) | odd_characters, max_size=6).map("".join)


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


# Ways to damage one record, each applied to a valid one: ("name", function(record, draw) -> record).
def _mutations(draw) -> list[Any]:
    junk = draw(json_values)
    key = draw(st.sampled_from(["id", "user_id", "messages"]))
    return [
        lambda r: {k: v for k, v in r.items() if k != key},  # missing key
        lambda r: {**r, key: junk},  # wrong type
        lambda r: {**r, "messages": []},  # empty conversation
        lambda r: {**r, "messages": [{"role": "user", "content": "   "}]},  # no user text
        lambda r: {**r, "messages": [{"role": "narrator", "content": SECRET}]},  # unknown role
        lambda r: {**r, "messages": [{"role": "user", "content": SECRET * 20}]},  # message over the limit
        lambda r: {**r, "messages": [{"role": "user", "content": SECRET}] * 60},  # conversation over the limit
        lambda r: {**r, "meta": nested(draw(st.integers(60, 300)))},  # deep nesting
        lambda r: {**r, "id": "i" * (MAX_ID_CHARS + 1)},  # id over the limit
        lambda r: {**r, "id": 10**400},  # an id too long for str(int)
        lambda r: {**r, "messages": [{"role": "user", "content": [{"type": "text", "text": junk}, junk]}]},
        lambda r: {**r, "conversations": r.pop("messages", None)},  # alternative key
        lambda r: {**r, "messages": [{"from": "human", "value": SECRET + draw(texts)}]},  # ShareGPT
    ]


@st.composite
def damaged_records(draw) -> dict[str, Any]:
    """A record with a small id (so duplicates happen), content holding SECRET, and zero to two damages."""
    record: dict[str, Any] = {
        "id": draw(st.integers(0, 6)),
        "user_id": draw(st.sampled_from(["u1", "u2", 3])),
        "messages": [{"role": "user", "content": f"{draw(texts)} {SECRET} {draw(texts)}"}],
    }
    if draw(st.booleans()):
        record["messages"].append({"role": draw(st.sampled_from(["assistant", "GPT", "tool"])), "content": draw(texts)})
    for _ in range(draw(st.integers(0, 2))):
        record = draw(st.sampled_from(_mutations(draw)))(record)
    return record


def _encode(record: dict[str, Any], ascii_only: bool) -> bytes:
    return json.dumps(record, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@st.composite
def damaged_lines(draw) -> bytes:
    """One JSONL line (no newline in it), damaged at the byte level or not."""
    record = draw(damaged_records())
    line = _encode(record, ascii_only=draw(st.booleans()))
    damage = draw(st.sampled_from(["none", "none", "bytes", "latin-1", "cut", "crlf", "blank", "not-object", "giant"]))
    if damage == "bytes":  # invalid UTF-8: lone continuation bytes, a truncated sequence, an encoded surrogate, NUL
        bad = draw(st.sampled_from([b"\xff", b"\xc3", b"\x80\x80", b"\xed\xa0\x80", b"\x00", b"\xf0\x9f"]))
        at = draw(st.integers(0, len(line)))
        line = line[:at] + bad + line[at:]
    elif damage == "latin-1":
        line = json.dumps({**record, "lang": "français"}, ensure_ascii=False).encode("latin-1", "replace")
    elif damage == "cut":
        line = line[: draw(st.integers(0, max(len(line) - 1, 0)))]
    elif damage == "crlf":
        line += b"\r"
    elif damage == "blank":
        line = draw(st.sampled_from([b"", b"   ", b"\t", b"\r"]))
    elif damage == "not-object":
        line = draw(st.sampled_from([b"[1, 2]", b"42", b"null", b'"text"', b"true", b"{", b"}"]))
    elif damage == "giant":  # a paste far beyond any limit: skipped unread
        line = b'{"id": 1, "user_id": "u", "text": "' + b"a" * (MAX_LINE_BYTES + 10) + b'"}'
    assert b"\n" not in line
    return line


@st.composite
def jsonl_files(draw) -> tuple[bytes, int]:
    """A JSONL file's bytes and the number of records in it (its non-blank lines)."""
    lines = draw(st.lists(damaged_lines(), min_size=1, max_size=20))
    if draw(st.booleans()):
        lines[0] = b"\xef\xbb\xbf" + lines[0]
    data = b"\n".join(lines) + (b"\n" if draw(st.booleans()) else b"")
    records = sum(bool(line.removeprefix(b"\xef\xbb\xbf").strip()) if i == 0 else bool(line.strip())
                  for i, line in enumerate(lines))
    return data, records


def check(convs: Conversations, n_records: int) -> None:
    """Every record accepted or rejected with a known code; nothing quoted; accepted records are clean."""
    assert convs.n_read == n_records == len(convs) + len(convs.rejected)
    indexes = [r.index for r in convs.rejected]
    assert indexes == sorted(set(indexes)) and all(0 <= i < n_records for i in indexes)
    for rejection in convs.rejected:
        assert rejection.code in REJECTION_CODES and rejection.code != "internal", rejection
        assert rejection.reason.strip()
        assert SECRET[:4] not in json.dumps(rejection.to_dict()), rejection
        assert rejection.id is None or len(rejection.id) <= MAX_ID_CHARS
    assert len({c.id for c in convs}) == len(convs)
    for conv in convs:
        assert 0 < len(conv.id) <= MAX_ID_CHARS and 0 < len(conv.user_id) <= MAX_ID_CHARS
        assert any(m.role == "user" and m.content for m in conv.messages)
        assert sum(len(m.content) for m in conv.messages) <= LIMITS["max_conversation_chars"]
        for message in conv.messages:
            assert len(message.content) <= LIMITS["max_message_chars"]
            assert "\x00" not in message.content
            message.content.encode("utf-8")  # no lone surrogate survives


def load_bytes(data: bytes, name: str) -> Conversations:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        return load_conversations(path, **LIMITS)


def joined(chunks: list[Conversations]) -> tuple[list[str], list[dict[str, Any]]]:
    """What the chunks of a streamed read decided, whole conversations included (repr: NaN equals NaN)."""
    return [repr(c) for chunk in chunks for c in chunk], [r.to_dict() for chunk in chunks for r in chunk.rejected]


def outcome(convs: Conversations) -> tuple[list[str], list[dict[str, Any]]]:
    """What a load decided, comparable across runs and across plain and gzipped copies of a file."""
    return [c.id for c in convs], [r.to_dict() for r in convs.rejected]


# ----------------------------------------------------------------------------------------------------------
# JSONL, plain and gzipped
# ----------------------------------------------------------------------------------------------------------


@FUZZ
@given(jsonl_files())
def test_damaged_jsonl_never_crashes_and_accounts_for_every_record(file: tuple[bytes, int]) -> None:
    data, n_records = file
    assume(n_records > 0)
    convs = load_bytes(data, "c.jsonl")
    check(convs, n_records)
    assert outcome(load_bytes(data, "c.jsonl")) == outcome(convs)  # deterministic
    assert outcome(load_bytes(gzip.compress(data), "c.jsonl.gz")) == outcome(convs)  # gzip reads the same


@FUZZ
@given(jsonl_files(), st.integers(1, 25), st.floats(0, 1))
def test_a_file_streamed_in_chunks_reads_as_it_does_whole(file: tuple[bytes, int], chunk_size: int, where: float):
    data, n_records = file
    assume(n_records > 0)
    compressed = gzip.compress(data)
    cut = compressed[: max(1, int(where * len(compressed)))]  # a truncated gzip stream, too
    with tempfile.TemporaryDirectory() as tmp:
        for name, raw in (("c.jsonl", data), ("c.jsonl.gz", compressed), ("cut.jsonl.gz", cut)):
            path = Path(tmp) / name
            path.write_bytes(raw)
            try:
                whole = load_conversations(path, **LIMITS)
            except ValueError:  # unreadable as a whole: so is the stream, at the call or when read
                with pytest.raises(ValueError):
                    list(iter_conversations(path, chunk_size=chunk_size, **LIMITS))
                continue
            chunks = list(iter_conversations(path, chunk_size=chunk_size, **LIMITS))
            assert [chunk.n_read for chunk in chunks[:-1]] == [chunk_size] * (len(chunks) - 1)
            assert 0 < chunks[-1].n_read <= chunk_size
            assert joined(chunks) == joined([whole])


@FUZZ
@given(jsonl_files(), st.floats(0, 1))
def test_truncated_gzip_keeps_every_record_before_the_cut(file: tuple[bytes, int], where: float) -> None:
    data, n_records = file
    assume(n_records > 0)
    full = load_bytes(data, "c.jsonl")
    compressed = gzip.compress(data)
    cut = int(where * (len(compressed) - 1))
    try:
        convs = load_bytes(compressed[:cut], "c.jsonl.gz")
    except ValueError as error:  # cut before the first decompressed byte: the file as a whole is unreadable
        assert "gzip" in str(error)
        return
    *before, last = convs.rejected
    assert last.code == "truncated" and last.index == convs.n_read - 1
    assert "truncated" in last.reason
    n_before = convs.n_read - 1  # complete records before the cut: decided exactly as in the whole file
    assert [r.to_dict() for r in before] == [r.to_dict() for r in full.rejected if r.index < n_before]
    assert [c.id for c in convs] == [c.id for c in full][: n_before - len(before)]


@FUZZ
@given(jsonl_files(), st.floats(0, 1), st.integers(1, 255))
def test_corrupt_gzip_never_crashes(file: tuple[bytes, int], where: float, flip: int) -> None:
    data, n_records = file
    compressed = bytearray(gzip.compress(data))
    at = int(where * (len(compressed) - 1))
    compressed[at] ^= flip
    try:
        convs = load_bytes(bytes(compressed), "c.jsonl.gz")
    except ValueError as error:
        assert "gzip" in str(error) or "holds no records" in str(error)
        return
    for rejection in convs.rejected:
        assert rejection.code in REJECTION_CODES and rejection.code != "internal"
    assert [r.code for r in convs.rejected if r.code in ("truncated", "corrupt")] in ([], [convs.rejected[-1].code])


def test_concatenated_gzip_members_and_zero_padding_read_as_one_file(tmp_path: Path) -> None:
    lines = [json.dumps({"id": i, "user_id": "u", "text": f"t{i}"}).encode() + b"\n" for i in range(4)]
    path = tmp_path / "c.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(lines[:2])) + gzip.compress(b"".join(lines[2:])) + b"\x00" * 512)
    convs = load_conversations(path)
    assert [c.id for c in convs] == ["0", "1", "2", "3"] and convs.rejected == []


def test_a_gzip_bomb_line_is_skipped_without_being_held_in_memory(tmp_path: Path) -> None:
    # 50 MB of one line compresses to ~50 kB; the reader must skip it in chunks, not build it.
    giant = b'{"id": 1, "user_id": "u", "text": "' + b"a" * 50_000_000 + b'"}\n'
    path = tmp_path / "bomb.jsonl.gz"
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(path, "wb") as fh:
        fh.write(compressor.compress(json.dumps({"id": 0, "user_id": "u", "text": "ok"}).encode() + b"\n"))
        for start in range(0, len(giant), 1 << 24):
            fh.write(compressor.compress(giant[start : start + (1 << 24)]))
        fh.write(compressor.compress(json.dumps({"id": 2, "user_id": "u", "text": "ok"}).encode() + b"\n"))
        fh.write(compressor.flush())
    del giant
    convs = load_conversations(path)
    assert [c.id for c in convs] == ["0", "2"]
    [rejection] = convs.rejected
    assert rejection.code == "too_large" and "skipped unread" in rejection.reason and "50,000,0" in rejection.reason


# ----------------------------------------------------------------------------------------------------------
# JSON arrays, Parquet, DataFrames and Python values
# ----------------------------------------------------------------------------------------------------------


@FUZZ
@given(st.lists(damaged_records(), min_size=1, max_size=20))
def test_damaged_records_in_a_json_array_or_a_list_never_crash(records: list[dict[str, Any]]) -> None:
    check(load_conversations(records, **LIMITS), len(records))
    data = json.dumps(records).encode("utf-8", "surrogatepass")
    check(load_bytes(data, "c.json"), len(records))


@FUZZ
@given(st.lists(damaged_records(), min_size=1, max_size=12))
def test_damaged_records_in_a_dataframe_never_crash(records: list[dict[str, Any]]) -> None:
    check(load_conversations(pd.DataFrame.from_records(records), **LIMITS), len(records))


python_oddities = st.sampled_from(
    [
        b"bytes", {1, 2}, frozenset(), object(), np.array([[1, 2], [3, 4]]), np.float64("nan"), np.int64(7),
        (1, "tuple"), {1: "int key"}, {("tuple", "key"): 1}, range(3), 1 + 2j, float("inf"), -0.0,
    ]
)


@st.composite
def python_records(draw) -> Any:
    record: Any = draw(damaged_records())
    if draw(st.booleans()):
        record[draw(st.sampled_from(["id", "user_id", "messages", "meta"]))] = draw(python_oddities)
    if draw(st.integers(0, 5)) == 0:
        record["self"] = record  # a record that holds itself
    if draw(st.integers(0, 5)) == 0:
        record = draw(python_oddities)
    return record


@FUZZ
@given(st.lists(python_records(), min_size=1, max_size=12))
def test_python_values_of_any_kind_never_crash(records: list[Any]) -> None:
    check(load_conversations(records, **LIMITS), len(records))


def _parquet_bytes(n: int) -> bytes:
    buffer = io.BytesIO()
    frame = pd.DataFrame(
        {
            "id": list(range(n)),
            "user_id": [f"u{i % 3}" for i in range(n)],
            "messages": [[{"role": "user", "content": f"text {i} {SECRET}"}] for i in range(n)],
        }
    )
    frame.to_parquet(buffer)
    return buffer.getvalue()


PARQUET = _parquet_bytes(30)


@FUZZ
@given(st.floats(0, 1), st.integers(1, 255), st.booleans())
def test_corrupt_parquet_is_a_file_error_or_reads_with_every_row_accounted(where: float, flip: int, cut: bool) -> None:
    data = bytearray(PARQUET)
    at = int(where * (len(data) - 1))
    if cut:
        data = data[:at]
    else:
        data[at] ^= flip
    try:
        convs = load_bytes(bytes(data), "c.parquet")
    except ValueError as error:
        assert "Parquet" in str(error) or "holds no records" in str(error)
        return
    for rejection in convs.rejected:
        assert rejection.code in REJECTION_CODES and rejection.code != "internal"


@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(0, 8) | st.none(), st.sampled_from(["u1", "u2", None]),
                  st.sampled_from(["hello", "bye", "   ", SECRET]), json_values),
        min_size=1, max_size=40,
    ),
    st.integers(1, 15),
    st.integers(1, 10),
)
def test_parquet_streamed_in_row_batches_reads_as_the_whole_frame(rows, chunk_size: int, batch_rows: int) -> None:
    frame = pd.DataFrame(
        {
            "id": pd.array([row[0] for row in rows], dtype="Int64"),
            "user_id": [row[1] for row in rows],
            "messages": [[{"role": "user", "content": row[2]}] for row in rows],
            "note": [json.dumps(row[3]) for row in rows],
        }
    )
    default_batch = clio_io._PARQUET_BATCH_ROWS
    clio_io._PARQUET_BATCH_ROWS = batch_rows  # several row batches even in a small file
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "c.parquet"
            frame.to_parquet(path)
            chunks = list(iter_conversations(path, chunk_size=chunk_size))
            whole = load_conversations(pd.read_parquet(path))
    finally:
        clio_io._PARQUET_BATCH_ROWS = default_batch
    assert joined(chunks) == joined([whole])


@pytest.mark.parametrize("name", ["c.jsonl", "c.jsonl.gz", "c.json", "c.parquet"])
def test_an_empty_or_zero_length_file_is_a_clear_file_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(gzip.compress(b"") if name.endswith(".gz") else b"")
    with pytest.raises(ValueError) as info:
        load_conversations(path)
    assert str(path) in str(info.value)
