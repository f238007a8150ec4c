"""Tests for differential privacy: ``clio_lite.dp``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clio_lite.cluster import Hierarchy
from clio_lite.dp import (
    EPSILON_SHARES,
    Budget,
    DPKeywordNamer,
    bound_contributions,
    discrete_laplace,
    dp_gate,
    selection_threshold,
)
from clio_lite.name import NodeToName


def test_discrete_laplace_has_the_distribution_of_its_scale() -> None:
    scale = 3.0
    noise = discrete_laplace(np.random.default_rng(1), scale, 200_000)
    assert noise.dtype.kind == "i"
    r = math.exp(-1 / scale)
    for k in (0, 1, 5):  # P(k) = (1 - r) / (1 + r) * r^|k|
        expected = (1 - r) / (1 + r) * r**k
        assert abs((noise == k).mean() - expected) < 0.004
        assert abs((noise == -k).mean() - expected) < 0.004


def test_discrete_laplace_is_reproducible_from_a_seed_and_rejects_a_bad_scale() -> None:
    a = discrete_laplace(np.random.default_rng(7), 2.0, 50)
    b = discrete_laplace(np.random.default_rng(7), 2.0, 50)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="scale"):
        discrete_laplace(np.random.default_rng(0), 0.0, 1)


def test_selection_threshold_bounds_the_release_of_a_one_user_partition() -> None:
    scale, partitions, delta = 4.0, 6, 1e-5
    threshold = selection_threshold(scale, partitions, delta, floor=1)
    # A partition of one user passes when 1 + noise >= threshold: P(noise >= t - 1) = r^(t-1) / (1 + r).
    r = math.exp(-1 / scale)
    assert r ** (threshold - 1) / (1 + r) <= delta / partitions
    assert selection_threshold(scale, partitions, delta, floor=10_000) == 10_000
    with pytest.raises(ValueError, match="delta"):
        selection_threshold(scale, partitions, 0.0, floor=1)


@settings(max_examples=50, deadline=None)
@given(users=st.lists(st.integers(0, 9), min_size=1, max_size=80), cap=st.integers(1, 4), key=st.integers(0, 5))
def test_bounding_keeps_at_most_cap_conversations_per_user_and_all_of_small_users(users, cap, key) -> None:
    codes = np.array(users)
    ids = [f"c{i}" for i in range(len(users))]
    keep = bound_contributions(codes, ids, cap, key)
    for user in set(users):
        mine = codes == user
        assert keep[mine].sum() == min(cap, mine.sum())
    # The choice depends only on a user's own ids: another user's conversations do not change it.
    own_ids = [conv_id for conv_id, user in zip(ids, users, strict=True) if user == users[0]]
    alone = bound_contributions(codes[codes == users[0]], own_ids, cap, key)
    np.testing.assert_array_equal(alone, keep[codes == users[0]])


def tree_case(n_users: int = 400):
    """A root of 2 * n_users conversations (one per user per child) with two children, and a tiny third one."""
    parent = np.array([-1, 0, 0, 0])
    assignment = np.array([1] * n_users + [2] * n_users + [3] * 3)
    users = np.r_[np.arange(n_users), np.arange(n_users, 2 * n_users), [9999] * 3]
    return parent, Hierarchy(parent=parent, assignment=assignment).members(), users


def test_dp_gate_releases_large_nodes_with_noisy_consistent_counts_and_never_a_one_user_node() -> None:
    parent, members, users = tree_case()
    budget = Budget(epsilon=1.0, delta=1e-5, max_conversations_per_user=1, max_terms_per_user=5)
    kept = np.ones(len(users), dtype=bool)
    result = dp_gate(parent, members, users, kept, 25, 50, budget, np.random.default_rng(0))
    assert result.released.tolist() == [True, True, True, False]
    assert result.conversations[0] >= result.conversations[1] + result.conversations[2]
    assert result.users[0] >= max(result.users[1], result.users[2])
    assert all(result.conversations[n] >= result.users[n] >= 25 for n in range(3))
    assert result.users[1] != 400 or result.users[2] != 400  # noised
    stages = budget.to_dict()["stages"]
    assert set(stages) == {"nodes", "conversations"}
    assert stages["nodes"]["threshold"] >= 25 and stages["nodes"]["sensitivity_l1"] == 2  # one conversation, two levels


def test_dp_gate_counts_only_the_bounded_conversations() -> None:
    # One user with 1,000 conversations and three others: after bounding to one each, four users and conversations.
    parent = np.array([-1])
    users = np.r_[[0] * 1000, [1, 2, 3]]
    members = [np.arange(len(users))]
    kept = bound_contributions(users, [str(i) for i in range(len(users))], 1, key=0)
    budget = Budget(epsilon=1e6, delta=1e-5, max_conversations_per_user=1, max_terms_per_user=5)
    result = dp_gate(parent, members, users, kept, 1, 1, budget, np.random.default_rng(0))
    assert result.users[0] == 4 and result.conversations[0] == 4  # epsilon so large the noise is 0


def test_dp_namer_uses_only_terms_many_users_share_and_records_its_budget() -> None:
    rng = np.random.default_rng(0)
    texts = [f"pandas dataframe merge question {rng.integers(1000)}" for _ in range(300)]
    texts += ["my secret codename zanzibar-quokka please"] * 2  # two users' private words
    codes = np.arange(len(texts))
    nodes = [NodeToName(np.arange(len(texts)), -1, 1)]
    budget = Budget(epsilon=4.0, delta=1e-5, max_conversations_per_user=1, max_terms_per_user=5)
    names = DPKeywordNamer().name(texts, codes, nodes, 10, kept=np.ones(len(texts), dtype=bool), levels=1,
                                  budget=budget, rng=np.random.default_rng(0))
    assert names[0].keywords and set(names[0].keywords) <= {"pandas", "dataframe", "merge", "question",
                                                              "pandas dataframe", "dataframe merge", "merge question"}
    assert "zanzibar" not in names[0].name.lower() + names[0].description.lower()
    assert set(budget.stages) == {"vocabulary", "keywords"}
    assert budget.stages["vocabulary"]["threshold"] >= 10


def test_budget_shares_add_up_to_epsilon_and_delta() -> None:
    assert math.isclose(sum(EPSILON_SHARES.values()), 1.0)
    budget = Budget(epsilon=2.0, delta=1e-6, max_conversations_per_user=1, max_terms_per_user=5)
    for stage in EPSILON_SHARES:
        budget.record(stage)
    summary = budget.to_dict()
    assert math.isclose(summary["epsilon_spent"], 2.0) and math.isclose(summary["delta_spent"], 1e-6)
    assert summary["unit"] == "user" and "hierarchy" in summary["not_covered"]


# -- the pipeline with privacy="dp" ----------------------------------------------------------------------------------

DP_PARAMS = {"min_users": 5, "min_conversations": 10, "privacy": "dp", "epsilon": 16.0, "random_state": 0,
             "verbose": False}


@pytest.fixture(scope="module")
def dp_records() -> list[dict]:
    from fixtures.generate import generate_conversations

    return generate_conversations(400, seed=3)


@pytest.fixture(scope="module")
def dp_fitted(dp_records, embedding_cache):
    from clio_lite import Clio

    return Clio(cache_dir=embedding_cache, **DP_PARAMS).fit(dp_records)


def test_a_dp_release_records_its_mechanism_and_budget_and_shows_only_noised_totals(dp_fitted) -> None:
    privacy = dp_fitted.release_.manifest["privacy"]
    assert privacy["mode"] == "dp" and privacy["unit"] == "user"
    assert privacy["epsilon"] == 16.0 and privacy["delta"] == 1e-5
    assert set(privacy["stages"]) == set(EPSILON_SHARES)
    assert math.isclose(privacy["epsilon_spent"], 16.0) and math.isclose(privacy["delta_spent"], 1e-5)
    manifest = dp_fitted.release_.manifest
    assert set(manifest["counts"]) == {"released", "in_released_leaves"}
    assert "scrubbed_entities" not in manifest and "rejected_by_field" not in manifest


def test_a_dp_release_is_consistent_passes_its_audit_and_names_from_released_keywords(dp_fitted) -> None:
    tree = dp_fitted.release_.tree
    threshold = dp_fitted.release_.manifest["privacy"]["stages"]["nodes"]["threshold"]
    assert len(list(tree)) > 0
    for node in tree:
        assert node.users >= threshold and node.conversations >= max(node.users, DP_PARAMS["min_conversations"])
        children = tree.children(node.id)
        assert node.conversations >= sum(child.conversations for child in children)
        if node.keywords:
            title_words = set(node.name.lower().replace("·", " ").split())
            assert title_words <= {word for keyword in node.keywords for word in keyword.split()}
    report = dp_fitted.audit_
    assert report.passed, report.summary()
    assert "differencing" in report.checks_skipped


def test_a_dp_release_holds_no_injected_pii(dp_fitted, dp_records, tmp_path) -> None:
    path = dp_fitted.release_.save(tmp_path / "release")
    text = " ".join(p.read_text() for p in path.glob("*.json")).lower()
    values = {item["value"].lower() for record in dp_records for item in record["pii"]}
    assert values and not [value for value in values if value in text]


def test_dp_options_are_validated() -> None:
    from clio_lite import Clio
    from clio_lite.name import KeywordNamer

    for params, message in (
        ({"privacy": "laplace"}, "privacy="),
        ({"privacy": "dp", "epsilon": 0}, "epsilon="),
        ({"privacy": "dp", "delta": 1.5}, "delta="),
        ({"privacy": "dp", "namer": KeywordNamer()}, "DP keywords only"),
        ({"privacy": "dp", "max_conversations_per_user": 0}, "max_conversations_per_user="),
    ):
        with pytest.raises(ValueError, match=message):
            Clio(**params).fit([{"id": "a", "user_id": "u", "messages": [{"role": "user", "content": "hi"}]}])
