"""The LLM privacy auditor over real HTTP: Clio's 1-5 rubric, findings added to the deterministic audit, never fewer."""

from __future__ import annotations

import json

import pytest

from clio_lite import Release, audit
from clio_lite.llm import AnthropicBackend, LLMAuditor, OpenAIBackend
from clio_lite.release import ClusterTree
from tests.llm_server import LLMServer
from tests.trees import node

NODES = (
    node("0", 100, 30, "Sourdough baking", keywords=("sourdough", "starter")),
    node("0.0", 60, 20, "Starter feeding", keywords=("starter", "feeding")),
    node("0.1", 40, 15, "Divorce papers for the Hallworth family", keywords=("divorce", "papers")),
    node("1", 50, 25, "Bike repair", keywords=("bike", "chain")),
)


def rate(prompt: str) -> str:
    if "Hallworth" in prompt:
        return "<answer>2</answer>"
    if "Bike repair" in prompt:
        return "I would rather not say."
    return "<answer>4</answer> - general topic"


@pytest.fixture(scope="module")
def audited() -> Release:
    """A release with its deterministic audit recorded, as Clio.fit leaves it."""
    tree = ClusterTree(list(NODES))
    counts = {"read": 170, "rejected": 5, "accepted": 165, "released": 150, "in_released_leaves": 150,
              "suppressed": 10, "unclustered": 5}
    release = Release(tree, {"thresholds": {"min_users": 10, "min_conversations": 20}, "counts": counts})
    release.manifest["audit"] = audit(release).to_dict()
    return release


def fresh(release: Release) -> Release:
    return Release(release.tree, json.loads(json.dumps(release.manifest)))


@pytest.fixture
def server():
    with LLMServer(responder=rate) as running:
        yield running


def test_nodes_rated_below_three_become_findings_and_unrated_ones_are_reported(server, audited):
    release = fresh(audited)
    before = json.loads(json.dumps(release.manifest["audit"]))
    assert before["passed"]
    auditor = LLMAuditor(OpenAIBackend("judge", base_url=server.openai_url, timeout=5.0), backoff=0.001)
    findings = auditor.audit(release)
    assert auditor.ratings_ == {"0": 4, "0.0": 4, "0.1": 2, "1": None}
    assert [(f.node_id, f.severity) for f in findings] == [("0.1", "warning"), ("1", "warning")]
    assert "rated 2 of 5" in findings[0].detail and "not rated" in findings[1].detail
    recorded = release.manifest["audit"]
    assert recorded["passed"]  # advisory: warnings, the verdict stays the deterministic audit's
    assert recorded["warnings"] == before["warnings"] + 2 and recorded["errors"] == before["errors"]
    assert [f["node_id"] for f in recorded["findings"] if f["check"] == "llm_privacy"] == ["0.1", "1"]
    assert len(recorded["findings"]) == len(before["findings"]) + 2  # added to, nothing removed
    assert recorded["llm_privacy"]["ratings"] == {"1": 0, "2": 1, "3": 0, "4": 2, "5": 0}
    assert recorded["llm_privacy"]["below_min_rating"] == 1 and recorded["llm_privacy"]["not_rated"] == 1
    assert "llm_privacy" in recorded["checks_run"] and "thresholds" in recorded["checks_run"]
    # only release strings went to the model
    assert any("Divorce papers for the Hallworth family" in b["messages"][-1]["content"] for b in server.requests)


def test_as_errors_a_low_rating_fails_the_audit_and_blocks_saving(server, audited, tmp_path):
    release = fresh(audited)
    backend = OpenAIBackend("judge", base_url=server.openai_url, timeout=5.0)
    LLMAuditor(backend, severity="error", backoff=0.001).audit(release)
    assert not release.manifest["audit"]["passed"] and release.manifest["audit"]["errors"] >= 1
    with pytest.raises(ValueError, match="llm_privacy"):
        release.save(tmp_path / "release")


def test_it_never_turns_a_failed_audit_into_a_passed_one(server, audited):
    release = fresh(audited)
    release.manifest["audit"]["passed"] = False
    server.responder = lambda prompt: "<answer>5</answer>"
    LLMAuditor(OpenAIBackend("judge", base_url=server.openai_url, timeout=5.0)).audit(release)
    assert release.manifest["audit"]["passed"] is False


def test_it_extends_the_estimators_audit_report(server, audited):
    from clio_lite import AuditReport

    report = AuditReport(checks_run=["thresholds"])
    LLMAuditor(OpenAIBackend("judge", base_url=server.openai_url, timeout=5.0), backoff=0.001).audit(
        fresh(audited), report=report
    )
    assert report.checks_run == ["thresholds", "llm_privacy"] and len(report.findings) == 2


def test_anthropic_backend_prefills_the_answer_tag(server, audited):
    server.responder = lambda prompt: "3</answer>"
    auditor = LLMAuditor(AnthropicBackend("claude-judge", base_url=server.anthropic_url, timeout=5.0))
    assert auditor.audit(fresh(audited)) == [] and set(auditor.ratings_.values()) == {3}
    assert server.requests[0]["messages"][-1] == {"role": "assistant", "content": "<answer>"}


def test_the_budget_leaves_nodes_unrated_not_passed(server, audited):
    auditor = LLMAuditor(OpenAIBackend("judge", base_url=server.openai_url, timeout=5.0), max_tokens=1,
                         max_concurrency=1)
    findings = auditor.audit(fresh(audited))
    assert server.request_count == 0 and len(findings) == len(NODES)
    assert all("not rated" in f.detail and "not_run" in f.detail for f in findings)
    assert auditor.run_.stopped_by_budget


def test_bad_settings_are_refused(server, audited):
    backend = OpenAIBackend("judge", base_url=server.openai_url)
    with pytest.raises(ValueError, match="severity"):
        LLMAuditor(backend, severity="fatal").audit(fresh(audited))
    with pytest.raises(ValueError, match="min_rating"):
        LLMAuditor(backend, min_rating=7).audit(fresh(audited))
