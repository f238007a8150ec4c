"""Tests for clio_lite.facets: the registry, the computed facets, the embedding classifier, breakdowns and filters,
and the pipeline's facets= / facet_filter= (k-supported breakdowns on released nodes, accounting, reproducibility)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clio_lite import facets
from clio_lite.facets import (
    EmbeddingClassifier,
    Language,
    MessageLength,
    SentimentShift,
    TurnCount,
    bin_label,
    keep_mask,
    node_breakdown,
)
from clio_lite.schema import Conversation, Conversations, Message


def conversation(*user_messages: str, conv_id: str = "c", user: str = "u") -> Conversation:
    messages = []
    for text in user_messages:
        messages += [Message("user", text), Message("assistant", "ok")]
    return Conversation(conv_id, user, tuple(messages))


# -- registry ---------------------------------------------------------------------------------------------------


def test_registry_lists_and_builds_the_built_in_facets():
    assert {"turns", "message_length", "language", "sentiment_shift", "affective"} <= set(facets.names())
    assert isinstance(facets.get("language"), Language)
    assert facets.get("turns", bins=(1, 5)).bins == (1, 5)
    affective = facets.get("affective")
    assert affective.name == "affective" and affective.kind == "categorical"


def test_registry_refuses_unknown_names_and_silent_replacement():
    with pytest.raises(KeyError, match="registered facets are"):
        facets.get("no-such-facet")
    with pytest.raises(ValueError, match="already registered"):
        facets.register("turns", TurnCount)


def test_resolve_accepts_names_and_facet_objects_and_rejects_others():
    turns = TurnCount()
    assert facets.resolve(turns) is turns
    assert isinstance(facets.resolve("message_length"), MessageLength)
    with pytest.raises(TypeError, match="not a facet"):
        facets.resolve(42)

    class Odd:
        name, kind = "odd", "ordinal"

        def compute(self, conversations, scrubbed):
            return []

    with pytest.raises(ValueError, match="kind"):
        facets.resolve(Odd())


# -- computed facets --------------------------------------------------------------------------------------------


def test_turns_and_message_length_count_user_messages_only():
    convs = [conversation("one two three"), conversation("a b", "c d e f", "g h i j k l")]
    assert TurnCount().compute(convs, ["", ""]) == [1, 3]
    assert MessageLength().compute(convs, ["", ""]) == [3.0, 4.0]


def test_language_is_detected_offline_and_short_text_is_unknown():
    texts = [
        "How do I merge two dataframes in pandas on a key column?",
        "Je me sens tellement seul et triste depuis quelques mois.",
        "Mein Python-Skript wirft einen Fehler, wenn ich die Datei öffne.",
        "¿Cómo preparo una tortilla de patatas para cuatro personas?",
        "ok <PERSON>",
    ]
    assert Language().compute([None] * 5, texts) == ["en", "fr", "de", "es", None]


def test_sentiment_shift_is_last_three_minus_first_three_for_six_or_more_messages():
    sad = "I feel terrible, hopeless and alone."
    happy = "Thank you, I feel so much better and happy now!"
    rising = conversation(sad, sad, sad, "okay", happy, happy, happy)
    falling = conversation(happy, happy, happy, sad, sad, sad)
    short = conversation(sad, happy, happy, happy, happy)
    facet = SentimentShift()
    up, down, none = facet.compute([rising, falling, short], [""] * 3)
    expected = facet.score(happy) - facet.score(sad)
    assert up == pytest.approx(expected, abs=1e-6) and up > 1
    assert down == pytest.approx(-expected, abs=1e-6)
    assert none is None
    with pytest.raises(ValueError, match="overlap"):
        SentimentShift(min_user_messages=4, window=3).compute([rising], [""])


# -- binning, breakdowns, filters -------------------------------------------------------------------------------


def test_bins_label_integers_and_floats():
    assert [bin_label(v, (1, 2, 3, 4, 6, 10), integer=True) for v in (1, 3, 5, 7, 12)] == ["1", "3", "4-5", "6-9",
                                                                                            "10+"]
    assert bin_label(-0.7, (-0.5, -0.1, 0.1, 0.5)) == "<-0.5"
    assert bin_label(0.0, (-0.5, -0.1, 0.1, 0.5)) == "-0.1 to 0.1"


def test_numeric_breakdown_is_binned_and_k_supported():
    user_codes = np.arange(30)
    values = [1] * 12 + [2] * 12 + [7] * 6  # "6-9" has only 6 users
    cells = node_breakdown(TurnCount(), values, user_codes, min_users=10)
    assert cells == {"1": 12, "2": 12} or cells == {"1": 12, "other": 18} or cells == {"2": 12, "other": 18}
    assert "6-9" not in cells
    assert cells.get("other", 0) == 0 or cells["other"] >= 10


def test_multi_label_breakdown_counts_a_conversation_under_each_of_its_labels():
    classifier = EmbeddingClassifier("mood", {"a": "x", "b": "y"}, multi_label=True)
    values = [("a", "b")] * 10 + [("a",)] * 10
    cells = node_breakdown(classifier, values, np.arange(20), min_users=5)
    assert cells == {"a": 20, "b": 10}


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.lists(st.sampled_from("abcde"), min_size=0, max_size=3, unique=True), min_size=1, max_size=60),
    n_users=st.integers(1, 20),
    min_users=st.integers(1, 6),
)
def test_every_released_cell_of_a_multi_label_breakdown_has_min_users_users(labels, n_users, min_users):
    classifier = EmbeddingClassifier("m", {k: k for k in "abcde"}, multi_label=True)
    users = np.arange(len(labels)) % n_users
    values = [tuple(value) for value in labels]
    cells = node_breakdown(classifier, values, users, min_users)
    for key in cells:
        if key == "other":
            holders = [i for i, v in enumerate(values) if not v or any(label not in cells for label in v)]
        else:
            holders = [i for i, v in enumerate(values) if key in v]
        assert len(set(users[holders])) >= min_users, (key, cells)


def test_keep_mask_by_allowed_values_any_label_or_callable():
    values = {"affective": [("coaching",), ("not_affective",), ("roleplay", "companionship"), None],
              "language": ["en", "en", "fr", "en"]}
    assert keep_mask(values, None, 4).tolist() == [True] * 4
    assert keep_mask(values, {"affective": ["coaching", "companionship"]}, 4).tolist() == [True, False, True, False]
    both = {"affective": ["coaching", "companionship"], "language": "en"}
    assert keep_mask(values, both, 4).tolist() == [True, False, False, False]
    assert keep_mask(values, lambda row: row["language"] == "fr", 4).tolist() == [False, False, True, False]
    with pytest.raises(ValueError, match="not among the facets computed"):
        keep_mask(values, {"topic": ["x"]}, 4)


# -- the embedding classifier -----------------------------------------------------------------------------------


def test_decide_applies_threshold_margin_exclusive_labels_and_default():
    classifier = EmbeddingClassifier(
        "c", {"a": "x", "b": "y", "none": "z"}, multi_label=True, threshold=0.3, margin=0.1, exclusive=["none"],
        default="none",
    )
    scores = np.array([
        [0.5, 0.45, 0.1],  # a and b within the margin
        [0.5, 0.2, 0.1],  # b below the margin
        [0.5, 0.45, 0.6],  # the exclusive label wins alone
        [0.2, 0.1, 0.25],  # nothing reaches the threshold
    ])
    assert classifier.decide(scores) == [("a", "b"), ("a",), ("none",), ("none",)]
    single = EmbeddingClassifier("c", {"a": "x", "b": "y"}, threshold={"a": 0.6})
    assert single.decide(np.array([[0.5, 0.4], [0.7, 0.4]])) == [None, "a"]
    with pytest.raises(ValueError, match="not among its labels"):
        EmbeddingClassifier("c", {"a": "x"}, exclusive=["b"])


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    from clio_lite.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(cache_dir=tmp_path_factory.mktemp("facet-embeddings"), verbose=False)


def test_zero_shot_classifier_labels_scrubbed_text_by_similarity_to_descriptions(embedder):
    topic = EmbeddingClassifier(
        "topic",
        {"code": "programming, software bugs and error messages", "food": "cooking, recipes and baking"},
        embedder=embedder,
    )
    texts = ["my python script raises a KeyError when I read the dict", "how long should I bake banana bread"]
    assert topic.compute([None, None], texts) == ["code", "food"]


def test_few_shot_examples_change_the_decision(embedder):
    labels = {"travel": "planning a holiday trip", "money": "personal finance"}
    text = ["should I book the cheap flight with a credit card that has travel points"]
    zero = EmbeddingClassifier("t", labels, embedder=embedder)
    few = EmbeddingClassifier(
        "t", labels, embedder=embedder,
        examples={"money": ["which credit card gives the most points on flights and hotels"]},
    )
    assert zero.scores(text)[0, 1] < few.scores(text)[0, 1]
    assert few.compute([None], text) == ["money"]


def test_the_affective_preset_separates_support_from_content_creation(embedder):
    affective = facets.get("affective", embedder=embedder)
    texts = [
        "My grandmother died last week and I can't stop crying, I feel so alone.",
        "Write a short story about a widow learning to live with grief, under 500 words.",
        "How do I fix a KeyError in my pandas dataframe?",
        "Let's roleplay: you're my boyfriend and we're on a date at the beach. Stay in character.",
    ]
    labels = affective.compute([None] * 4, texts)
    assert "counselling" in labels[0]
    assert labels[1] == ("content_creation",)
    assert labels[2] == ("not_affective",)
    assert labels[3][0] == "roleplay"


# -- in the pipeline --------------------------------------------------------------------------------------------

AFFECTIVE = ("interpersonal_advice", "coaching", "counselling", "companionship", "roleplay")


@pytest.fixture(scope="module")
def filtered_fit(corpus, embedding_cache):
    from clio_lite import Clio
    from tests.conftest import E2E_PARAMS

    params = {**E2E_PARAMS, "facets": ["affective", "turns", "language"], "facet_filter": {"affective": AFFECTIVE}}
    return Clio(cache_dir=embedding_cache, **params).fit(corpus), params


@pytest.mark.slow
def test_a_facet_filter_clusters_only_the_kept_conversations_and_accounts_for_the_rest(filtered_fit):
    clio, _ = filtered_fit
    counts = clio.release_.counts
    affective = clio.facet_values_["affective"]
    kept = np.array([any(label in AFFECTIVE for label in value) for value in affective])
    assert 0 < kept.sum() < len(affective)
    assert counts["filtered_out"] == (~kept).sum()
    assert set(clio.labels_[~kept]) == {"<filtered out>"}
    assert "<filtered out>" not in set(clio.labels_[kept])
    assert counts["read"] == sum(counts[k] for k in ("released", "suppressed", "unclustered", "rejected",
                                                     "filtered_out"))
    assert clio.audit_.passed, clio.audit_.summary()
    by_stage = clio.release_.manifest["counts_by_stage"]
    assert list(by_stage)[:4] == ["load", "scrub", "facets", "embed"]
    assert by_stage["facets"] == {"in": len(affective), "out": int(kept.sum()), "filtered_out": int((~kept).sum())}
    assert clio.release_.manifest["facets"] == {
        "affective": {"kind": "categorical"}, "turns": {"kind": "numeric"}, "language": {"kind": "categorical"}
    }
    # predict votes among the clustered conversations only: a filtered-out one never lends its label
    fitted_kept = [c for c, keep in zip(clio.conversations_, kept, strict=True) if keep][:20]
    predicted = clio.predict(Conversations(fitted_kept))
    assert len(predicted) == 20 and "<filtered out>" not in set(predicted)


@pytest.mark.slow
def test_every_released_node_carries_k_supported_facet_breakdowns_by_a_private_recount(filtered_fit):
    clio, params = filtered_fit
    min_users = params["min_users"]
    users = np.array([c.user_id for c in clio.conversations_])
    nodes = list(clio.release_.tree)
    assert nodes and all(set(node.facets) == {"affective", "turns", "language"} for node in nodes)
    assert any(node.facets["affective"] for node in nodes)
    for node in nodes:
        inside = np.array([label == node.id or label.startswith(node.id + ".") for label in clio.labels_])
        assert inside.sum() == node.conversations
        for facet_name, cells in node.facets.items():
            facet = facets.get(facet_name) if facet_name != "affective" else clio.facets[0]
            keys = facets.facet_keys(facets.resolve(facet), list(clio.facet_values_[facet_name][inside]))
            for key, count in cells.items():
                if key == "other":
                    continue
                # multi-label values are broken down by their first (best) label; a cell may leave out
                # conversations whose value was rare within one remainder (privacy.tree_breakdowns)
                holders = [i for i, k in zip(np.flatnonzero(inside), keys, strict=True)
                           if (k[0] == key if isinstance(k, tuple) else k == key)]
                assert min_users <= count <= len(holders), (node.id, facet_name, key)
                assert len(set(users[holders])) >= min_users, (node.id, facet_name, key)
            assert sum(cells.values()) <= node.conversations


@pytest.mark.slow
def test_a_release_with_facets_is_byte_reproducible(filtered_fit, corpus, embedding_cache, tmp_path):
    from clio_lite import Clio

    clio, params = filtered_fit
    again = Clio(cache_dir=embedding_cache, **params).fit(corpus)
    first, second = clio.release_.save(tmp_path / "a"), again.release_.save(tmp_path / "b")
    for name in ("tree.json", "manifest.json", "nodes.parquet"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


@pytest.mark.slow
def test_the_audit_counts_filtered_out_conversations_in_the_accounting(filtered_fit):
    import copy

    from clio_lite import Release, audit

    clio, _ = filtered_fit
    manifest = copy.deepcopy(clio.release_.manifest)
    assert not [f for f in audit(Release(clio.release_.tree, manifest)).errors if f.check == "accounting"]
    manifest["counts"]["filtered_out"] += 1
    report = audit(Release(clio.release_.tree, manifest))
    assert any(f.check == "accounting" and "filtered_out" in f.detail for f in report.errors)
