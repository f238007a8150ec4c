"""Tests for clio_lite.studies.affective (prevalence and sentiment statistics; the end-to-end run is executed by
notebooks/affective_study.ipynb in tests/test_notebooks.py) and for the study corpus in fixtures/study.py."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from clio_lite.facets import Language, SentimentShift
from clio_lite.io import load_conversations
from clio_lite.studies.affective import (
    AFFECTIVE_LABELS,
    ANY_AFFECTIVE,
    affective_facet,
    is_affective,
    prevalence,
    sentiment_summary,
    user_bootstrap_ratio,
)
from fixtures.generate import generate_conversations
from fixtures.study import STUDY_LABELS, generate_study_corpus, gold_affective, gold_language

# -- statistics -------------------------------------------------------------------------------------------------


def test_prevalence_reports_shares_with_intervals_and_withholds_labels_with_too_few_users():
    rng = np.random.default_rng(0)
    n = 2000
    users = rng.integers(0, 400, size=n)
    labels = [("coaching",) if rng.random() < 0.1 else ("not_affective",) for _ in range(n)]
    labels[:3] = [("roleplay",)] * 3  # three conversations, all of user 0
    users[:3] = 0
    table = prevalence(labels, users, min_users=10, n_bootstrap=400).set_index("label")
    coaching = table.loc["coaching"]
    assert coaching.reported and coaching.share == pytest.approx(sum(x == ("coaching",) for x in labels) / n)
    assert coaching.ci_low < coaching.share < coaching.ci_high
    assert coaching.ci_high - coaching.ci_low < 0.05
    assert table.loc[ANY_AFFECTIVE, "conversations"] == table.loc["coaching", "conversations"] + 3
    roleplay = table.loc["roleplay"]
    assert not roleplay.reported and np.isnan(roleplay.share) and roleplay.conversations is pd_na()


def pd_na():
    import pandas as pd

    return pd.NA


def test_the_bootstrap_resamples_users_so_one_heavy_user_widens_the_interval():
    # The same 100 labelled conversations out of 1,000, spread over 100 users or held by 5 heavy users.
    rng = np.random.default_rng(1)
    has = np.zeros(1000)
    has[:100] = 1
    spread = np.arange(1000) % 500
    heavy = spread.copy()
    heavy[:100] = np.arange(100) % 5
    low_s, high_s = user_bootstrap_ratio(has, np.ones(1000), spread, 1000, rng)
    low_h, high_h = user_bootstrap_ratio(has, np.ones(1000), heavy, 1000, rng)
    assert (high_h - low_h) > 2 * (high_s - low_s)


def test_sentiment_summary_needs_min_users_and_brackets_the_mean():
    rng = np.random.default_rng(2)
    shifts = [float(x) for x in rng.normal(0.4, 0.3, size=200)] + [None] * 50
    users = np.arange(250) % 80
    summary = sentiment_summary(shifts, users, min_users=10, n_bootstrap=500)
    assert summary["reported"] and summary["conversations"] == 200
    assert summary["ci_low"] < summary["mean_shift"] < summary["ci_high"]
    assert 0.3 < summary["mean_shift"] < 0.5
    assert sentiment_summary(shifts[:5] + [None] * 10, np.arange(15), min_users=10) == {
        "reported": False, "min_users": 10}


def test_is_affective_and_the_preset_labels():
    assert is_affective(("coaching", "counselling")) and not is_affective(("content_creation",))
    assert not is_affective(None)
    facet = affective_facet()
    assert facet.label_names == [*AFFECTIVE_LABELS, "content_creation", "not_affective"]
    assert facet.multi_label and facet.default == "not_affective"


# -- the study corpus -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def study_corpus():
    return generate_study_corpus(300, seed=3, n_long=40, n_romantic=10, n_creation=10, n_foreign=30)


def test_the_study_corpus_is_deterministic_and_extends_the_generator(study_corpus):
    assert generate_study_corpus(300, seed=3, n_long=40, n_romantic=10, n_creation=10, n_foreign=30) == study_corpus
    base = generate_conversations(300, seed=3)
    assert [{k: v for k, v in r.items() if k != "gold"} for r in study_corpus[:300]] == base
    assert len(study_corpus) == 300 + 40 + 10 + 10 + 30
    assert len({r["id"] for r in study_corpus}) == len(study_corpus)
    users = {r["user_id"] for r in base}
    assert all(r["user_id"] in users for r in study_corpus[300:])
    assert load_conversations(study_corpus).rejected == []


def test_gold_labels_cover_the_taxonomy_and_languages(study_corpus):
    labels = Counter(label for r in study_corpus for label in gold_affective(r))
    assert set(labels) <= set(STUDY_LABELS) and labels["roleplay"] >= 10 and labels["content_creation"] >= 10
    assert {gold_language(r) for r in study_corpus} == {"en", "es", "fr", "de"}
    for r in study_corpus:
        gold = gold_affective(r)
        assert gold and (all(g in AFFECTIVE_LABELS for g in gold) or len(gold) == 1)


def test_long_conversations_have_six_or_more_user_messages_and_move_as_labelled(study_corpus):
    long = [r for r in study_corpus if r["gold"]["kind"] == "long"]
    convs = load_conversations(long)
    shifts = SentimentShift().compute(list(convs), [""] * len(convs))
    assert all(shift is not None for shift in shifts)
    for record, shift in zip(long, shifts, strict=True):
        assert (shift > 0) == (record["gold"]["trajectory"] == "improving")


def test_the_language_facet_finds_the_gold_language_of_the_foreign_conversations(study_corpus):
    foreign = [r for r in study_corpus if r["gold"]["kind"] == "foreign"]
    convs = load_conversations(foreign)
    detected = Language().compute(list(convs), [c.user_text() for c in convs])
    correct = sum(d == gold_language(r) for d, r in zip(detected, foreign, strict=True))
    assert correct >= 0.9 * len(foreign)
