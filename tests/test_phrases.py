"""Tests for ``clio_lite.phrases``: the terms and phrases users typed, as the keyword namer may release them."""

from __future__ import annotations

import numpy as np
import pytest

from clio_lite.phrases import PhraseIndex, content_words, phrase_segments, terms_of


def test_no_term_or_phrase_crosses_a_placeholder_or_a_clause_break() -> None:
    text = "Email <PERSON> today. Python pandas, numpy\nflask app"
    assert list(phrase_segments(text)) == [["Email"], ["today"], ["Python", "pandas"], ["numpy"], ["flask", "app"]]
    assert set(terms_of(text)) == {"email", "today", "python", "pandas", "numpy", "flask", "app", "python pandas",
                                   "flask app"}


def test_terms_are_content_words_typed_next_to_each_other() -> None:
    # "reset my password": "my" is a stop word, so "reset password" was never typed and is no term.
    assert terms_of("please reset my password now", (1, 2)) == ["reset", "password"]
    assert "node.js" in terms_of("install node.js fast") and "c++" in terms_of("learn c++ today")


def index_of(texts: list[str], terms: set[str]) -> tuple[PhraseIndex, np.ndarray]:
    return PhraseIndex(texts, terms), np.ones(len(texts), dtype=bool)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("reset my password", "reset my password"),  # through a possessive: a phrase
        ("book a flight", "book a flight"),
        ("password is fine", "password"),  # through a verb: a piece of a sentence, not grown
        ("reset and password", "password"),  # "and" is the templates' connective
        ("python pandas numpy password", "numpy password"),  # three content words in a row are a list
    ],
)
def test_a_term_grows_only_through_glue_words(typed: str, expected: str) -> None:
    term = expected.split()[-1]
    index, everyone = index_of([typed] * 6, {term})
    free = set(typed.split())
    assert index.phrase(term, everyone, np.arange(6), min_users=3, free=free) == expected


def test_a_phrase_needs_min_users_users_and_half_of_the_terms_users() -> None:
    texts = ["reset my password"] * 3 + ["password rules"] * 3
    index, everyone = index_of(texts, {"password"})
    free = {"reset", "password"}
    assert index.phrase("password", everyone, np.arange(6), min_users=3, free=free) == "reset my password"
    assert index.phrase("password", everyone, np.arange(6), min_users=4, free=free) == "password"
    # One user typing it three times is one user.
    assert index.phrase("password", everyone, np.array([0, 0, 0, 1, 2, 3]), min_users=3, free=free) == "password"
    # Only the node's conversations count.
    in_node = np.array([False, False, True, True, True, True])
    assert index.phrase("password", in_node, np.arange(6), min_users=3, free=free) == "password"


def test_a_phrase_adds_no_word_outside_the_free_and_allowed_words_nor_an_avoided_one() -> None:
    index, everyone = index_of(["reset my password"] * 6, {"password"})
    codes = np.arange(6)
    assert index.phrase("password", everyone, codes, 3) == "password"  # "reset" is not one of the node's keywords
    assert index.phrase("password", everyone, codes, 3, free={"reset"}, avoid={"reset"}) == "password"
    assert index.phrase("password", everyone, codes, 3, free={"reset"}, allowed={"password"}) == "password"
    assert index.phrase("password", everyone, codes, 3, free={"reset"}, allowed={"reset"}) == "reset my password"


def test_a_phrase_is_written_as_most_users_wrote_it_with_capitalised_words_lowered() -> None:
    texts = ["Write a SQL query"] * 4 + ["write a sql query"] * 2 + ["World War facts"] * 3
    index, everyone = index_of(texts, {"query", "war"})
    codes = np.arange(len(texts))
    assert index.phrase("query", everyone, codes, 3, free={"write", "sql"}) == "write a SQL query"
    assert index.phrase("war", everyone, codes, 3, free={"world"}) == "world war"
    assert content_words("Write a SQL query") == {"write", "sql", "query"}


def test_an_identifier_with_underscores_is_one_word_and_gives_no_term():
    # The auditor reads "ROW_NUMBER" as one word: a term "row" from it would be a word its users never typed alone.
    assert terms_of("use ROW_NUMBER() over the partition, then row_number again") == ["use", "partition"]
    assert ["use", "ROW_NUMBER"] in list(phrase_segments("use ROW_NUMBER()"))
