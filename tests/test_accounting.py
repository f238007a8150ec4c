"""The accounting invariant at every stage boundary (``clio_lite.accounting``), on its own and in a real run."""

from __future__ import annotations

import re

import numpy as np
import pytest

from clio_lite.accounting import (
    STAGES,
    AccountingError,
    check_counts_by_stage,
    check_stage_rows,
    counts_by_stage,
)
from clio_lite.pipeline import SUPPRESSED, UNCLUSTERED
from tests.conftest import E2E_PARAMS


def example() -> tuple[dict, dict]:
    # 10 read, 2 rejected; of 8 accepted, 2 unclustered, 6 clustered: 4 released, 2 suppressed
    assignment = np.array([0, 0, 1, 1, 2, 2, -1, -1])
    labels = np.array(["0", "0.1", "1", "1", SUPPRESSED, SUPPRESSED, UNCLUSTERED, UNCLUSTERED], dtype=object)
    by_stage = counts_by_stage(10, 2, 8, 8, 8, assignment, labels, UNCLUSTERED, SUPPRESSED)
    counts = {"read": 10, "rejected": 2, "released": 4, "suppressed": 2, "unclustered": 2}
    return by_stage, counts


def test_counts_by_stage_follow_each_conversation_through_every_stage() -> None:
    by_stage, counts = example()
    assert list(by_stage) == list(STAGES)
    assert by_stage == {
        "load": {"in": 10, "out": 8, "rejected": 2},
        "scrub": {"in": 8, "out": 8},
        "embed": {"in": 8, "out": 8},
        "reduce": {"in": 8, "out": 8},
        "cluster": {"in": 8, "out": 6, "unclustered": 2},
        "gate": {"in": 6, "out": 4, "suppressed": 2},
    }
    check_counts_by_stage(by_stage, counts)


@pytest.mark.parametrize(
    ("stage", "key", "value", "fragment"),
    [
        ("embed", "out", 7, "reduce took in 8, but the stage before gave out 7"),
        ("load", "rejected", 3, "load: 10 in, but 8 out + 3 set aside"),
        ("gate", "suppressed", 1, "gate: 6 in, but 4 out + 1 set aside"),
        ("cluster", "unclustered", 3, "cluster: 8 in, but 6 out + 3 set aside"),
    ],
)
def test_a_conversation_lost_or_invented_at_any_boundary_is_an_error_naming_it(
    stage: str, key: str, value: int, fragment: str
) -> None:
    by_stage, counts = example()
    by_stage[stage][key] = value
    with pytest.raises(AccountingError, match=re.escape(fragment)):
        check_counts_by_stage(by_stage, counts)


def test_stages_that_disagree_with_the_run_totals_are_an_error() -> None:
    by_stage, counts = example()
    with pytest.raises(AccountingError, match="the run counts 5 released, the stages 4"):
        check_counts_by_stage(by_stage, {**counts, "released": 5, "suppressed": 1})
    labels = np.array(["0"] * 6 + [UNCLUSTERED] * 2, dtype=object)  # the gate and the clusterer disagree
    wrong = counts_by_stage(10, 2, 8, 8, 8, np.array([0] * 5 + [-1] * 3), labels, UNCLUSTERED, SUPPRESSED)
    with pytest.raises(AccountingError, match="gate: 5 in, but 6 out"):
        check_counts_by_stage(wrong, counts)


def test_a_stage_returning_the_wrong_number_of_rows_is_named() -> None:
    check_stage_rows(5, scrub=5, embed=5)
    with pytest.raises(AccountingError, match="the embed stage returned 4 rows for 5 conversations"):
        check_stage_rows(5, scrub=5, embed=4)


def test_the_manifest_of_a_real_run_records_counts_that_add_up_at_every_stage(corpus, fitted) -> None:
    manifest = fitted.release_.manifest
    by_stage = manifest["counts_by_stage"]
    check_counts_by_stage(by_stage, manifest["counts"])
    assert by_stage["load"] == {"in": len(corpus), "out": len(corpus) - 6, "rejected": 6}
    assert by_stage["gate"]["out"] == sum(node.conversations for node in fitted.release_.tree.roots)
    labels = list(fitted.labels_)
    assert by_stage["cluster"]["unclustered"] == labels.count(UNCLUSTERED)
    assert by_stage["gate"]["suppressed"] == labels.count(SUPPRESSED)
    assert manifest["rejected_by_code"] == {"conflict": 1, "empty": 1, "missing": 1, "role": 1, "too_large": 1,
                                            "type": 1}


class OffByOneEmbedder:
    """A custom embedder with a bug: it forgets the last text."""

    def __init__(self, inner):
        self.inner = inner
        self.model_id = inner.model_id

    def embed(self, texts):
        return self.inner.embed(list(texts)[:-1])


def test_a_custom_stage_that_loses_a_conversation_stops_the_run_naming_the_stage(corpus, embedding_cache) -> None:
    from clio_lite import Clio
    from clio_lite.embed import SentenceTransformerEmbedder

    embedder = OffByOneEmbedder(SentenceTransformerEmbedder(cache_dir=embedding_cache, verbose=False))
    params = {**E2E_PARAMS, "min_users": 3, "min_conversations": 5}
    with pytest.raises(AccountingError, match=r"the embed stage returned 119 rows for 120 conversations"):
        Clio(embedder=embedder, cache_dir=embedding_cache, **params).fit(corpus[:120])


def test_a_facet_filter_is_a_stage_that_sets_conversations_aside_before_embedding() -> None:
    from clio_lite.accounting import STAGES_WITH_FILTER

    # 10 read, 2 rejected, 8 scrubbed; the filter keeps 6: 2 unclustered, 3 released, 1 suppressed
    assignment = np.array([0, 0, 1, 2, -1, -1])
    labels = np.array(["0", "0", "1", SUPPRESSED, UNCLUSTERED, UNCLUSTERED], dtype=object)
    by_stage = counts_by_stage(10, 2, 8, 6, 6, assignment, labels, UNCLUSTERED, SUPPRESSED, n_filtered_out=2)
    assert list(by_stage) == list(STAGES_WITH_FILTER)
    assert by_stage["facets"] == {"in": 8, "out": 6, "filtered_out": 2}
    counts = {"read": 10, "rejected": 2, "released": 3, "suppressed": 1, "unclustered": 2, "filtered_out": 2}
    check_counts_by_stage(by_stage, counts)
    with pytest.raises(AccountingError, match="the run counts 1 filtered_out, the stages 2"):
        check_counts_by_stage(by_stage, {**counts, "filtered_out": 1, "suppressed": 2})
