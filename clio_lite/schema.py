"""Value types for conversations, and the record-level validation that turns raw records into them.

A raw record is whatever a reader produced (a dict from a JSONL line, a DataFrame row, an element of a
list). ``parse_record`` either returns a :class:`Conversation` or raises :class:`RecordError` naming the field
and what was expected. Readers turn each ``RecordError`` into a :class:`Rejection`, which carries the record's
position, its id when one could be read, and the reason, and never any of its content.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant", "tool")

#: Role names from other chat formats (ShareGPT, Gemini, older OpenAI) and the :data:`ROLES` entry each means.
#: Matching is case-insensitive and ignores surrounding whitespace.
ROLE_ALIASES: Mapping[str, str] = {
    "human": "user",
    "gpt": "assistant",
    "bot": "assistant",
    "chatgpt": "assistant",
    "model": "assistant",
    "developer": "system",
    "function": "tool",
}

#: Keys that may hold the list of turns, in order of preference.
MESSAGE_KEYS = ("messages", "conversation", "conversations")
#: Keys that may hold the user id, in order of preference.
USER_KEYS = ("user_id", "user")
#: Keys that never go to ``Conversation.metadata``.
RESERVED_KEYS = frozenset({"id", *USER_KEYS, *MESSAGE_KEYS, "text"})
#: Content-part types (OpenAI chat and Responses APIs) whose ``text`` is kept; other parts are ignored.
TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})

DEFAULT_MAX_MESSAGE_CHARS = 100_000
#: The longest conversation accepted by default, in characters over all its messages.
DEFAULT_MAX_CONVERSATION_CHARS = 1_000_000
#: The most messages one conversation may have.
MAX_MESSAGES = 10_000
#: The longest id or user id, in characters; a longer one is rejected and never echoed in a rejection.
MAX_ID_CHARS = 256
#: How deeply lists and objects may nest in one record (the canonical shape needs 4 levels).
MAX_NESTING = 64

#: Every :attr:`Rejection.code`, and what it means.
REJECTION_CODES: Mapping[str, str] = {
    "encoding": "the bytes of the record are not valid UTF-8",
    "json": "the record is not valid JSON",
    "truncated": "the record was cut short: a half-written last line or a truncated gzip stream",
    "corrupt": "the compressed stream is corrupt from this record on, or a Parquet cell cannot be read",
    "not_object": "the record is not an object (a JSON array, a number, a string, ...)",
    "missing": "a required field is missing or null",
    "type": "a field has the wrong type",
    "empty": "an id is empty, a message list is empty, or no user message has text",
    "role": "a message has an unknown role",
    "too_large": "a message, the conversation, an id or the line is over its size limit",
    "too_deep": "lists and objects nest more than MAX_NESTING levels deep (or the record contains itself)",
    "duplicate": "the same conversation as an earlier record (same id, same content): kept once",
    "conflict": "an earlier record has the same id but different content: the first one is kept",
    "internal": "validation failed unexpectedly: a clio_lite bug, please report it",
}


@dataclass(frozen=True)
class Message:
    """One turn of a conversation."""

    role: str
    content: str


@dataclass(frozen=True)
class Conversation:
    """A validated conversation: a stable id, the user who had it, its turns, and any other metadata."""

    id: str
    user_id: str
    messages: tuple[Message, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def user_text(self) -> str:
        """The user's turns joined by blank lines: what clio_lite analyses by default."""
        return "\n\n".join(m.content for m in self.messages if m.role == "user")


@dataclass(frozen=True)
class Rejection:
    """Why one input record was not accepted. Holds no content of the record, only where it was and why."""

    index: int
    reason: str
    field: str | None = None
    id: str | None = None
    #: One of :data:`REJECTION_CODES`: the kind of problem, for counting and filtering.
    code: str = "type"

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "id": self.id, "code": self.code, "field": self.field, "reason": self.reason}


class RecordError(ValueError):
    """A record that cannot become a Conversation; ``field`` names the offending field, ``code`` the kind of
    problem (one of :data:`REJECTION_CODES`)."""

    def __init__(self, field: str | None, reason: str, code: str = "type"):
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason
        self.code = code


class Conversations(Sequence[Conversation]):
    """The accepted conversations of one source, with the rejected records and their reasons.

    Behaves as a read-only list of :class:`Conversation`. ``rejected`` lists a :class:`Rejection` for every
    record that was not accepted, so that ``n_read == len(self) + len(self.rejected)`` always holds.
    """

    def __init__(
        self,
        conversations: Sequence[Conversation],
        rejected: Sequence[Rejection] = (),
        source: str = "<memory>",
    ):
        self._conversations = list(conversations)
        self.rejected = list(rejected)
        self.source = source

    def __len__(self) -> int:
        return len(self._conversations)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return Conversations(self._conversations[index], (), self.source)
        return self._conversations[index]

    def __iter__(self) -> Iterator[Conversation]:
        return iter(self._conversations)

    @property
    def n_read(self) -> int:
        """How many records the source held: accepted plus rejected."""
        return len(self._conversations) + len(self.rejected)

    def __repr__(self) -> str:
        return f"Conversations({len(self)} accepted, {len(self.rejected)} rejected, source={self.source!r})"


# ----------------------------------------------------------------------------------------------------------
# Record validation
# ----------------------------------------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    """A JSON-ish name for the type of ``value``, for rejection reasons (never the value itself)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, numbers.Integral):
        return "integer"
    if isinstance(value, numbers.Real):
        return "number"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "list"
    return type(value).__name__


# An unknown role is quoted in the reason only if it looks like a role name, so content put in the role
# field by mistake never reaches a rejection.
_ROLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,23}")


def _clean_text(text: str) -> str:
    """Drop NUL characters, replace unencodable lone surrogates with '?' and strip surrounding whitespace."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text.strip()


def _is_missing(value: Any) -> bool:
    """None or a float NaN: how JSON nulls and empty DataFrame cells arrive."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _identifier(value: Any, name: str) -> str:
    """An id or user id as a non-empty string; ints and integral floats (as pandas makes them) pass."""
    if isinstance(value, bool):
        raise RecordError(name, f"'{name}' must be a string or an integer, got bool")
    if isinstance(value, numbers.Integral) or (
        isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer()
    ):
        # bit_length bounds the digits before str() is asked to make them (it refuses past 4300 digits)
        if abs(int(value)).bit_length() > 4 * MAX_ID_CHARS:
            raise RecordError(name, f"'{name}' is an integer of over {MAX_ID_CHARS} digits", "too_large")
        text = str(int(value))
    elif isinstance(value, str):
        text = _clean_text(value)
    else:
        raise RecordError(name, f"'{name}' must be a string or an integer, got {_type_name(value)}")
    if not text:
        raise RecordError(name, f"'{name}' is empty; every conversation needs a non-empty {name}", "empty")
    if len(text) > MAX_ID_CHARS:
        raise RecordError(
            name, f"'{name}' is {len(text):,} characters, over the limit of {MAX_ID_CHARS}", "too_large"
        )
    return text


def record_id(record: Any) -> str | None:
    """The id of a raw record if one can be read, else ``None``; never raises.

    Readers use it to label a :class:`Rejection` with the record's id.

    Examples
    --------
    >>> record_id({"id": 7})
    '7'
    >>> record_id(["not", "a", "record"]) is None
    True
    """
    if not isinstance(record, Mapping) or _is_missing(record.get("id")):
        return None
    try:
        return _identifier(record["id"], "id")
    except RecordError:
        return None


def _pick(record: Mapping, keys: Sequence[str]) -> tuple[str | None, Any]:
    """The first of ``keys`` present with a non-missing value as ``(key, value)``, else ``(None, None)``."""
    for key in keys:
        if key in record and not _is_missing(record[key]):
            return key, record[key]
    return None, None


def _parse_role(message: Mapping, where: str) -> str:
    key, raw = _pick(message, ("role", "from"))
    if key is None:
        raise RecordError(f"{where}.role", "missing field 'role' (or ShareGPT 'from')", "missing")
    if not isinstance(raw, str):
        raise RecordError(f"{where}.{key}", f"role must be a string, got {_type_name(raw)}")
    role = raw.strip().lower()
    role = ROLE_ALIASES.get(role, role)
    if role not in ROLES:
        allowed = ", ".join(ROLES)
        aliases = ", ".join(f"{a}->{r}" for a, r in ROLE_ALIASES.items())
        shown = repr(raw) if _ROLE_NAME.fullmatch(raw) else f"(a {len(raw)}-character string, not shown)"
        raise RecordError(
            f"{where}.{key}",
            f"unknown role {shown}; allowed roles are {allowed} (case-insensitive), or the aliases {aliases}",
            "role",
        )
    return role


def _is_text_part(part: Mapping) -> bool:
    kind = part.get("type", "text")
    return isinstance(kind, str) and kind in TEXT_PART_TYPES and "text" in part


def _parse_content(message: Mapping, where: str) -> str:
    key, raw = _pick(message, ("content", "value"))
    if key is None:
        # explicitly null, e.g. an assistant turn that only calls tools
        if "content" in message or "value" in message:
            return ""
        raise RecordError(f"{where}.content", "missing field 'content' (or ShareGPT 'value')", "missing")
    if isinstance(raw, str):
        return _clean_text(raw)
    if isinstance(raw, list | tuple):
        parts: list[str] = []
        for j, part in enumerate(raw):
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping) and _is_text_part(part):
                text = part["text"]
                if _is_missing(text):
                    continue
                if not isinstance(text, str):
                    raise RecordError(
                        f"{where}.{key}[{j}].text", f"text part must be a string, got {_type_name(text)}"
                    )
                parts.append(text)
            # any other part (image_url, input_audio, file, ...) is ignored: clio_lite analyses text only
        return "\n".join(c for c in map(_clean_text, parts) if c)
    raise RecordError(
        f"{where}.{key}",
        f"content must be a string or a list of content parts like {{'type': 'text', 'text': ...}}, "
        f"got {_type_name(raw)}",
    )


def _parse_messages(raw: Any, key: str, max_message_chars: int) -> tuple[Message, ...]:
    if not isinstance(raw, list | tuple):
        raise RecordError(
            key, f"'{key}' must be a list of {{'role', 'content'}} objects, got {_type_name(raw)}"
        )
    if not raw:
        raise RecordError(key, f"empty message list: '{key}' holds no messages", "empty")
    if len(raw) > MAX_MESSAGES:
        raise RecordError(key, f"{len(raw):,} messages, over the limit of {MAX_MESSAGES:,}", "too_large")
    messages = []
    for i, item in enumerate(raw):
        where = f"{key}[{i}]"
        if not isinstance(item, Mapping):
            raise RecordError(
                where,
                f"message must be an object with 'role' and 'content' (or ShareGPT 'from' and 'value'), "
                f"got {_type_name(item)}",
            )
        role = _parse_role(item, where)
        content = _parse_content(item, where)
        _check_length(content, f"{where}.content", max_message_chars)
        messages.append(Message(role, content))
    return tuple(messages)


def _check_length(content: str, where: str, max_message_chars: int) -> None:
    if len(content) > max_message_chars:
        raise RecordError(
            where,
            f"message is {len(content):,} characters, over the limit of {max_message_chars:,}; "
            f"pass a larger max_message_chars (e.g. max_message_chars={2 * len(content)}) to accept it",
            "too_large",
        )


def _check_nesting(record: Any) -> None:
    """Reject records whose lists and objects nest deeper than MAX_NESTING, or that contain themselves.

    Iterative, so that no record can exhaust the interpreter's stack, and stops at the first level too deep.
    """
    stack: list[tuple[Any, int]] = [(record, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, Mapping):
            children = value.values()
        elif isinstance(value, list | tuple):
            children = value
        else:
            continue
        if depth > MAX_NESTING:
            raise RecordError(
                None,
                f"lists and objects nest more than {MAX_NESTING} levels deep (or the record contains itself)",
                "too_deep",
            )
        stack.extend((child, depth + 1) for child in children if isinstance(child, Mapping | list | tuple))


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def parse_record(
    record: Mapping,
    *,
    max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS,
    max_conversation_chars: int = DEFAULT_MAX_CONVERSATION_CHARS,
) -> Conversation:
    """Validate one raw record and turn it into a :class:`Conversation`.

    Accepted shapes:

    * canonical ``{"id", "user_id", "messages": [{"role", "content"}, ...], ...}``;
    * ``conversation`` or ``conversations`` instead of ``messages``;
    * ShareGPT turns ``{"from": "human" | "gpt" | "system", "value": ...}`` (see :data:`ROLE_ALIASES`);
    * OpenAI multi-part content ``[{"type": "text", "text": ...}, ...]``: text parts are joined with newlines,
      other parts (images, audio, ...) are ignored;
    * a plain ``text`` field, which becomes a single user message.

    ``id`` and ``user_id`` (or ``user``) may be strings or integers and become strings. Roles match
    case-insensitively; content loses NUL characters and surrounding whitespace. Every key other than
    ``id``, ``user_id``, ``user``, ``messages``, ``conversation``, ``conversations`` and ``text`` goes to
    ``metadata``; keys whose value is null are kept there as ``None``.

    Limits, each rejecting the record with code ``"too_large"`` or ``"too_deep"``: a message of more than
    ``max_message_chars`` characters, a conversation of more than ``max_conversation_chars`` characters over all
    its messages, more than :data:`MAX_MESSAGES` messages, an id or user id of more than :data:`MAX_ID_CHARS`
    characters, lists and objects nested more than :data:`MAX_NESTING` levels.

    Parameters
    ----------
    record
        One raw record, e.g. a dict decoded from a JSONL line.
    max_message_chars
        The longest message accepted, in characters after cleaning.
    max_conversation_chars
        The longest conversation accepted, in characters over all its messages after cleaning.

    Returns
    -------
    Conversation
        The validated conversation.

    Raises
    ------
    RecordError
        If the record cannot be used; ``field`` names the offending field (``"id"``, ``"user_id"``,
        ``"messages[3].role"``, ...) and ``reason`` says what was expected. Reasons never quote message
        content.

    Examples
    --------
    >>> conv = parse_record({"id": 1, "user": "u1", "conversations": [{"from": "human", "value": " hi "}]})
    >>> conv.id, conv.user_id, conv.messages[0]
    ('1', 'u1', Message(role='user', content='hi'))
    >>> try:
    ...     parse_record({"id": "a", "text": "hello"})
    ... except RecordError as err:
    ...     err.field
    'user_id'
    """
    _check_positive("max_message_chars", max_message_chars)
    _check_positive("max_conversation_chars", max_conversation_chars)
    if not isinstance(record, Mapping):
        raise RecordError(
            None, f"record must be an object (JSON object or dict), got {_type_name(record)}", "not_object"
        )
    _check_nesting(record)

    if _is_missing(record.get("id")):
        raise RecordError(
            "id", "missing field 'id': every conversation needs a stable id (string or int)", "missing"
        )
    conv_id = _identifier(record["id"], "id")

    user_key, user_raw = _pick(record, USER_KEYS)
    if user_key is None:
        raise RecordError(
            "user_id",
            "missing field 'user_id' (or 'user'): user ids are needed to count distinct users per cluster, "
            "which is what keeps small clusters out of a release; rename your user column to 'user_id'",
            "missing",
        )
    user_id = _identifier(user_raw, "user_id")

    msg_key, msg_raw = _pick(record, MESSAGE_KEYS)
    if msg_key is not None:
        messages = _parse_messages(msg_raw, msg_key, max_message_chars)
        no_text_field = msg_key
    elif not _is_missing(record.get("text")):
        text = record["text"]
        if not isinstance(text, str):
            raise RecordError("text", f"'text' must be a string, got {_type_name(text)}")
        content = _clean_text(text)
        _check_length(content, "text", max_message_chars)
        messages = (Message("user", content),)
        no_text_field = "text"
    else:
        present = [k for k in (*MESSAGE_KEYS, "text") if k in record]
        if present:
            raise RecordError(present[0], f"'{present[0]}' is null, expected a list of messages", "missing")
        raise RecordError(
            "messages",
            "missing field 'messages' (or 'conversation', 'conversations', or a plain 'text' field)",
            "missing",
        )

    total = sum(len(m.content) for m in messages)
    if total > max_conversation_chars:
        raise RecordError(
            no_text_field,
            f"conversation is {total:,} characters, over the limit of {max_conversation_chars:,}; pass a larger "
            f"max_conversation_chars (e.g. max_conversation_chars={2 * total}) to accept it",
            "too_large",
        )
    if not any(m.role == "user" and m.content for m in messages):
        raise RecordError(
            no_text_field,
            "no user message with text: clio_lite analyses what users wrote, so a conversation needs at "
            "least one non-empty user turn",
            "empty",
        )

    metadata = {k: v for k, v in record.items() if k not in RESERVED_KEYS}
    return Conversation(conv_id, user_id, messages, metadata)
