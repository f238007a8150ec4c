"""Tests for assigning new conversations to a fitted tree: ``Clio.predict`` and ``Clio.transform``.

They reuse the session's fitted pipeline (real Presidio, real embedding model, real UMAP and HDBSCAN).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from clio_lite import Clio
from clio_lite.pipeline import SUPPRESSED, UNCLUSTERED

# Measured on the session corpus (1,000 generated conversations, min_users=10, min_conversations=20, seed 0): 99.6%
# of fitted conversations get from predict the label fit gave them, and 99.3% of 300 new conversations (another
# generator seed) land where fit put most of their gold subtopic. (On 4,000 conversations at the default thresholds,
# benchmarks/quality.py --predict: 99.9%.) The floors leave room for a different seed's UMAP, not for a regression.
TRAINING_AGREEMENT_FLOOR = 0.97
NEW_CONVERSATIONS_FLOOR = 0.95


@pytest.fixture(scope="module")
def predicted(fitted) -> np.ndarray:
    return fitted.predict(fitted.conversations_)


def test_fitted_conversations_predicted_again_mostly_get_the_label_fit_gave_them(fitted, predicted) -> None:
    assert len(predicted) == len(fitted.labels_)
    agreement = float(np.mean(predicted == fitted.labels_))
    assert agreement >= TRAINING_AGREEMENT_FLOOR, agreement


def test_predicted_labels_are_released_ids_or_the_two_markers(fitted, predicted) -> None:
    allowed = {node.id for node in fitted.release_.tree.nodes} | {UNCLUSTERED, SUPPRESSED}
    assert set(predicted.tolist()) <= allowed
    assert {node.id for node in fitted.release_.tree.leaves} & set(predicted.tolist())


def test_new_conversations_land_where_fit_put_their_subtopic(fitted, corpus) -> None:
    from fixtures.generate import generate_conversations

    subtopic_of = {r["id"]: r["labels"]["subtopic"] for r in corpus if "labels" in r}
    fitted_subtopics = np.array([subtopic_of[c.id] for c in fitted.conversations_])
    usual = {
        subtopic: Counter(fitted.labels_[fitted_subtopics == subtopic].tolist()).most_common(1)[0][0]
        for subtopic in set(fitted_subtopics.tolist())
    }
    new = [r for r in generate_conversations(300, seed=7) if r["labels"]["subtopic"] in usual]
    labels = fitted.predict(new)
    hits = np.mean([usual[r["labels"]["subtopic"]] == label for r, label in zip(new, labels, strict=True)])
    assert hits >= NEW_CONVERSATIONS_FLOOR, hits


def test_each_conversation_is_labelled_on_its_own_whatever_the_others_and_their_order(fitted, corpus) -> None:
    some = [r for r in corpus[:400:7] if r.get("user_id") and r.get("messages")][:40]
    alone = fitted.predict(some)
    assert len(alone) == len(some)
    np.testing.assert_array_equal(fitted.predict(some[::-1]), alone[::-1])
    np.testing.assert_array_equal(fitted.predict(some[:5]), alone[:5])


def test_predict_changes_neither_the_release_nor_the_fitted_labels(fitted, corpus) -> None:
    before_tree = fitted.release_.to_json()
    before_labels = fitted.labels_.copy()
    fitted.predict(corpus[:30])
    assert fitted.release_.to_json() == before_tree
    np.testing.assert_array_equal(fitted.labels_, before_labels)


def test_transform_scores_every_released_leaf_and_peaks_at_the_conversations_own_leaf(fitted) -> None:
    leaf_ids = [node.id for node in fitted.release_.tree.leaves]
    scores = fitted.transform(fitted.conversations_[:200])
    assert scores.shape == (200, len(leaf_ids))
    assert np.all(scores <= 1 + 1e-6) and np.all(scores >= -1 - 1e-6)
    labels = fitted.labels_[:200]
    in_leaf = np.isin(labels, leaf_ids)
    assert in_leaf.sum() > 50
    best = np.array(leaf_ids)[scores.argmax(axis=1)]
    assert float(np.mean(best[in_leaf] == labels[in_leaf])) >= 0.8


def test_predict_before_fit_says_to_fit_first() -> None:
    with pytest.raises(RuntimeError, match="fit"):
        Clio().predict([{"id": "a", "user_id": "u", "messages": [{"role": "user", "content": "hello"}]}])
