"""Tests for the synthetic conversation generator in ``fixtures/`` and the committed demo sample."""

from __future__ import annotations

import gzip
import random
import re
import statistics
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from fixtures.generate import (
    ENTITY_TYPES,
    generate_conversations,
    luhn_valid,
    main,
    read_jsonl_gz,
    to_jsonl_gz_bytes,
)
from fixtures.taxonomy import CATEGORIES, SHARED_SLOTS, iter_leaves

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "sample.jsonl.gz"
AFFECTIVE = {c.name for c in CATEGORIES if c.affective}
REQUIRED_TOPICS = {
    "python_debugging",
    "sql_queries",
    "web_javascript",
    "git_version_control",
    "email_writing",
    "essays",
    "creative_fiction",
    "math_homework",
    "history",
    "language_learning",
    "travel_planning",
    "health_questions",
    "cooking",
    "personal_finance",
    "career",
    "interpersonal_advice",
    "coaching",
    "emotional_support",
    "companionship",
    "roleplay",
}

Record = dict[str, Any]


@pytest.fixture(scope="module")
def sample() -> list[Record]:
    return generate_conversations(4000, seed=0)


@pytest.fixture(scope="module")
def small() -> list[Record]:
    return generate_conversations(1500, seed=11)


def _user_turns(record: Record) -> list[str]:
    return [m["content"] for m in record["messages"] if m["role"] == "user"]


# ----------------------------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_records_and_bytes() -> None:
    a, b = generate_conversations(300, seed=7), generate_conversations(300, seed=7)
    assert a == b
    assert to_jsonl_gz_bytes(a) == to_jsonl_gz_bytes(b)


def test_different_seeds_differ() -> None:
    a, b = generate_conversations(300, seed=7), generate_conversations(300, seed=8)
    assert [r["messages"] for r in a] != [r["messages"] for r in b]
    assert sum(x["messages"] == y["messages"] for x, y in zip(a, b, strict=True)) < 30


def test_global_random_state_is_untouched() -> None:
    random.seed(1234)
    expected = random.random()
    random.seed(1234)
    generate_conversations(50, seed=3)
    assert random.random() == expected


def test_pii_share_changes_only_the_pii() -> None:
    clean = generate_conversations(400, seed=5, pii_share=0.0)
    dirty = generate_conversations(400, seed=5, pii_share=0.3)
    assert not any(r["pii"] for r in clean)
    untouched = [(c, d) for c, d in zip(clean, dirty, strict=True) if not d["pii"]]
    assert len(untouched) == 400 - 120
    assert all(c == d for c, d in untouched)


# ----------------------------------------------------------------------------------------------------- shape


def test_record_shape(small: list[Record]) -> None:
    assert len(small) == 1500
    for r in small:
        assert set(r) == {"id", "user_id", "messages", "labels", "pii", "created_at"}
        assert re.fullmatch(r"conv-\d{6}", r["id"])
        assert re.fullmatch(r"user-\d{4}", r["user_id"])
        roles = [m["role"] for m in r["messages"]]
        assert roles == ["user", "assistant"] * (len(roles) // 2) and roles
        for m in r["messages"]:
            assert set(m) == {"role", "content"}
            assert isinstance(m["content"], str) and m["content"].strip()
            assert not re.search(r"\{\w+\}", m["content"]), m["content"]
        assert set(r["labels"]) == {"category", "topic", "subtopic"}
        for p in r["pii"]:
            assert set(p) == {"entity_type", "value", "message_index"}
            assert p["entity_type"] in ENTITY_TYPES
            assert isinstance(p["message_index"], int)
        created = datetime.strptime(r["created_at"], "%Y-%m-%dT%H:%M:%SZ")
        assert created.year == 2026


def test_ids_unique_and_in_date_order(small: list[Record]) -> None:
    ids = [r["id"] for r in small]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    dates = [r["created_at"] for r in small]
    assert dates == sorted(dates)
    assert {d[5:7] for d in dates} == {f"{m:02d}" for m in range(1, 13)}


def test_labels_match_taxonomy(small: list[Record]) -> None:
    known = {(c.name, t.name, s.name) for c, t, s in iter_leaves()}
    for r in small:
        labels = r["labels"]
        assert (labels["category"], labels["topic"], labels["subtopic"]) in known


def test_turn_counts_and_lengths(sample: list[Record]) -> None:
    n_turns = Counter(len(_user_turns(r)) for r in sample)
    assert set(n_turns) == {1, 2, 3, 4, 5}
    assert n_turns[1] > n_turns[2] > n_turns[3] > n_turns[4] > n_turns[5] > 50
    words = [len(t.split()) for r in sample for t in _user_turns(r)]
    assert min(words) >= 10
    assert max(words) <= 200
    assert max(words) >= 90
    assert 15 <= statistics.median(words) <= 40


def test_wording_varies_within_a_subtopic(sample: list[Record]) -> None:
    openings: dict[str, set[str]] = defaultdict(set)
    for r in sample:
        openings[r["labels"]["subtopic"]].add(_user_turns(r)[0])
    counts = Counter(r["labels"]["subtopic"] for r in sample)
    for subtopic, texts in openings.items():
        assert len(texts) >= 0.8 * counts[subtopic], subtopic


# -------------------------------------------------------------------------------------------------- taxonomy


def test_taxonomy_structure() -> None:
    assert 6 <= len(CATEGORIES) <= 8
    topics = [t for c in CATEGORIES for t in c.topics]
    assert len(topics) >= 20
    assert len({t.name for t in topics}) == len(topics)
    assert all(2 <= len(t.subtopics) <= 5 for t in topics)
    assert {t.name for t in topics} >= REQUIRED_TOPICS
    for _, _, sub in iter_leaves():
        assert len(sub.openers) >= 3 and len(sub.details) >= 3 and sub.followups and sub.replies


def test_every_template_slot_has_fillers() -> None:
    for _, _, sub in iter_leaves():
        slots = sub.slot_dict()
        for template in sub.openers + sub.details + sub.followups + sub.replies:
            for key in re.findall(r"\{(\w+)\}", template):
                assert slots.get(key) or SHARED_SLOTS.get(key), (sub.name, key)


def test_topic_frequencies(sample: list[Record]) -> None:
    subtopics = Counter(r["labels"]["subtopic"] for r in sample)
    topics = Counter(r["labels"]["topic"] for r in sample)
    assert len(subtopics) == len(iter_leaves())
    assert len(topics) >= 20
    assert min(subtopics.values()) >= 0.009 * len(sample)
    assert max(subtopics.values()) >= 2.5 * min(subtopics.values())
    assert max(topics.values()) >= 3 * min(topics.values())
    affective = sum(r["labels"]["category"] in AFFECTIVE for r in sample) / len(sample)
    assert 0.05 <= affective <= 0.15


# ----------------------------------------------------------------------------------------------------- users


def test_users_are_heavy_tailed(sample: list[Record]) -> None:
    per_user = Counter(r["user_id"] for r in sample)
    counts = sorted(per_user.values())
    assert len(per_user) == round(4000 / 3)
    assert statistics.median(counts) <= 2
    assert max(counts) >= 10 * statistics.median(counts)
    assert max(counts) >= 24
    assert sum(c >= 10 for c in counts) >= 10
    assert sum(c == 1 for c in counts) >= 0.25 * len(counts)


def test_n_users_is_respected() -> None:
    records = generate_conversations(600, seed=2, n_users=50)
    assert len({r["user_id"] for r in records}) == 50


def test_heavy_users_prefer_few_topics(sample: list[Record]) -> None:
    topics_by_user: dict[str, Counter[str]] = defaultdict(Counter)
    for r in sample:
        topics_by_user[r["user_id"]][r["labels"]["topic"]] += 1
    heavy = [c for c in topics_by_user.values() if c.total() >= 20]
    assert len(heavy) >= 5
    top3_share = statistics.mean(sum(n for _, n in c.most_common(3)) / c.total() for c in heavy)
    assert top3_share >= 0.6


def test_every_subtopic_has_many_users(sample: list[Record]) -> None:
    users: dict[str, set[str]] = defaultdict(set)
    for r in sample:
        users[r["labels"]["subtopic"]].add(r["user_id"])
    assert min(len(u) for u in users.values()) >= 10


# ------------------------------------------------------------------------------------------------------- PII


@pytest.mark.parametrize("share", [0.0, 0.2, 0.5])
def test_pii_share(share: float) -> None:
    records = generate_conversations(800, seed=4, pii_share=share)
    observed = sum(bool(r["pii"]) for r in records) / len(records)
    assert abs(observed - share) <= 0.01


def test_pii_values_appear_verbatim_in_user_messages(sample: list[Record]) -> None:
    n_values = 0
    for r in sample:
        for p in r["pii"]:
            message = r["messages"][p["message_index"]]
            assert message["role"] == "user"
            assert p["value"] in message["content"]
            n_values += 1
    assert n_values >= 0.2 * len(sample)


def test_pii_types_formats_and_uniqueness(sample: list[Record]) -> None:
    values: dict[str, list[str]] = defaultdict(list)
    for r in sample:
        for p in r["pii"]:
            values[p["entity_type"]].append(p["value"])
    assert set(values) == set(ENTITY_TYPES)
    for kind, vs in values.items():
        assert len(vs) >= 50, kind
        assert len(set(vs)) >= 0.9 * len(vs), kind
    assert all(re.fullmatch(r"[A-Z][a-z]+ [A-Z][A-Za-z']+", v) for v in values["PERSON"])
    assert all(re.fullmatch(r"[a-z0-9._]+@[a-z0-9-]+(\.[a-z]+)+", v) for v in values["EMAIL_ADDRESS"])
    phone = r"(\+?1[ -])?(\(\d{3}\)|\d{3})[ .-]555[ .-]01\d\d"
    assert all(re.fullmatch(phone, v) for v in values["PHONE_NUMBER"])
    assert all(re.fullmatch(r"\d+ .+, [A-Z][A-Za-z ]+.*", v) for v in values["STREET_ADDRESS"])
    for v in values["IP_ADDRESS"]:
        octets = v.split(".")
        assert len(octets) == 4 and all(0 <= int(o) <= 255 for o in octets)
    for v in values["CREDIT_CARD"]:
        digits = re.sub(r"[ -]", "", v)
        assert len(digits) == 16 and digits[0] in "245"
        assert luhn_valid(v), v
    assert len({p for v in values["CREDIT_CARD"] for p in ("-" in v, " " in v)}) == 2


def test_luhn_checker() -> None:
    assert luhn_valid("4111 1111 1111 1111")
    assert luhn_valid("5555-5555-5555-4444")
    assert not luhn_valid("4111 1111 1111 1112")
    assert not luhn_valid("5555-5555-5555-4445")
    assert not luhn_valid("not a card")


# ------------------------------------------------------------------------------------ serialisation & sample


def test_cli_writes_byte_identical_gzip(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "sub" / "b.jsonl.gz"
    assert main(["--n", "40", "--seed", "9", "--out", str(a)]) == 0
    assert main(["--n", "40", "--seed", "9", "--out", str(b)]) == 0
    raw = a.read_bytes()
    assert raw == b.read_bytes()
    assert raw[:2] == b"\x1f\x8b"
    assert raw[3] & 0x08 == 0  # no file name in the header
    assert raw[4:8] == b"\x00\x00\x00\x00"  # mtime 0
    assert read_jsonl_gz(a) == generate_conversations(40, seed=9)
    first = gzip.decompress(raw).decode("utf-8").splitlines()[0]
    assert first.startswith('{"created_at": ')  # keys sorted


def test_committed_sample_matches_generator(sample: list[Record]) -> None:
    assert SAMPLE.exists(), "regenerate it with: python -m fixtures.generate --n 4000 --seed 0"
    assert SAMPLE.stat().st_size < 2_000_000
    assert read_jsonl_gz(SAMPLE) == sample
    assert SAMPLE.read_bytes() == to_jsonl_gz_bytes(sample)
