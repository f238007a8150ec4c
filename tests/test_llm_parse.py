"""Tolerant parsing of model answers: structure found amid prose, fences and tags; nothing invented."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clio_lite.llm import ParseError, parse_fields, parse_json, parse_score, parse_tag

prose = st.text(alphabet=st.characters(blacklist_characters="{}[]`<>", blacklist_categories=("Cs",)), max_size=40)
values = st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=12), st.booleans()),
                         min_size=1, max_size=4)


@given(before=prose, after=prose, value=values, fenced=st.booleans())
def test_json_is_found_amid_prose_with_or_without_a_fence(before, after, value, fenced):
    body = json.dumps(value)
    text = f"{before}```json\n{body}\n```{after}" if fenced else f"{before}{body}{after}"
    assert parse_json(text) == value


@given(before=prose, after=prose, inner=prose.filter(lambda s: s.strip()))
def test_a_tag_is_read_whatever_surrounds_it(before, after, inner):
    assert parse_tag(f"{before}<answer>{inner}</answer>{after}", "answer") == inner.strip()


def test_what_is_not_there_is_an_error_not_a_guess():
    with pytest.raises(ParseError):
        parse_json("no structure here")
    with pytest.raises(ParseError):
        parse_tag("<other>x</other>", "answer")
    with pytest.raises(ParseError):
        parse_fields('{"name": "only a name"}', ("name", "description"))
    with pytest.raises(ParseError):
        parse_score("<answer>9</answer>")
    with pytest.raises(ParseError):
        parse_score("no number")


def test_broken_json_before_good_json_is_skipped():
    assert parse_json('{"a": 1,, broken} then {"b": 2}') == {"b": 2}


def test_scores_from_tags_json_or_prose():
    assert parse_score("<answer> 5 </answer>") == 5
    assert parse_score('```json\n{"score": 2, "why": "a name"}\n```') == 2
    assert parse_score("Rating: 3/5") == 3


def test_fields_from_tags_win_over_json():
    text = '<name>From tags</name><description>d</description> {"name": "from json", "description": "j"}'
    assert parse_fields(text, ("name", "description")) == {"name": "From tags", "description": "d"}
