"""Tests for the offline namer: ``clio_lite.name.KeywordNamer`` (real sklearn vectorizer)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from clio_lite.audit import data_segments, ngrams
from clio_lite.name import CHAT_STOP_WORDS, KeywordNamer, NodeName, NodeToName, compose_title, describe_keywords

PYTHON = ["python pandas dataframe", "pandas dataframe groupby python", "python dataframe merge pandas"]
COOKING = ["pasta recipe tomato sauce", "tomato pasta recipe garlic", "garlic sauce recipe pasta"]


class Corpus:
    """Conversations with their users, built up node by node."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.users: list[int] = []

    def add(self, texts: list[str], users: list[int]) -> np.ndarray:
        start = len(self.texts)
        self.texts.extend(texts)
        self.users.extend(users)
        return np.arange(start, len(self.texts))

    def topic(self, templates: list[str], n: int, first_user: int, suffix: str = "") -> np.ndarray:
        return self.add(
            [templates[i % len(templates)] + suffix for i in range(n)], list(range(first_user, first_user + n))
        )

    @property
    def codes(self) -> np.ndarray:
        return np.array(self.users, dtype=int)


def words_of(name: NodeName) -> set[str]:
    """Every lower-case word in a node's name, description and keywords."""
    return set(re.findall(r"\w+", " ".join([name.name, name.description, *name.keywords]).lower()))


def title_phrases(name: NodeName) -> list[str]:
    """The phrases a title joins ("A, B and C")."""
    return re.split(r", | and ", name.name)


def title_words(name: NodeName) -> set[str]:
    """The lower-case words of a title's phrases, without the joining "and"."""
    return {word for phrase in title_phrases(name) for word in re.findall(r"\w+", phrase.lower())}


def two_topics(suffix: str = "") -> tuple[Corpus, list[NodeToName]]:
    corpus = Corpus()
    python = corpus.topic(PYTHON, 30, 0, suffix)
    cooking = corpus.topic(COOKING, 30, 100, suffix)
    return corpus, [NodeToName(python, -1, 1), NodeToName(cooking, -1, 1)]


# ----------------------------------------------------------------------------------------------------------
# k-support
# ----------------------------------------------------------------------------------------------------------


def test_term_of_a_single_user_never_names_a_node_however_frequent() -> None:
    corpus, nodes = two_topics()
    # One user repeats "zanzibar" in 40 conversations of the python node.
    extra = corpus.add(["zanzibar zanzibar zanzibar python"] * 40, [999] * 40)
    nodes[0] = NodeToName(np.concatenate([nodes[0].members, extra]), -1, 1)
    names = KeywordNamer().name(corpus.texts, corpus.codes, nodes, min_users=5)
    assert names[0].keywords  # the node is still named, by its supported terms
    for name in names:
        assert "zanzibar" not in words_of(name)
        assert not any("zanzibar" in keyword for keyword in name.keywords)


def test_term_supported_by_enough_users_overall_but_not_within_the_node_is_excluded() -> None:
    corpus, nodes = two_topics()
    # "kilimanjaro": 2 users in the python node, 3 users in the cooking node; min_users=3.
    in_python = corpus.add(["kilimanjaro python pandas"] * 2, [0, 1])
    in_cooking = corpus.add(["kilimanjaro pasta recipe"] * 3, [100, 101, 102])
    nodes = [
        NodeToName(np.concatenate([nodes[0].members, in_python]), -1, 1),
        NodeToName(np.concatenate([nodes[1].members, in_cooking]), -1, 1),
    ]
    names = KeywordNamer(n_keywords=30).name(corpus.texts, corpus.codes, nodes, min_users=3)
    assert "kilimanjaro" not in words_of(names[0])
    assert "kilimanjaro" in words_of(names[1])  # supported there, and distinctive enough to be listed


@settings(max_examples=40, deadline=None)
@given(
    rare=st.text(alphabet="bcdfghjklmnpqrstvwxz", min_size=6, max_size=12),
    n_users=st.integers(1, 4),
    repeats=st.integers(1, 30),
    node=st.integers(0, 1),
)
def test_terms_of_fewer_than_min_users_never_appear(rare: str, n_users: int, repeats: int, node: int) -> None:
    min_users = 5
    corpus, nodes = two_topics()
    users = [500 + i % n_users for i in range(repeats * n_users)]
    extra = corpus.add([f"{rare} {rare} {PYTHON[0]}" for _ in users], users)
    nodes[node] = NodeToName(np.concatenate([nodes[node].members, extra]), -1, 1)
    names = KeywordNamer(n_keywords=50).name(corpus.texts, corpus.codes, nodes, min_users=min_users)
    for name in names:
        assert rare not in words_of(name)
        assert not any(rare in keyword for keyword in name.keywords)


def test_placeholders_never_become_keywords() -> None:
    corpus, nodes = two_topics(suffix=" <PERSON> <EMAIL_ADDRESS> <PHONE_NUMBER> <PERSON>")
    names = KeywordNamer(n_keywords=50).name(corpus.texts, corpus.codes, nodes, min_users=2)
    for name in names:
        assert name.keywords
        words = words_of(name)
        assert not words & {"person", "email", "address", "email_address", "phone", "number", "phone_number"}
        assert not any("<" in k or ">" in k for k in name.keywords)


def test_stop_words_are_never_keywords() -> None:
    corpus, nodes = two_topics(suffix=" and the would about which could should there")
    names = KeywordNamer(n_keywords=50).name(corpus.texts, corpus.codes, nodes, min_users=2)
    for name in names:
        assert name.keywords
        for keyword in name.keywords:
            assert not set(keyword.split()) & ENGLISH_STOP_WORDS


# ----------------------------------------------------------------------------------------------------------
# Ranking and titles
# ----------------------------------------------------------------------------------------------------------


def test_distinctive_terms_rank_above_shared_ones() -> None:
    corpus, nodes = two_topics(suffix=" question answer")  # "question" and "answer" are in every conversation
    names = KeywordNamer(n_keywords=20).name(corpus.texts, corpus.codes, nodes, min_users=3)
    python_words = {"python", "pandas", "dataframe", "groupby", "merge"}
    cooking_words = {"pasta", "recipe", "tomato", "sauce", "garlic"}
    # Words in every conversation of one node only, as frequent there as the shared "question".
    always = [{"python", "pandas", "dataframe"}, {"pasta", "recipe"}]
    for name, own, other, top in [
        (names[0], python_words, cooking_words, always[0]),
        (names[1], cooking_words, python_words, always[1]),
    ]:
        assert name.keywords[0] in own
        assert not set(" ".join(name.keywords).split()) & other  # the other topic's words are not distinctive
        assert title_words(name) <= own
        assert "question" in name.keywords  # supported, so listed, but below every equally frequent topic word
        assert all(word in name.keywords for word in top)
        assert max(name.keywords.index(word) for word in top) < name.keywords.index("question")


def test_name_and_description_are_built_from_phrases_of_the_ranked_keywords() -> None:
    corpus, nodes = two_topics()
    name = KeywordNamer(n_keywords=5, n_title_terms=2).name(corpus.texts, corpus.codes, nodes, min_users=3)[0]
    assert 1 <= len(name.keywords) <= 5
    phrases = title_phrases(name)
    assert len(phrases) == 2
    assert name.name == compose_title([phrases[0].lower(), phrases[1]])
    # Each title phrase holds a keyword; the first the best one that the parent's title does not already say.
    assert name.keywords[0] in phrases[0].lower()
    assert any(keyword in phrases[1] for keyword in name.keywords[1:])
    # The description names the title's phrases first, in its one template, and is one sentence.
    assert name.description.startswith(f"Conversations about {phrases[0].lower()} and {phrases[1]}")
    assert name.description == describe_keywords(re.split(r" and |, also mentioning ", name.description[20:-1]))
    assert name.description.count(".") == 1 and name.description.endswith(".")


def test_keywords_do_not_repeat_words_already_covered() -> None:
    corpus, nodes = two_topics()
    names = KeywordNamer(n_keywords=50).name(corpus.texts, corpus.codes, nodes, min_users=2)
    for name in names:
        covered: set[str] = set()
        for keyword in name.keywords:
            assert not set(keyword.split()) <= covered
            covered |= set(keyword.split())


@pytest.mark.parametrize("ngram_range", [(1, 1), (1, 2)])
def test_child_title_avoids_parent_title_terms_when_it_has_alternatives(ngram_range: tuple[int, int]) -> None:
    corpus = Corpus()
    # "python" dominates the parent and its first child; "django" is in the parent's title by tie-break.
    pandas = corpus.add(["python python python pandas numpy"] * 20, list(range(20)))
    flask = corpus.add(["flask django web"] * 20, list(range(20, 40)))
    cooking = corpus.topic(COOKING, 40, 100)
    nodes = [
        NodeToName(np.concatenate([pandas, flask]), -1, 1),
        NodeToName(cooking, -1, 1),
        NodeToName(pandas, 0, 2),
        NodeToName(flask, 0, 2),
    ]
    namer = KeywordNamer(n_title_terms=2, ngram_range=ngram_range)
    names = namer.name(corpus.texts, corpus.codes, nodes, min_users=3)
    parent_words = title_words(names[0])
    assert "python" in parent_words
    # Without the rule, the first child's title would start with "Python", its top keyword...
    assert names[2].keywords[0] == "python"
    assert "python" not in names[2].name.lower()
    for child in names[2:]:
        # ...but each child's title holds only words the parent's title does not have, since it has such terms.
        assert child.name != "Unnamed cluster"
        assert not title_words(child) & parent_words
        assert set(child.keywords) & set(names[0].keywords)  # it shares keywords with its parent, not its title


def test_child_title_falls_back_to_parent_terms_when_it_has_nothing_else() -> None:
    corpus = Corpus()
    python = corpus.add(["python"] * 20, list(range(20)))
    cooking = corpus.topic(COOKING, 20, 100)
    nodes = [NodeToName(python, -1, 1), NodeToName(cooking, -1, 1), NodeToName(python[:10], 0, 2)]
    names = KeywordNamer().name(corpus.texts, corpus.codes, nodes, min_users=3)
    assert names[0].name == "Python"
    assert names[2].name == "Python"


# ----------------------------------------------------------------------------------------------------------
# Unnamed nodes and edge cases
# ----------------------------------------------------------------------------------------------------------


def test_node_without_a_supported_term_is_unnamed() -> None:
    corpus, nodes = two_topics()
    few = corpus.add(["volcano eruption lava"] * 12, [700, 701] * 6)  # 2 users only
    nodes.append(NodeToName(few, -1, 1))
    names = KeywordNamer().name(corpus.texts, corpus.codes, nodes, min_users=3)
    assert names[2].name == "Unnamed cluster"
    assert names[2].keywords == []
    assert names[2].description == "No term is shared by enough distinct users of this cluster to describe it."
    assert names[0].name != "Unnamed cluster" and names[1].name != "Unnamed cluster"


def test_every_node_is_unnamed_when_no_term_survives() -> None:
    texts = ["the and of", "<PERSON> <EMAIL_ADDRESS>", "", "a an the"]
    nodes = [NodeToName(np.array([0, 1]), -1, 1), NodeToName(np.array([2, 3]), -1, 1)]
    names = KeywordNamer().name(texts, np.array([0, 1, 2, 3]), nodes, min_users=1)
    assert [n.name for n in names] == ["Unnamed cluster", "Unnamed cluster"]
    assert all(n.keywords == [] for n in names)


def test_min_users_above_the_corpus_size_leaves_nodes_unnamed() -> None:
    corpus, nodes = two_topics()
    names = KeywordNamer().name(corpus.texts, corpus.codes, nodes, min_users=1000)
    assert [n.name for n in names] == ["Unnamed cluster", "Unnamed cluster"]


def test_no_nodes_gives_no_names() -> None:
    assert KeywordNamer().name(["python pandas"], np.array([0]), [], min_users=1) == []


def test_naming_is_deterministic_and_one_name_per_node_in_order() -> None:
    corpus, nodes = two_topics()
    nodes = [nodes[1], nodes[0]]
    first = KeywordNamer().name(corpus.texts, corpus.codes, nodes, min_users=3)
    second = KeywordNamer().name(list(corpus.texts), corpus.codes.copy(), nodes, min_users=3)
    assert first == second
    assert len(first) == 2
    assert first[0].keywords[0] in {"pasta", "recipe", "tomato", "sauce", "garlic"}


def test_children_are_named_against_their_siblings_not_by_the_theme_they_share() -> None:
    corpus = Corpus()
    # Both coding children repeat "python" more than their own words; at their level (beside the cooking
    # children) "python" is the most distinctive term of each, but against each other it sets neither apart.
    pandas = corpus.add(["python python python pandas"] * 20, list(range(20)))
    flask = corpus.add(["python python python flask"] * 20, list(range(20, 40)))
    pasta = corpus.add(["pasta tomato sauce garlic basil pepper salt oil"] * 20, list(range(40, 60)))
    bread = corpus.add(["bread flour yeast dough oven crust water salt"] * 20, list(range(60, 80)))
    nodes = [
        NodeToName(np.concatenate([pandas, flask]), -1, 1),
        NodeToName(np.concatenate([pasta, bread]), -1, 1),
        NodeToName(pandas, 0, 2),
        NodeToName(flask, 0, 2),
        NodeToName(pasta, 1, 2),
        NodeToName(bread, 1, 2),
    ]
    namer = KeywordNamer(n_keywords=3, n_title_terms=1, ngram_range=(1, 1))
    names = namer.name(corpus.texts, corpus.codes, nodes, min_users=3)
    # Against their level, the coding children would be named "python" first.
    level = namer.name(corpus.texts, corpus.codes, [NodeToName(n.members, -1, 2) for n in nodes[2:]], min_users=3)
    assert level[0].keywords[0] == level[1].keywords[0] == "python"
    assert names[0].keywords[0] == "python"
    assert names[2].keywords[0] == "pandas"
    assert names[3].keywords[0] == "flask"
    # "python" is still k-supported in each child, so it may be listed, but below the sibling-distinctive word.
    for child in names[2:4]:
        assert "python" not in child.keywords[:1]


def test_an_only_child_is_named_against_its_level() -> None:
    corpus = Corpus()
    pandas = corpus.add(["python pandas"] * 20, list(range(20)))
    pasta = corpus.add(["pasta tomato"] * 20, list(range(20, 40)))
    nodes = [
        NodeToName(pandas, -1, 1),
        NodeToName(pasta, -1, 1),
        NodeToName(pandas, 0, 2),
        NodeToName(pasta, 1, 2),
    ]
    names = KeywordNamer(n_keywords=4).name(corpus.texts, corpus.codes, nodes, min_users=3)
    assert set(names[2].keywords) <= {"python", "pandas", "python pandas"}
    assert names[2].keywords
    assert set(names[3].keywords) <= {"pasta", "tomato", "pasta tomato"}


# ----------------------------------------------------------------------------------------------------------
# Readable titles and descriptions
# ----------------------------------------------------------------------------------------------------------

PASSWORD = ["How do I reset my password?", "I forgot it, please reset my password", "Can you reset my password now",
            "reset my password, the link expired", "My password expired, reset my password"]
FLIGHTS = ["I want to book a flight to Rome", "Can you book a flight for two?", "book a flight tomorrow please",
           "Help me book a flight, cheap seats", "We need to book a flight in May"]


def readable_corpus() -> tuple[Corpus, list[NodeToName]]:
    corpus = Corpus()
    password = corpus.topic(PASSWORD, 30, 0)
    flights = corpus.topic(FLIGHTS, 30, 100)
    return corpus, [NodeToName(password, -1, 1), NodeToName(flights, -1, 1)]


def test_a_title_is_the_phrase_users_typed_around_the_best_term_in_sentence_case() -> None:
    corpus, nodes = readable_corpus()
    names = KeywordNamer().name(corpus.texts, corpus.codes, nodes, min_users=5)
    # "password" and "flight" grow into the phrases (stop words and all) that most of their users typed.
    assert names[0].name.startswith("Reset my password")
    assert names[1].name.startswith("Book a flight")
    for name in names:
        assert "·" not in name.name and "<" not in name.name
        assert name.name[0].isupper() and name.name[1:] == name.name[1:].lower()
        assert set(re.findall(r"\w+", name.name.lower())) - ENGLISH_STOP_WORDS - CHAT_STOP_WORDS  # not only stop words
    assert names[0].description.startswith("Conversations about reset my password")


def test_a_title_keeps_the_casing_most_users_wrote() -> None:
    corpus = Corpus()
    sql = corpus.add(["How do I write a SQL query"] * 8 + ["write a sql query for me"] * 2, list(range(10)))
    cooking = corpus.topic(COOKING, 10, 100)
    names = KeywordNamer().name(corpus.texts, corpus.codes, [NodeToName(sql, -1, 1), NodeToName(cooking, -1, 1)], 3)
    assert names[0].name == "Write a SQL query"


@pytest.mark.parametrize("typed_by", [4, 5])
def test_a_title_grows_only_into_a_phrase_min_users_users_of_the_node_typed(typed_by: int) -> None:
    corpus = Corpus()
    # Eight users mention the password; ``typed_by`` of them (at least half) typed "recover my password".
    recover = [f"recover my password {i}" for i in range(typed_by)]
    others = [f"password {word}" for word in ["expired", "rules", "manager", "length", "hint", "change", "ideas"]]
    password = corpus.add(recover + others[: 8 - typed_by], list(range(8)))
    cooking = corpus.topic(COOKING, 10, 100)
    nodes = [NodeToName(password, -1, 1), NodeToName(cooking, -1, 1)]
    names = KeywordNamer().name(corpus.texts, corpus.codes, nodes, min_users=5)
    assert names[0].keywords[0] == "password"
    # With four users "recover" is one user short of min_users: it is in no release string; with five it may be.
    assert ("recover" in words_of(names[0])) == (typed_by >= 5)
    assert names[0].name == ("Recover my password" if typed_by >= 5 else "Password")


def test_sibling_titles_are_unique_even_when_the_siblings_say_the_same() -> None:
    corpus = Corpus()
    # Two siblings whose users typed the same things: the same keywords, the same best title...
    first = corpus.topic(PYTHON, 30, 0)
    second = corpus.topic(PYTHON, 30, 100)
    nodes = [NodeToName(first, -1, 1), NodeToName(second, -1, 1)]
    names = KeywordNamer().name(corpus.texts, corpus.codes, nodes, min_users=3)
    assert names[0].keywords == names[1].keywords
    # ...but the second one takes its next best title.
    assert names[1].name.lower() != names[0].name.lower()
    assert title_words(names[1]) <= {w for k in names[1].keywords for w in k.split()}


def test_a_child_title_prefers_what_sets_it_apart_from_its_siblings() -> None:
    corpus = Corpus()
    # Both children say "python code" in every conversation; what tells them apart is in a third of them only.
    first = corpus.add(["python code review"] * 20 + ["python code pandas"] * 10, list(range(30)))
    second = corpus.add(["python code review"] * 20 + ["python code flask"] * 10, list(range(30, 60)))
    nodes = [NodeToName(first, -1, 1), NodeToName(second, -1, 1)]
    names = KeywordNamer().name(corpus.texts, corpus.codes, nodes, min_users=3)
    assert names[0].keywords[0] == names[1].keywords[0]  # the most common term is the same...
    assert "pandas" in names[0].name.lower() and "flask" in names[1].name.lower()  # ...the titles are not


WORDS = ["python", "pandas", "code", "error", "recipe", "pasta", "garlic", "trip", "flight", "visa"]
FILLER = ["the", "my", "a", "and", "to", "please", "<PERSON>", ",", "?"]


@settings(max_examples=30, deadline=None)
@given(
    conversations=st.lists(
        st.tuples(st.integers(0, 14), st.lists(st.sampled_from(WORDS + FILLER), min_size=1, max_size=10)),
        min_size=5, max_size=60,
    ),
    min_users=st.integers(1, 5),
    split=st.integers(0, 60),
)
def test_every_released_phrase_is_typed_by_min_users_users_of_its_node(conversations, min_users, split) -> None:
    texts = [" ".join(words).replace(" ,", ",").replace(" ?", "?") for _, words in conversations]
    codes = np.array([user for user, _ in conversations])
    everything = np.arange(len(texts))
    nodes = [NodeToName(everything, -1, 1), NodeToName(everything[:split], 0, 2), NodeToName(everything[split:], 0, 2)]
    names = KeywordNamer().name(texts, codes, nodes, min_users)
    words_in = [re.findall(r"\w+", text.lower()) for text in texts]
    for node, named in zip(nodes, names, strict=True):
        if not named.keywords:
            assert named.name == "Unnamed cluster"
            continue
        assert "·" not in named.name and "<" not in named.name and named.name[0].isupper()
        assert named.description.startswith("Conversations about ") and named.description.count(".") == 1
        # What the auditor reads as the data's (the template's words aside), every 1- to 3-gram, as typed.
        for text in [named.name, named.description, *named.keywords]:
            for gram in {gram for run in data_segments(text) for gram in ngrams(run)}:
                users = {codes[i] for i in node.members if any(
                    tuple(words_in[i][at : at + len(gram)]) == gram for at in range(len(words_in[i])))}
                assert len(users) >= min_users, (text, gram, users)
    # Siblings share a title only when one has no keyword the other lacks (nothing else to call it).
    a, b = names[1:]
    if a.keywords and b.keywords and a.name == b.name:
        assert set(a.keywords) <= set(b.keywords) or set(b.keywords) <= set(a.keywords)
