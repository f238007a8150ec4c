"""Tests for record validation: ``clio_lite.schema.parse_record``."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from clio_lite.schema import (
    ROLE_ALIASES,
    ROLES,
    Conversation,
    Message,
    RecordError,
    parse_record,
    record_id,
)
from tests.strategies import json_values

SECRET = "my card number is 4111-1111-1111-1111"


def msgs(*pairs: tuple[str, Any]) -> list[dict[str, Any]]:
    return [{"role": role, "content": content} for role, content in pairs]


def rejected(record: Any, **kwargs: Any) -> RecordError:
    with pytest.raises(RecordError) as info:
        parse_record(record, **kwargs)
    assert info.value.reason
    return info.value


# ----------------------------------------------------------------------------------------------------------
# Accepted shapes
# ----------------------------------------------------------------------------------------------------------


def test_canonical_record_with_metadata() -> None:
    record = {
        "id": "c1",
        "user_id": "u1",
        "messages": msgs(("system", "be nice"), ("user", "hello"), ("assistant", "hi!")),
        "lang": "en",
        "model": "m-1",
    }
    conv = parse_record(record)
    assert conv == Conversation(
        "c1",
        "u1",
        (Message("system", "be nice"), Message("user", "hello"), Message("assistant", "hi!")),
        {"lang": "en", "model": "m-1"},
    )
    assert conv.user_text() == "hello"


def test_reserved_keys_do_not_go_to_metadata() -> None:
    record = {"id": 1, "user": 2, "user_id": 3, "messages": msgs(("user", "a")), "text": "t", "x": None}
    conv = parse_record(record)
    assert conv.metadata == {"x": None}
    assert conv.user_id == "3"  # user_id wins over user
    assert conv.messages == (Message("user", "a"),)  # messages win over text


@pytest.mark.parametrize("key", ["conversation", "conversations"])
def test_conversation_keys(key: str) -> None:
    conv = parse_record({"id": "a", "user_id": "u", key: msgs(("user", "q"), ("assistant", "r"))})
    assert [m.role for m in conv.messages] == ["user", "assistant"]
    assert key not in conv.metadata


def test_sharegpt_turns() -> None:
    record = {
        "id": "s",
        "user": "u",
        "conversations": [
            {"from": "system", "value": "sys"},
            {"from": "human", "value": "question"},
            {"from": "gpt", "value": "answer"},
        ],
    }
    conv = parse_record(record)
    assert conv.messages == (
        Message("system", "sys"),
        Message("user", "question"),
        Message("assistant", "answer"),
    )
    assert conv.user_id == "u"


def test_openai_multipart_content() -> None:
    content = [
        {"type": "text", "text": "first"},
        {"type": "image_url", "image_url": {"url": "http://x/y.png"}},
        {"type": "text", "text": "  second  "},
    ]
    conv = parse_record({"id": 1, "user_id": 1, "messages": [{"role": "user", "content": content}]})
    assert conv.messages[0].content == "first\nsecond"
    odd_parts = [
        "plain",
        {"text": "untyped"},
        {"type": ["weird"], "text": "skipped"},
        {"type": "text", "text": None},
    ]
    conv = parse_record({"id": 1, "user_id": 1, "messages": [{"role": "user", "content": odd_parts}]})
    assert conv.messages[0].content == "plain\nuntyped"


def test_multipart_without_text_is_an_empty_message() -> None:
    image = [{"type": "image_url", "image_url": {"url": "u"}}]
    conv = parse_record(
        {"id": 1, "user_id": 1, "messages": msgs(("user", "look"), ("assistant", image), ("assistant", None))}
    )
    assert conv.messages[1:] == (Message("assistant", ""), Message("assistant", ""))
    # ...but a user turn made only of an image leaves no user text: rejected
    err = rejected({"id": 1, "user_id": 1, "messages": msgs(("user", image))})
    assert err.field == "messages"
    assert "no user message with text" in err.reason


def test_plain_text_field() -> None:
    conv = parse_record({"id": 9, "user_id": 7, "text": "  just a question\n", "source": "web"})
    assert conv == Conversation("9", "7", (Message("user", "just a question"),), {"source": "web"})


def test_int_ids_become_strings_and_integral_floats_lose_their_point() -> None:
    conv = parse_record({"id": 12, "user_id": 3.0, "text": "x"})
    assert (conv.id, conv.user_id) == ("12", "3")


def test_roles_are_case_insensitive_and_aliases_map() -> None:
    conv = parse_record(
        {
            "id": 1,
            "user_id": 1,
            "messages": msgs((" USER ", "a"), ("Assistant", "b"), ("Human", "c"), ("GPT", "d")),
        }
    )
    assert [m.role for m in conv.messages] == ["user", "assistant", "user", "assistant"]
    assert all(alias_target in ROLES for alias_target in ROLE_ALIASES.values())


def test_content_is_cleaned_of_nul_and_surrounding_whitespace() -> None:
    conv = parse_record({"id": 1, "user_id": 1, "messages": msgs(("user", "\n\t he\x00llo\x00  "))})
    assert conv.messages[0].content == "hello"
    # a message of only NULs and spaces is empty, so this user turn has no text
    err = rejected({"id": 1, "user_id": 1, "messages": msgs(("user", " \x00 "))})
    assert "no user message with text" in err.reason


def test_message_at_the_limit_is_accepted() -> None:
    conv = parse_record({"id": 1, "user_id": 1, "messages": msgs(("user", "x" * 50))}, max_message_chars=50)
    assert len(conv.messages[0].content) == 50


# ----------------------------------------------------------------------------------------------------------
# Rejections
# ----------------------------------------------------------------------------------------------------------

OK_MESSAGES = msgs(("user", "hello"))

REJECTIONS = [
    pytest.param({"user_id": "u", "messages": OK_MESSAGES}, "id", "missing field 'id'", id="missing-id"),
    pytest.param(
        {"id": None, "user_id": "u", "messages": OK_MESSAGES}, "id", "missing field 'id'", id="null-id"
    ),
    pytest.param({"id": "  ", "user_id": "u", "messages": OK_MESSAGES}, "id", "empty", id="empty-id"),
    pytest.param({"id": [1], "user_id": "u", "messages": OK_MESSAGES}, "id", "got list", id="list-id"),
    pytest.param({"id": True, "user_id": "u", "messages": OK_MESSAGES}, "id", "got bool", id="bool-id"),
    pytest.param({"id": 1, "messages": OK_MESSAGES}, "user_id", "count distinct users", id="missing-user"),
    pytest.param({"id": 1, "user_id": "", "messages": OK_MESSAGES}, "user_id", "empty", id="empty-user"),
    pytest.param(
        {"id": 1, "user_id": {"name": "x"}, "messages": OK_MESSAGES}, "user_id", "got object", id="dict-user"
    ),
    pytest.param({"id": 1, "user_id": "u"}, "messages", "missing field 'messages'", id="no-messages"),
    pytest.param({"id": 1, "user_id": "u", "messages": None}, "messages", "is null", id="null-messages"),
    pytest.param(
        {"id": 1, "user_id": "u", "messages": "hello"}, "messages", "must be a list", id="messages-not-list"
    ),
    pytest.param(
        {"id": 1, "user_id": "u", "conversations": {"a": 1}},
        "conversations",
        "must be a list",
        id="conversations-not-list",
    ),
    pytest.param(
        {"id": 1, "user_id": "u", "messages": []}, "messages", "empty message list", id="empty-list"
    ),
    pytest.param(
        {"id": 1, "user_id": "u", "messages": [*OK_MESSAGES, "hi"]},
        "messages[1]",
        "message must be an object with 'role' and 'content' (or ShareGPT 'from' and 'value'), got string",
        id="message-not-mapping",
    ),
    pytest.param(
        {"id": 1, "user_id": "u", "messages": [{"content": "x"}]},
        "messages[0].role",
        "missing field 'role'",
        id="missing-role",
    ),
    pytest.param(
        {"id": 1, "user_id": "u", "messages": [*OK_MESSAGES, {"role": 3, "content": "x"}]},
        "messages[1].role",
        "role must be a string, got integer",
        id="role-not-string",
    ),
    pytest.param(
        {"id": 1, "user_id": "u", "messages": [{"role": "user"}]},
        "messages[0].content",
        "missing field 'content'",
        id="missing-content",
    ),
    pytest.param(
        {"id": 1, "user_id": "u", "messages": [*OK_MESSAGES, *OK_MESSAGES, {"role": "user", "content": 42}]},
        "messages[2].content",
        "got integer",
        id="int-content",
    ),
    pytest.param(
        {"id": 1, "user_id": "u", "messages": [{"role": "user", "content": {"text": "x"}}]},
        "messages[0].content",
        "got object",
        id="dict-content",
    ),
    pytest.param(
        {"id": 1, "user_id": "u", "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
        "messages[0].content[0].text",
        "must be a string, got integer",
        id="text-part-not-string",
    ),
    pytest.param(
        {"id": 1, "user_id": "u", "messages": msgs(("system", "s"), ("assistant", "a"))},
        "messages",
        "no user message with text",
        id="no-user-message",
    ),
    pytest.param(
        {"id": 1, "user_id": "u", "conversation": msgs(("user", "   "))},
        "conversation",
        "no user message with text",
        id="blank-user-message",
    ),
    pytest.param({"id": 1, "user_id": "u", "text": ""}, "text", "no user message with text", id="empty-text"),
    pytest.param(
        {"id": 1, "user_id": "u", "text": 5}, "text", "must be a string, got integer", id="int-text"
    ),
    pytest.param(
        ["id", 1], None, "record must be an object (JSON object or dict), got list", id="record-not-mapping"
    ),
]


@pytest.mark.parametrize(("record", "field", "fragment"), REJECTIONS)
def test_rejection_reasons(record: Any, field: str | None, fragment: str) -> None:
    err = rejected(record)
    assert err.field == field
    assert fragment in err.reason
    assert str(err) == (f"{field}: {err.reason}" if field else err.reason)


def test_unknown_role_names_the_role_and_the_allowed_ones() -> None:
    err = rejected(
        {
            "id": 1,
            "user_id": "u",
            "messages": [*OK_MESSAGES, *OK_MESSAGES, *OK_MESSAGES, {"role": "narrator", "content": "x"}],
        }
    )
    assert err.field == "messages[3].role"
    assert "'narrator'" in err.reason
    for role in ROLES:
        assert role in err.reason
    for alias in ("human", "gpt", "bot"):
        assert alias in err.reason


def test_unknown_role_that_does_not_look_like_a_role_is_not_quoted() -> None:
    err = rejected({"id": 1, "user_id": "u", "messages": [{"role": SECRET, "content": "x"}, *OK_MESSAGES]})
    assert err.field == "messages[0].role"
    assert "4111" not in err.reason
    assert f"(a {len(SECRET)}-character string, not shown)" in err.reason


def test_unknown_sharegpt_role_names_the_from_field() -> None:
    err = rejected({"id": 1, "user_id": "u", "conversations": [{"from": "robot", "value": "x"}]})
    assert err.field == "conversations[0].from"
    assert "'robot'" in err.reason


def test_overlong_message_says_length_limit_and_how_to_raise_it() -> None:
    err = rejected(
        {"id": 1, "user_id": "u", "messages": msgs(("user", "hi"), ("assistant", "y" * 1001))},
        max_message_chars=1000,
    )
    assert err.field == "messages[1].content"
    assert "1,001 characters" in err.reason
    assert "1,000" in err.reason
    assert "max_message_chars" in err.reason
    err = rejected({"id": 1, "user_id": "u", "text": "z" * 11}, max_message_chars=10)
    assert err.field == "text"
    assert "11 characters" in err.reason


@pytest.mark.parametrize("limit", [0, -5, 2.5, True, "100"])
def test_bad_max_message_chars_is_a_usage_error(limit: Any) -> None:
    with pytest.raises(ValueError, match="max_message_chars"):
        parse_record({"id": 1, "user_id": 1, "text": "x"}, max_message_chars=limit)


@pytest.mark.parametrize(
    "record",
    [
        {"id": 1, "messages": msgs(("user", SECRET))},
        {"id": 1, "user_id": 1, "messages": msgs(("assistant", SECRET))},
        {"id": 1, "user_id": 1, "messages": msgs(("user", SECRET), ("oracle", SECRET))},
        {"id": 1, "user_id": 1, "messages": msgs(("user", SECRET * 10))},
        {
            "id": 1,
            "user_id": 1,
            "messages": [{"role": "user", "content": [{"type": "text", "text": [SECRET]}]}],
        },
        {"id": 1, "user_id": 1, "messages": SECRET},
        {"id": 1, "user_id": 1, "messages": [SECRET]},
    ],
)
def test_reasons_never_contain_content(record: dict[str, Any]) -> None:
    err = rejected(record, max_message_chars=200)
    assert "4111" not in err.reason
    assert "4111" not in str(err)


def test_record_id() -> None:
    assert record_id({"id": 5, "user_id": None}) == "5"
    assert record_id({"id": " a "}) == "a"
    assert record_id({"id": ""}) is None
    assert record_id({"id": [1]}) is None
    assert record_id({"user_id": 1}) is None
    assert record_id("not a record") is None


# ----------------------------------------------------------------------------------------------------------
# Properties
# ----------------------------------------------------------------------------------------------------------

# Mostly-valid values first (hypothesis favours earlier branches), so that some records are accepted.
role_values = (
    st.sampled_from(["user", "User", " human ", "assistant", "GPT", "system", "narrator", ""]) | json_values
)
text_values = st.text(alphabet=st.characters(codec="utf-8") | st.just("\x00"), max_size=30)
content_values = (
    text_values
    | st.lists(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["text", "image_url"]) | json_values, "text": text_values}
        )
    )
    | json_values
)
message_values = (
    st.fixed_dictionaries({"role": role_values, "content": content_values})
    | st.fixed_dictionaries({"from": role_values, "value": content_values})
    | json_values
)
record_keys = st.sampled_from(
    ["id", "user_id", "user", "messages", "conversation", "conversations", "text", "lang"]
) | st.text(max_size=8)
plausible_records = st.fixed_dictionaries(
    {"id": st.integers() | st.text(max_size=5), "user_id": st.integers() | st.text(max_size=5)},
    optional={
        "messages": st.lists(message_values, min_size=1, max_size=4),
        "conversations": st.lists(message_values, max_size=4) | json_values,
        "text": st.text(max_size=10) | json_values,
        "meta": json_values,
    },
)
any_records = plausible_records | st.dictionaries(record_keys, json_values, max_size=6) | json_values


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_records)
def test_parse_record_accepts_or_raises_record_error(record: Any) -> None:
    try:
        conv = parse_record(record, max_message_chars=25)
    except RecordError as err:
        assert isinstance(err.reason, str) and err.reason.strip()
        assert err.field is None or isinstance(err.field, str)
        event("rejected")
        return
    event("accepted")
    assert isinstance(conv, Conversation)
    assert conv.id and conv.user_id
    assert any(m.role == "user" and m.content for m in conv.messages)
    for m in conv.messages:
        assert m.role in ROLES
        assert "\x00" not in m.content
        assert m.content == m.content.strip()
        assert len(m.content) <= 25
    assert not set(conv.metadata) & {
        "id",
        "user_id",
        "user",
        "messages",
        "conversation",
        "conversations",
        "text",
    }


# ----------------------------------------------------------------------------------------------------------
# Limits and reason codes
# ----------------------------------------------------------------------------------------------------------


def test_a_conversation_over_its_character_limit_is_rejected_with_how_to_raise_it() -> None:
    record = {"id": 1, "user_id": 1, "messages": msgs(("user", "x" * 60), ("assistant", "y" * 60))}
    err = rejected(record, max_conversation_chars=100)
    assert (err.field, err.code) == ("messages", "too_large")
    assert "120 characters, over the limit of 100" in err.reason and "max_conversation_chars=240" in err.reason
    assert parse_record(record, max_conversation_chars=120).id == "1"


def test_too_many_messages_is_rejected_before_reading_them() -> None:
    from clio_lite.schema import MAX_MESSAGES

    err = rejected({"id": 1, "user_id": 1, "messages": [{"role": "user", "content": "x"}] * (MAX_MESSAGES + 1)})
    assert err.code == "too_large" and f"{MAX_MESSAGES + 1:,} messages" in err.reason


@pytest.mark.parametrize("value", ["i" * 257, 10**300, 10**5000, 1e300], ids=["str", "int", "huge-int", "float"])
def test_an_overlong_id_is_rejected_and_never_echoed(value: Any) -> None:
    from clio_lite.schema import MAX_ID_CHARS

    for key in ("id", "user_id"):
        err = rejected({"id": 1, "user_id": 1, "text": "x", key: value})
        assert (err.field, err.code) == (key, "too_large")
        assert str(MAX_ID_CHARS) in err.reason and len(err.reason) < 100
    assert record_id({"id": value}) is None
    assert parse_record({"id": "i" * 256, "user_id": 1, "text": "x"}).id == "i" * 256


def test_nesting_is_limited_and_a_record_holding_itself_is_rejected() -> None:
    from clio_lite.schema import MAX_NESTING

    def deep(levels: int) -> Any:
        value: Any = 1
        for _ in range(levels):
            value = [value]
        return value

    assert parse_record({"id": 1, "user_id": 1, "text": "x", "m": deep(MAX_NESTING - 2)}).metadata
    err = rejected({"id": 1, "user_id": 1, "text": "x", "m": deep(MAX_NESTING)})
    assert err.code == "too_deep"
    looped: dict[str, Any] = {"id": 1, "user_id": 1, "text": "x"}
    looped["m"] = [looped]
    assert rejected(looped).code == "too_deep"


def test_lone_surrogates_in_ids_and_content_become_question_marks() -> None:
    conv = parse_record({"id": "a\ud800", "user_id": "\udfffu", "text": "hi \ud83d there"})
    assert (conv.id, conv.user_id, conv.messages[0].content) == ("a?", "?u", "hi ? there")


@pytest.mark.parametrize(
    ("record", "code"),
    [
        ({"user_id": 1, "text": "x"}, "missing"),
        ({"id": 1, "user_id": [1], "text": "x"}, "type"),
        ({"id": " ", "user_id": 1, "text": "x"}, "empty"),
        ({"id": 1, "user_id": 1, "messages": []}, "empty"),
        ({"id": 1, "user_id": 1, "messages": [{"role": "narrator", "content": "x"}]}, "role"),
        ({"id": 1, "user_id": 1, "messages": [{"role": "user"}]}, "missing"),
        ({"id": 1, "user_id": 1, "text": "x" * 11}, "too_large"),
        ([1], "not_object"),
    ],
)
def test_each_rejection_has_the_code_of_its_kind(record: Any, code: str) -> None:
    from clio_lite.schema import REJECTION_CODES

    err = rejected(record, max_message_chars=10)
    assert err.code == code and code in REJECTION_CODES
