"""Tests for the readers: ``clio_lite.io.load_conversations``."""

from __future__ import annotations

import gzip
import json
import logging
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clio_lite.io import SUPPORTED_FORMATS, iter_conversations, load_conversations
from clio_lite.schema import Conversations, Message
from tests.strategies import json_values

SECRET = "my card number is 4111-1111-1111-1111"


def rec(i: Any, text: str = "hello", user: Any = "u1", **extra: Any) -> dict[str, Any]:
    return {"id": i, "user_id": user, "messages": [{"role": "user", "content": text}], **extra}


def write_jsonl(path: Path, lines: list[bytes | str | dict[str, Any]]) -> Path:
    raw = b"".join(
        (line if isinstance(line, bytes) else (line if isinstance(line, str) else json.dumps(line)).encode())
        + b"\n"
        for line in lines
    )
    path.write_bytes(raw)
    return path


# ----------------------------------------------------------------------------------------------------------
# JSONL
# ----------------------------------------------------------------------------------------------------------


def test_jsonl_reads_every_record_and_skips_blank_lines(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [rec(1), "", "   ", rec(2, "bye", lang="en"), "\t"])
    convs = load_conversations(path)
    assert isinstance(convs, Conversations)
    assert [c.id for c in convs] == ["1", "2"]
    assert convs[1].metadata == {"lang": "en"}
    assert convs.n_read == 2 and convs.rejected == []
    assert convs.source == str(path)
    assert load_conversations(str(path)).source == str(path)


def test_jsonl_rejections_have_record_index_and_line_number(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", ["", rec(1), "", {"id": 2, "text": "no user"}, rec(3)])
    convs = load_conversations(path)
    assert [c.id for c in convs] == ["1", "3"]
    [rej] = convs.rejected
    assert rej.index == 1  # second record (0-based), on line 4 of the file (1-based)
    assert rej.field == "user_id"
    assert rej.id == "2"
    assert rej.reason.endswith("(line 4)")


def test_jsonl_invalid_utf8_line_is_rejected_and_reading_goes_on(tmp_path: Path) -> None:
    bad = b'{"id": 2, "user_id": "u", "text": "caf\xe9 \xff"}'
    path = write_jsonl(tmp_path / "c.jsonl", [rec(1), bad, rec(3)])
    convs = load_conversations(path)
    assert [c.id for c in convs] == ["1", "3"]
    [rej] = convs.rejected
    assert rej.index == 1
    assert rej.reason.startswith("line 2 is not valid UTF-8 (")
    assert rej.field is None and rej.id is None
    assert "caf" not in rej.reason


def test_jsonl_truncated_line_is_rejected_with_json_message(tmp_path: Path) -> None:
    truncated = json.dumps(rec(2, SECRET))[:-15]
    path = write_jsonl(tmp_path / "c.jsonl", [rec(1), truncated])
    convs = load_conversations(path)
    assert len(convs) == 1
    [rej] = convs.rejected
    assert rej.index == 1
    assert rej.reason.startswith("line 2 is not valid JSON: Unterminated string")
    assert "4111" not in rej.reason


@pytest.mark.parametrize(
    ("line", "kind"), [("[1, 2]", "array"), ("42", "int"), ("null", "null"), ('"s"', "str")]
)
def test_jsonl_line_that_is_not_an_object_is_rejected(tmp_path: Path, line: str, kind: str) -> None:
    convs = load_conversations(write_jsonl(tmp_path / "c.jsonl", [rec(1), line]))
    [rej] = convs.rejected
    assert rej.reason == f"line 2 is a JSON {kind}, expected a JSON object (one record per line)"


def test_jsonl_one_megabyte_message_is_rejected_with_the_limit(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [rec(1), rec(2, "a" * 1_000_000), rec(3)])
    convs = load_conversations(path)
    assert [c.id for c in convs] == ["1", "3"]
    [rej] = convs.rejected
    assert rej.field == "messages[0].content"
    assert "1,000,000 characters" in rej.reason
    assert "100,000" in rej.reason
    assert "max_message_chars" in rej.reason
    assert "aaaa" not in rej.reason
    # raising the limit, as the reason says, accepts it
    convs = load_conversations(path, max_message_chars=2_000_000)
    assert len(convs) == 3 and len(convs[1].messages[0].content) == 1_000_000


def test_duplicate_ids_keep_the_first(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "c.jsonl", [rec("x", "first"), rec("y"), rec("x", "second"), rec("x", "third")]
    )
    convs = load_conversations(path)
    assert [(c.id, c.messages[0].content) for c in convs] == [("x", "first"), ("y", "hello")]
    assert [r.index for r in convs.rejected] == [2, 3]
    for r in convs.rejected:
        assert r.reason.startswith("duplicate id 'x' (first seen at record 0): different content")
        assert r.field == "id" and r.id == "x" and r.code == "conflict"


def test_the_same_conversation_twice_is_kept_once_and_the_copy_counted_as_duplicate(tmp_path: Path) -> None:
    nan_meta = {"score": float("nan")}  # NaN != NaN in Python, but a record read twice is still the same record
    path = write_jsonl(tmp_path / "c.jsonl", [rec("x", "same"), rec("y"), rec("x", "same")])
    path.write_text(path.read_text() + json.dumps(rec("z", **nan_meta)) + "\n" + json.dumps(rec("z", **nan_meta)))
    convs = load_conversations(path)
    assert [c.id for c in convs] == ["x", "y", "z"]
    assert [(r.index, r.code, r.id) for r in convs.rejected] == [(2, "duplicate", "x"), (4, "duplicate", "z")]
    assert convs.rejected[0].reason == "duplicate id 'x' (first seen at record 0): the same conversation again, " \
        "kept once (line 3)"
    # a different user or different metadata is a conflict, not a copy
    other = load_conversations([rec("x"), rec("x", user="u2"), rec("x", lang="fr")])
    assert [r.code for r in other.rejected] == ["conflict", "conflict"]


def test_duplicate_of_a_rejected_record_is_accepted() -> None:
    convs = load_conversations([{"id": 1, "text": "no user"}, rec(1), rec(1)])
    assert [c.id for c in convs] == ["1"]
    assert [r.field for r in convs.rejected] == ["user_id", "id"]
    assert "first seen at record 1" in convs.rejected[1].reason


def test_int_and_str_ids_collide() -> None:
    convs = load_conversations([rec(7), rec("7")])
    assert len(convs) == 1 and convs.rejected[0].reason.startswith("duplicate id '7'")


def test_jsonl_gz(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps(rec(1)) + "\n\n" + "not json\n" + json.dumps(rec(2)) + "\n")
    convs = load_conversations(path)
    assert [c.id for c in convs] == ["1", "2"]
    assert [r.index for r in convs.rejected] == [1]
    assert "line 3 is not valid JSON" in convs.rejected[0].reason


def test_corrupt_gzip_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl.gz"
    path.write_bytes(b"this is not gzip\n")
    with pytest.raises(ValueError, match="gzip"):
        load_conversations(path)


def test_utf8_bom_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(rec(1)).encode() + b"\r\n" + json.dumps(rec(2)).encode())
    assert [c.id for c in load_conversations(path)] == ["1", "2"]


@pytest.mark.parametrize("content", [b"", b"\n\n  \n\t\n"])
def test_empty_file_is_an_error_naming_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="holds no records") as info:
        load_conversations(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl"
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_conversations(path)


def test_unknown_extension_lists_supported_formats(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.txt", [rec(1)])
    with pytest.raises(ValueError) as info:
        load_conversations(path)
    message = str(info.value)
    assert str(path) in message
    for ext in (".jsonl", ".jsonl.gz", ".json", ".parquet"):
        assert ext in message
    # naming the format reads it
    assert [c.id for c in load_conversations(path, format="jsonl")] == ["1"]
    with pytest.raises(ValueError, match="unknown format 'csv'"):
        load_conversations(path, format="csv")
    assert set(SUPPORTED_FORMATS) == {"jsonl", "json", "parquet"}


# ----------------------------------------------------------------------------------------------------------
# JSON array
# ----------------------------------------------------------------------------------------------------------


def test_json_array(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps([rec(1), {"id": 2, "user": 5, "text": "hi"}, 3, rec(4, "")]))
    convs = load_conversations(path)
    assert [(c.id, c.user_id) for c in convs] == [("1", "u1"), ("2", "5")]
    assert [r.index for r in convs.rejected] == [2, 3]
    assert convs.rejected[0].reason == "record must be an object (JSON object or dict), got integer"
    assert "no user message with text" in convs.rejected[1].reason


def test_json_gz(tmp_path: Path) -> None:
    path = tmp_path / "c.json.gz"
    path.write_bytes(gzip.compress(json.dumps([rec(1)]).encode()))
    assert [c.id for c in load_conversations(path)] == ["1"]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "holds no records"),
        (b"[]", "holds no records"),
        (b'{"id": 1}', "expected a JSON array"),
        (b"[{]", "is not valid JSON"),
        (b'["\xff"]', "is not valid UTF-8"),
    ],
)
def test_json_file_errors(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match) as info:
        load_conversations(path)
    assert str(path) in str(info.value)


# ----------------------------------------------------------------------------------------------------------
# Parquet and DataFrames
# ----------------------------------------------------------------------------------------------------------


def test_parquet_round_trip(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "user_id": ["a", "b", None, "d"],
            "messages": [
                [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
                [{"role": "USER", "content": " second "}],
                [{"role": "user", "content": "no user id"}],
                [],
            ],
            "lang": ["en", np.nan, "fr", "de"],
            "score": [0.5, 1.0, np.nan, 2.0],
        }
    )
    path = tmp_path / "c.parquet"
    df.to_parquet(path)
    convs = load_conversations(path)
    assert [c.id for c in convs] == ["1", "2"]
    assert convs[0].messages == (Message("user", "hi"), Message("assistant", "hello"))
    assert convs[0].metadata == {"lang": "en", "score": 0.5}
    assert convs[1].metadata == {"score": 1.0}  # NaN lang dropped
    assert convs[1].messages == (Message("user", "second"),)
    assert type(convs[0].metadata["score"]) is float
    assert [(r.index, r.field, r.id) for r in convs.rejected] == [(2, "user_id", "3"), (3, "messages", "4")]
    assert "count distinct users" in convs.rejected[0].reason
    assert "empty message list" in convs.rejected[1].reason


def test_parquet_sharegpt_and_multipart_content(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            "id": ["s1", "o1"],
            "user": [10, 11],
            "conversations": [[{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}], None],
            "messages": [
                None,
                [{"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "text", "text": "y"}]}],
            ],
        }
    )
    path = tmp_path / "c.parquet"
    df.to_parquet(path)
    convs = load_conversations(path)
    assert convs.rejected == []
    assert convs[0].messages == (Message("user", "q"), Message("assistant", "a"))
    assert convs[1].messages == (Message("user", "x\ny"),)
    assert [c.user_id for c in convs] == ["10", "11"]


def test_parquet_nullable_int_ids_do_not_become_floats(tmp_path: Path) -> None:
    df = pd.DataFrame({"id": [1.0, None], "user_id": [5, 6], "text": ["a", "b"]})
    path = tmp_path / "c.parquet"
    df.to_parquet(path)
    convs = load_conversations(path)
    assert [c.id for c in convs] == ["1"]
    assert convs[0].user_id == "5"
    assert convs.rejected[0].reason.startswith("missing field 'id'")


def test_corrupt_parquet_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "c.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(ValueError, match="not a readable Parquet file"):
        load_conversations(path)


def test_dataframe_with_text_column() -> None:
    df = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "user_id": ["u", "u", np.nan],
            "text": ["first", "second", "third"],
            "n": [1, 2, 3],
        }
    )
    convs = load_conversations(df)
    assert convs.source == "<DataFrame>"
    assert [(c.id, c.messages, c.metadata) for c in convs] == [
        ("a", (Message("user", "first"),), {"n": 1}),
        ("b", (Message("user", "second"),), {"n": 2}),
    ]
    assert type(convs[0].metadata["n"]) is int
    [rej] = convs.rejected
    assert (rej.index, rej.field, rej.id) == (2, "user_id", "c")


def test_dataframe_rejection_index_is_position_not_label() -> None:
    df = pd.DataFrame({"id": [1, 2], "user_id": [None, "u"], "text": ["a", "b"]}, index=[100, 200])
    assert load_conversations(df).rejected[0].index == 0


def test_empty_dataframe_is_an_error() -> None:
    with pytest.raises(ValueError, match="<DataFrame> holds no records"):
        load_conversations(pd.DataFrame({"id": [], "user_id": [], "text": []}))


# ----------------------------------------------------------------------------------------------------------
# In-memory sources
# ----------------------------------------------------------------------------------------------------------


def test_list_and_iterable_sources() -> None:
    records = [rec(1), {"id": 2, "user_id": 1, "conversation": [{"role": "user", "content": "c"}]}, "junk"]
    convs = load_conversations(records)
    assert convs.source == "<list>"
    assert [c.id for c in convs] == ["1", "2"]
    assert convs.rejected[0].index == 2 and convs.rejected[0].field is None
    assert [c.id for c in load_conversations(r for r in records)] == ["1", "2"]


def test_list_records_with_numpy_values() -> None:
    record = {"id": np.int64(3), "user_id": "u", "messages": np.array([{"role": "user", "content": "np"}])}
    [conv] = load_conversations([record])
    assert conv.id == "3" and conv.messages == (Message("user", "np"),)


def test_conversations_are_returned_as_is() -> None:
    convs = load_conversations([rec(1)])
    assert load_conversations(convs) is convs


def test_bad_sources() -> None:
    with pytest.raises(TypeError, match="single record"):
        load_conversations(rec(1))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        load_conversations(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bytes"):
        load_conversations(b'{"id": 1}')  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="<list> holds no records"):
        load_conversations([])
    with pytest.raises(ValueError, match="max_message_chars"):
        load_conversations([rec(1)], max_message_chars=0)


# ----------------------------------------------------------------------------------------------------------
# Logging and privacy
# ----------------------------------------------------------------------------------------------------------


def test_rejections_are_logged_as_a_warning_without_content(caplog: pytest.LogCaptureFixture) -> None:
    records = [rec(1), {"id": 2, "text": SECRET}, rec(3, SECRET * 5000), rec(1, SECRET), "x", rec(5, SECRET)]
    with caplog.at_level(logging.WARNING, logger="clio_lite.io"):
        convs = load_conversations(records)
    assert len(convs) == 2 and len(convs.rejected) == 4
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "clio_lite.io"]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "rejected 4 of 6 records" in message
    assert "record 1 (user_id)" in message
    assert "and 1 more" in message
    assert "4111" not in caplog.text
    for r in convs.rejected:
        assert "4111" not in json.dumps(r.to_dict())


def test_no_warning_when_everything_is_accepted(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="clio_lite.io"):
        load_conversations([rec(1), rec(2)])
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_jsonl_rejections_never_contain_content(tmp_path: Path) -> None:
    lines: list[Any] = [
        json.dumps(rec(1, SECRET))[:-3],  # truncated
        json.dumps(rec(2, SECRET)).encode()[:-5] + b'\xfe"}]}',  # bad UTF-8
        {"id": 3, "messages": [{"role": "user", "content": SECRET}]},  # no user id
        {"id": 4, "user_id": 1, "messages": [{"role": SECRET, "content": SECRET}]},  # unknown role
        rec(5, SECRET * 10_000),  # too long
        [SECRET],  # not an object
    ]
    convs = load_conversations(write_jsonl(tmp_path / "c.jsonl", lines))
    assert len(convs.rejected) == 6
    for r in convs.rejected:
        assert r.reason
        assert "4111" not in r.reason, r.reason


# ----------------------------------------------------------------------------------------------------------
# Properties: any input, every record accounted for, no crash
# ----------------------------------------------------------------------------------------------------------

# Mostly-valid branches first (hypothesis favours them), so that accepted records and duplicate ids occur too.
message_values = (
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "assistant", "human", "x"]),
            "content": st.text(max_size=40) | json_values,
        }
    )
    | st.fixed_dictionaries({"from": json_values, "value": st.text(max_size=20)})
    | json_values
)
valid_records = st.builds(rec, st.integers(0, 5), st.text(min_size=1, max_size=10).filter(str.strip))
records = (
    valid_records
    | st.fixed_dictionaries(
        {
            "id": st.integers(0, 5) | st.text(min_size=1, max_size=3),
            "user_id": st.integers(0, 3) | st.text(min_size=1, max_size=3) | json_values,
        },
        optional={
            "messages": st.lists(message_values, min_size=1, max_size=3),
            "text": st.text(max_size=10) | json_values,
            "meta": json_values,
        },
    )
    | st.dictionaries(st.sampled_from(["id", "user", "messages", "conversations", "text"]), json_values)
    | json_values
)


def check_accounting(convs: Conversations, n_records: int) -> None:
    assert convs.n_read == n_records
    assert len(convs) + len(convs.rejected) == n_records
    assert sorted(r.index for r in convs.rejected) == [r.index for r in convs.rejected]
    assert all(0 <= r.index < n_records for r in convs.rejected)
    assert len({r.index for r in convs.rejected}) == len(convs.rejected)
    for r in convs.rejected:
        assert isinstance(r.reason, str) and r.reason.strip()
        assert "clio_lite bug" not in r.reason  # parse_record raised something other than RecordError
    assert len({c.id for c in convs}) == len(convs)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records, min_size=1, max_size=8))
def test_loading_any_records_never_raises(items: list[Any]) -> None:
    check_accounting(load_conversations(items, max_message_chars=30), len(items))
    check_accounting(load_conversations(pd.DataFrame({"x": range(len(items))}).assign(r=items)), len(items))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records, min_size=1, max_size=8))
def test_any_records_as_jsonl_never_raise(items: list[Any]) -> None:
    lines = [json.dumps(item).encode() for item in items]
    with tempfile.TemporaryDirectory() as tmp:
        path = write_jsonl(Path(tmp) / "r.jsonl", lines)  # type: ignore[arg-type]
        check_accounting(load_conversations(path), len(items))


def _is_record_line(line: bytes) -> bool:
    return bool(line.strip())


byte_lines = st.lists(
    # not a BOM, nor a UTF-16 "{" (a whole UTF-16 file is a file-level error, tested on its own)
    st.binary(max_size=40).filter(
        lambda b: b"\n" not in b and not b.startswith((b"\xef\xbb\xbf", b"\xff\xfe{\x00", b"\xfe\xff\x00{"))
    )
    | records.map(lambda r: json.dumps(r).encode()),
    min_size=1,
    max_size=10,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(byte_lines, st.booleans())
def test_arbitrary_bytes_as_jsonl_never_raise(lines: list[bytes], gzipped: bool) -> None:
    data = b"\n".join(lines)
    n_records = sum(_is_record_line(line) for line in lines)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("r.jsonl.gz" if gzipped else "r.jsonl")
        path.write_bytes(gzip.compress(data) if gzipped else data)
        if n_records == 0:
            with pytest.raises(ValueError, match="holds no records"):
                load_conversations(path)
            return
        check_accounting(load_conversations(path), n_records)


# ----------------------------------------------------------------------------------------------------------
# Damaged files: read as far as they go, the damage itself is one rejection
# ----------------------------------------------------------------------------------------------------------


def test_half_written_last_line_is_rejected_as_truncated(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(json.dumps(rec(1)).encode() + b"\n" + json.dumps(rec(2, SECRET)).encode()[:-9])
    convs = load_conversations(path)
    assert [c.id for c in convs] == ["1"]
    [rejection] = convs.rejected
    assert (rejection.index, rejection.code) == (1, "truncated")
    assert "the last line, has no newline" in rejection.reason and "cut short" in rejection.reason
    assert "4111" not in rejection.reason
    # a complete last line without a newline is an ordinary record
    path.write_bytes(json.dumps(rec(1)).encode() + b"\n" + json.dumps(rec(2)).encode())
    assert [c.id for c in load_conversations(path)] == ["1", "2"]


def test_truncated_gzip_keeps_the_records_before_the_cut(tmp_path: Path) -> None:
    data = b"".join(json.dumps(rec(i, f"text number {i}")).encode() + b"\n" for i in range(200))
    compressed = gzip.compress(data)
    path = tmp_path / "c.jsonl.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    convs = load_conversations(path)
    assert 0 < len(convs) < 200
    assert [c.id for c in convs] == [str(i) for i in range(len(convs))]
    [rejection] = convs.rejected
    assert rejection.code == "truncated" and rejection.index == len(convs)
    assert rejection.reason == f"line {len(convs) + 1}: the gzip stream ends early: the file is truncated and " \
        "what followed is lost"


def test_gzip_corrupt_in_the_middle_keeps_the_records_before(tmp_path: Path) -> None:
    data = b"".join(json.dumps(rec(i, f"text {i} " * 20)).encode() + b"\n" for i in range(3000))
    compressed = bytearray(gzip.compress(data))
    compressed[len(compressed) // 2 : len(compressed) // 2 + 64] = b"\xff" * 64
    path = tmp_path / "c.jsonl.gz"
    path.write_bytes(bytes(compressed))
    convs = load_conversations(path)
    assert len(convs) > 0
    assert convs.rejected[-1].code == "corrupt" and "corrupt from here on" in convs.rejected[-1].reason


def test_a_line_longer_than_any_conversation_is_skipped_unread(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [rec(1), rec(2, "a" * 100_000), rec(3)])
    convs = load_conversations(path, max_conversation_chars=100)
    assert [c.id for c in convs] == ["1", "3"]
    [rejection] = convs.rejected
    assert rejection.code == "too_large" and rejection.reason.startswith("line 2 is 100,0")
    assert "skipped unread" in rejection.reason


def test_raw_control_characters_inside_json_strings_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"id": 1, "user_id": "u", "text": "a\tb\x01c\x00d"}\n')
    [conv] = load_conversations(path)
    assert conv.messages[0].content == "a\tb\x01cd"  # NUL dropped, the rest kept as text


def test_a_utf16_file_is_a_file_error_naming_the_encoding(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes((json.dumps(rec(1)) + "\n").encode("utf-16"))
    with pytest.raises(ValueError, match="UTF-16"):
        load_conversations(path)


def test_a_latin1_line_is_rejected_with_how_to_re_encode(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [rec(1), json.dumps(rec(2, "café"), ensure_ascii=False).encode("latin-1")])
    [rejection] = load_conversations(path).rejected
    assert rejection.code == "encoding" and "iconv -f cp1252 -t utf-8" in rejection.reason


def test_a_number_too_long_for_python_rejects_its_line_only(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", ['{"id": ' + "9" * 5000 + ', "user_id": "u", "text": "x"}', rec(2)])
    convs = load_conversations(path)
    assert [c.id for c in convs] == ["2"]
    assert convs.rejected[0].code == "too_large" and "4,300 digits" in convs.rejected[0].reason


def test_records_nested_too_deeply_or_holding_themselves_are_rejected() -> None:
    deep: Any = "leaf"
    for _ in range(5000):
        deep = {"a": deep}
    looped = rec(2)
    looped["me"] = looped
    convs = load_conversations([rec(1, meta=deep), looped, rec(3)])
    assert [c.id for c in convs] == ["3"]
    assert [(r.index, r.code, r.id) for r in convs.rejected] == [(0, "too_deep", "1"), (1, "too_deep", "2")]
    convs = load_conversations(pd.DataFrame({"id": [1, 2], "user_id": ["u", "u"], "text": ["a", "b"], "m": [deep, 1]}))
    assert [r.code for r in convs.rejected] == ["too_deep"] and [c.id for c in convs] == ["2"]


def test_every_rejection_carries_a_code() -> None:
    from clio_lite.schema import REJECTION_CODES

    convs = load_conversations([{"id": 1, "text": "x"}, "junk", rec(2, ""), rec(3), rec(3)])
    assert [r.code for r in convs.rejected] == ["missing", "not_object", "empty", "duplicate"]
    assert all(r.code in REJECTION_CODES for r in convs.rejected)
    assert convs.rejected[0].to_dict() == {
        "index": 0, "id": "1", "code": "missing", "field": "user_id", "reason": convs.rejected[0].reason
    }


def test_write_rejections_writes_one_json_line_per_rejection_without_content(tmp_path: Path) -> None:
    from clio_lite.io import write_rejections

    convs = load_conversations([rec(1), {"id": 2, "text": SECRET}, rec(3, SECRET * 10_000), "x"])
    path = write_rejections(convs.rejected, tmp_path / "rejections.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["index"], r["id"], r["code"]) for r in rows] == [(1, "2", "missing"), (2, "3", "too_large"), (3, None,
                                                                                                            "not_object")]
    assert "4111" not in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["rejections.jsonl"]  # no temporary file left behind


def test_a_parquet_string_cell_that_is_not_utf8_rejects_its_row_only(tmp_path: Path) -> None:
    path = tmp_path / "c.parquet"
    pd.DataFrame({"id": [1, 2, 3], "user_id": ["u1", "MARKERX", "u3"], "text": ["a", "b", "c"]}).to_parquet(
        path, compression=None
    )
    data = path.read_bytes()
    assert data.count(b"MARKERX") >= 1  # in the dictionary page, and in the column's min/max statistics
    path.write_bytes(data.replace(b"MARKERX", b"MARKER\xff"))  # the same length: the file still opens
    convs = load_conversations(path)
    assert [c.id for c in convs] == ["1", "3"]
    [rejection] = convs.rejected
    assert (rejection.index, rejection.id, rejection.field, rejection.code) == (1, "2", "user_id", "encoding")
    assert rejection.reason == "the 'user_id' cell is not valid UTF-8 text"


# ----------------------------------------------------------------------------------------------------------
# Streaming
# ----------------------------------------------------------------------------------------------------------


def _traced_peak(read) -> int:
    tracemalloc.start()
    try:
        read()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_streaming_a_file_holds_one_chunk_and_an_id_index_not_the_file(tmp_path: Path) -> None:
    from fixtures.generate import generate_conversations

    records = generate_conversations(2400, seed=0)
    small = write_jsonl(tmp_path / "small.jsonl", records[:600])
    large = write_jsonl(tmp_path / "large.jsonl", records)

    def stream(path: Path) -> None:
        read = sum(chunk.n_read for chunk in iter_conversations(path, chunk_size=200))
        assert read == (600 if path == small else 2400)

    streamed = [_traced_peak(lambda path=path: stream(path)) for path in (small, large)]
    loaded = [_traced_peak(lambda path=path: load_conversations(path)) for path in (small, large)]
    # Per record more in the file, streaming keeps only the duplicate-id index (its id and a digest: ~200 bytes);
    # loading the file whole keeps every conversation (~3 kB each here).
    streamed_per_record = (streamed[1] - streamed[0]) / 1800
    loaded_per_record = (loaded[1] - loaded[0]) / 1800
    assert streamed_per_record < 400, streamed_per_record
    assert loaded_per_record > 5 * streamed_per_record, (loaded_per_record, streamed_per_record)


def test_chunks_cover_the_source_in_order_with_rejections_where_they_fall(tmp_path: Path) -> None:
    lines = [rec(i) for i in range(7)] + [{"id": 8, "text": "no user"}, rec(3), rec(3, "other text")]
    path = write_jsonl(tmp_path / "c.jsonl", lines)
    chunks = list(iter_conversations(path, chunk_size=4))
    assert [chunk.n_read for chunk in chunks] == [4, 4, 2]
    assert [[c.id for c in chunk] for chunk in chunks] == [["0", "1", "2", "3"], ["4", "5", "6"], []]
    assert [[(r.index, r.code) for r in chunk.rejected] for chunk in chunks] == [
        [], [(7, "missing")], [(8, "duplicate"), (9, "conflict")]
    ]
    assert all(chunk.source == str(path) for chunk in chunks)


def test_streaming_checks_the_file_at_the_call_and_an_empty_one_when_read(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        iter_conversations(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="chunk_size"):
        iter_conversations([rec(1)], chunk_size=0)
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"\n\n")
    chunks = iter_conversations(empty)
    with pytest.raises(ValueError, match="holds no records"):
        list(chunks)
    convs = load_conversations([rec(1)])
    assert list(iter_conversations(convs)) == [convs]
