"""The release auditor: each check fires on the fault it exists for, and a real release passes.

Hand-built releases isolate one fault at a time (the manifest is derived from the nodes so that only the planted
fault is wrong); the real Presidio scrubber re-scans every string; the fitted release of the shared fixture corpus
must pass against that corpus.
"""

from __future__ import annotations

import ast
import json
from dataclasses import replace
from pathlib import Path

import pytest

import clio_lite
from clio_lite import AuditReport, Release, audit
from clio_lite.audit import CHECKS, NEEDS_CONVERSATIONS, data_segments, detected_entities, pii_severity
from clio_lite.cli import main
from clio_lite.name import describe_keywords
from clio_lite.release import ClusterNode, ClusterTree
from tests.trees import node as tree_node

MIN_USERS = 10
MIN_CONVERSATIONS = 20
N_USERS = 40


def node(node_id: str, conversations: int, users: int, name: str, keywords: tuple[str, ...]) -> ClusterNode:
    """A node described the way the keyword namer describes one."""
    return tree_node(
        node_id, conversations, users, name, 0.0, 0.0, 1.0, description=describe_keywords(keywords), keywords=keywords
    )


CLEAN_NODES = (
    node("0", 100, 30, "Sourdough · Starter", ("sourdough", "starter", "rye flour")),
    node("0.0", 60, 20, "Sourdough starter", ("sourdough starter", "rye")),
    node("0.1", 40, 15, "Flour · Bread", ("flour", "bread")),
    node("1", 50, 25, "Bike · Chain · Gears", ("bike", "chain", "gears")),
)


def make_release(nodes=CLEAN_NODES, **counts: int) -> Release:
    """A release of ``nodes`` whose manifest adds up, unless ``counts`` overrides some of it."""
    tree = ClusterTree(list(nodes))
    released = sum(root.conversations for root in tree.roots)
    leaves = sum(n.conversations for n in tree if not tree.children(n.id))
    manifest_counts = {"rejected": 3, "suppressed": 30, "unclustered": 7, "released": released,
                       "in_released_leaves": leaves}
    manifest_counts["read"] = sum(manifest_counts[key] for key in ("released", "suppressed", "unclustered", "rejected"))
    manifest_counts["accepted"] = manifest_counts["read"] - manifest_counts["rejected"]
    manifest_counts.update(counts)
    manifest = {
        "thresholds": {"min_users": MIN_USERS, "min_conversations": MIN_CONVERSATIONS},
        "counts": manifest_counts,
        "config": {"min_users": MIN_USERS},
    }
    return Release(tree, manifest)


def with_node(node_id: str, **changes) -> Release:
    return make_release(tuple(replace(n, **changes) if n.id == node_id else n for n in CLEAN_NODES))


RARE_SENTENCE = "my grandmother left me a zanzibarian sourdough recipe in her attic"


@pytest.fixture(scope="module")
def conversations() -> list[dict]:
    """Forty users who all bake sourdough and ride bikes; one of them also mentions a rare word."""
    records = []
    for user in range(N_USERS):
        uid = f"u-{user:04d}"
        records.append({"id": f"bake-{user:04d}", "user_id": uid, "messages": [
            {"role": "user", "content": "How do I keep my sourdough starter alive? I feed it rye flour for bread."},
            {"role": "assistant", "content": "Feed it daily and keep it warm."},
        ]})
        records.append({"id": f"bike-{user:04d}", "user_id": uid, "messages": [
            {"role": "user", "content": "My bike chain skips when I shift gears on hills."},
        ]})
    records.append({"id": "rare-0001", "user_id": "u-0003", "messages": [{"role": "user", "content": RARE_SENTENCE}]})
    return records


def errors_by_check(report: AuditReport) -> dict[str, list]:
    found: dict[str, list] = {}
    for finding in report.errors:
        found.setdefault(finding.check, []).append(finding)
    return found


# -- a clean release --------------------------------------------------------------------------------------------


def test_a_clean_hand_built_release_passes_every_check(conversations):
    report = audit(make_release(), conversations)
    assert report.passed, report.summary()
    assert report.errors == []
    # spaCy's small model tags "Flour" in the title "Flour · Bread" as a person: a warning, as designed.
    assert all(f.check == "pii" and f.detail.startswith("PERSON") for f in report.warnings)
    assert report.checks_run == list(CHECKS)
    assert report.checks_skipped == []
    assert report.thresholds == {"min_users": MIN_USERS, "min_conversations": MIN_CONVERSATIONS}
    assert "PASSED" in str(report)


def test_without_conversations_the_text_checks_are_skipped_and_reported():
    report = audit(make_release())
    assert report.passed
    assert report.checks_skipped == list(NEEDS_CONVERSATIONS)
    assert not set(report.checks_run) & set(NEEDS_CONVERSATIONS)
    assert "skipped" in report.summary()


# -- counts -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "field"), [({"users": MIN_USERS - 1}, "users"),
                                                 ({"conversations": MIN_CONVERSATIONS - 1}, "conversations")])
def test_a_node_below_a_threshold_fails_naming_the_node(changes, field):
    report = audit(with_node("1", **changes))
    assert not report.passed
    assert [(f.check, f.node_id, f.field) for f in report.errors] == [("thresholds", "1", field)]


def test_thresholds_given_explicitly_override_the_manifest():
    report = audit(make_release(), min_users=31)
    assert {(f.node_id, f.field) for f in report.errors} == {("0", "users"), ("0.0", "users"), ("0.1", "users"),
                                                             ("1", "users")}


@pytest.mark.parametrize("remainder", [1, MIN_CONVERSATIONS - 1])
def test_a_parent_whose_remainder_is_below_min_conversations_fails_differencing(remainder):
    report = audit(with_node("0", conversations=100 + remainder))
    assert [(f.check, f.node_id) for f in report.errors] == [("differencing", "0")]
    assert f"remainder of {remainder}" in report.errors[0].detail


@pytest.mark.parametrize("remainder", [0, MIN_CONVERSATIONS])
def test_a_remainder_of_zero_or_at_least_min_conversations_passes_differencing(remainder):
    assert audit(with_node("0", conversations=100 + remainder)).passed


def test_a_released_total_that_differs_from_the_top_level_fails_differencing():
    # Five conversations moved from "suppressed" to "released": the accounting still adds up, the subtraction leaks.
    report = audit(make_release(released=155, suppressed=25, in_released_leaves=150))
    assert [(f.check, f.node_id, f.field) for f in report.errors] == [("differencing", None, "counts.released")]


@pytest.mark.parametrize(("counts", "field"), [({"unclustered": 8}, "counts"), ({"accepted": 1}, "counts.accepted"),
                                               ({"in_released_leaves": 149}, "counts.in_released_leaves")])
def test_manifest_counts_that_do_not_add_up_fail_accounting(counts, field):
    report = audit(make_release(**counts))
    assert [(f.check, f.field) for f in report.errors] == [("accounting", field)]


def test_a_manifest_without_counts_fails_rather_than_passes():
    release = make_release()
    del release.manifest["counts"]
    assert {"accounting", "differencing"} <= set(errors_by_check(audit(release)))


# -- text -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("planted", "entity"), [("jane.doe@example.com", "EMAIL_ADDRESS"),
                                                 ("4111 1111 1111 1111", "CREDIT_CARD"),
                                                 ("Maria Gonzalez", "PERSON")])
def test_pii_planted_in_a_description_fails(planted, entity):
    report = audit(with_node("0.1", description=f"Conversations about flour; ask {planted} for more."))
    found = errors_by_check(report)
    assert list(found) == ["pii"]
    assert [(f.node_id, f.field) for f in found["pii"]] == [("0.1", "description")]
    assert entity in found["pii"][0].detail


def test_a_single_word_name_is_a_warning_that_does_not_fail_the_audit():
    report = audit(with_node("1", name="Ask Jennifer"))
    assert report.passed
    on_node = [f for f in report.warnings if f.node_id == "1"]
    assert [(f.check, f.field, f.severity) for f in on_node] == [("pii", "name", "warning")]
    assert "PERSON ('Jennifer')" in on_node[0].detail


@pytest.mark.parametrize(("entity", "span", "severity"), [
    ("PERSON", "Pandas", "warning"),                # a capitalised title word
    ("PERSON", "ci runner", "warning"),             # a lower-case keyword pair, tagged on a 242-node release
    ("PERSON", "Offer · Counter", "warning"),       # two title terms, not one name
    ("PERSON", "Maria Gonzalez", "error"),          # looks like a full name
    ("PERSON", None, "error"),                      # a span that could not be recovered
    ("EMAIL_ADDRESS", "a@b.org", "error"),
    ("US_SSN", "078-05-1120", "error"),
])
def test_pii_severity_policy(entity, span, severity):
    assert pii_severity(entity, span) == severity


def test_a_rare_word_in_a_keyword_fails_while_shared_and_template_words_pass(conversations):
    planted = with_node("0.0", keywords=("sourdough starter", "zanzibarian", "croissantology"))
    report = audit(planted, conversations)
    found = errors_by_check(report)
    assert list(found) == ["rare_ngrams"]
    assert [(f.node_id, f.field) for f in found["rare_ngrams"]] == [("0.0", "keywords[1]")]
    assert "'zanzibarian'" in found["rare_ngrams"][0].detail and "1 distinct users" in found["rare_ngrams"][0].detail
    # A finding quotes the release, never the conversation the word came from.
    assert "grandmother" not in json.dumps(report.to_dict())


def test_a_rare_bigram_of_common_words_fails(conversations):
    # "grandmother" and "recipe" are each one user's words too, but "sourdough recipe" is the planted bigram.
    report = audit(with_node("0", keywords=("sourdough", "sourdough recipe")), conversations)
    details = [f.detail for f in report.errors if f.check == "rare_ngrams"]
    assert any("'sourdough recipe'" in detail for detail in details)
    assert not any("'sourdough' " in detail for detail in details)


def test_the_namer_template_is_not_mistaken_for_a_users_words():
    assert data_segments("Conversations about git merge and rebase, also mentioning commit messages.") == [
        ["git", "merge"], ["rebase"], ["commit", "messages"]
    ]
    assert data_segments("Conversations about fix a merge conflict.") == [["fix", "a", "merge", "conflict"]]
    # A title of two phrases: "and" and the bigrams across it ("conflict and", "and rebase") are the template's.
    assert data_segments("Fix a merge conflict and rebase") == [["fix", "a", "merge", "conflict"], ["rebase"]]
    # A release written with the earlier template is read by it too.
    assert data_segments("Conversations about git, merge and rebase; also commit messages.") == [
        ["git"], ["merge"], ["rebase"], ["commit", "messages"]
    ]
    assert data_segments("Unnamed cluster") == []
    assert data_segments("Python code · Pandas") == [["python", "code"], ["pandas"]]
    assert data_segments("Users ask about Maria's bakery") == [["users", "ask", "about", "maria", "s", "bakery"]]


@pytest.mark.parametrize(("where", "changes"), [("description", {"description": "Conversations about u-0007."}),
                                                ("keywords[1]", {"keywords": ("sourdough", "bake-0012")})])
def test_a_user_or_conversation_id_in_a_release_string_fails(conversations, where, changes):
    report = audit(with_node("0.0", **changes), conversations)
    assert [(f.check, f.node_id, f.field) for f in report.errors if f.check == "identifiers"] == [
        ("identifiers", "0.0", where)
    ]


def test_a_user_id_in_the_manifest_fails(conversations):
    release = make_release()
    release.manifest["config"]["note"] = "built for U-0011"  # ids are compared ignoring case
    report = audit(release, conversations)
    assert [(f.check, f.node_id, f.field) for f in report.errors] == [("identifiers", None, "manifest")]


def test_detected_entities_recovers_the_replaced_spans():
    assert detected_entities("Call Ann at 555-0100", "Call <PERSON> at <PHONE_NUMBER>") == [
        ("PERSON", "Ann"), ("PHONE_NUMBER", "555-0100")
    ]
    assert detected_entities("kept <PERSON> as is", "kept <PERSON> as is") == []


# -- the report, the package and the command line ---------------------------------------------------------------


def test_the_report_is_json_safe_and_names_what_failed(conversations):
    report = audit(with_node("1", users=3), conversations)
    document = json.loads(json.dumps(report.to_dict()))
    assert document["passed"] is False and document["errors"] == 1
    assert document["findings"][0] == {"check": "thresholds", "node_id": "1", "field": "users",
                                       "detail": f"3 distinct users < min_users={MIN_USERS}", "severity": "error"}
    assert "FAILED" in report.summary() and "node 1 users" in report.summary()


def test_audit_reads_a_saved_release_directory(tmp_path):
    path = with_node("0.1", users=2).save(tmp_path / "release")
    assert [(f.check, f.node_id) for f in audit(path).errors] == [("thresholds", "0.1")]
    assert audit(str(make_release().save(tmp_path / "clean"))).passed


def test_the_release_zone_never_imports_the_auditor():
    source = (Path(clio_lite.__file__).parent / "release.py").read_text(encoding="utf-8")
    imported = [
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    assert not [name for name in imported if "audit" in name]


def test_cli_audit_exits_0_on_a_passing_release_and_1_on_a_failing_one(tmp_path, conversations, capsys):
    source = tmp_path / "chats.jsonl"
    source.write_text("\n".join(json.dumps(record) for record in conversations) + "\n", encoding="utf-8")
    good = make_release().save(tmp_path / "good")
    bad = with_node("0.0", description="Conversations about u-0007 and jane.doe@example.com.").save(tmp_path / "bad")

    assert main(["audit", str(good), "--against", str(source)]) == 0
    printed = capsys.readouterr().out
    assert "PASSED" in printed and "identifiers" in printed

    assert main(["audit", str(bad), "--against", str(source)]) == 1
    printed = capsys.readouterr().out
    assert "FAILED" in printed and "EMAIL_ADDRESS" in printed and "u-0007" in printed

    assert main(["audit", str(bad)]) == 1  # the PII scan alone fails it
    assert "skipped" in capsys.readouterr().out
    assert main(["audit", str(tmp_path / "missing")]) == 2


# -- a real release -----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_real_fitted_release_passes_against_its_corpus(fitted, corpus, saved_release):
    report = audit(fitted.release_, corpus)
    assert report.passed, report.summary()
    assert report.checks_run == list(CHECKS)
    # spaCy's small model tags some capitalised title words as people: warnings, never more than a few per node.
    assert all(f.check == "pii" and "PERSON" in f.detail for f in report.warnings)
    assert len(report.warnings) <= len(fitted.release_.tree)
    assert audit(saved_release, fitted.conversations_).passed


def test_integer_ids_equal_to_a_count_are_not_taken_for_leaked_ids():
    # Records numbered 0..n are common: an id that equals a count in the manifest must not fail the audit.
    release = make_release(unclustered=1057, read=1250)  # four digits: long enough to count as an identifier
    total = str(release.manifest["counts"]["read"])
    assert total in json.dumps(release.manifest)
    numbered = [
        {"id": int(total), "user_id": int(total), "messages": [{"role": "user", "content": "hello there"}]},
    ]
    report = audit(release, numbered, min_users=1, min_conversations=1)
    assert not [finding for finding in report.findings if finding.check == "identifiers"]


# -- facet cells --------------------------------------------------------------------------------------------------


def with_facets(cells: dict[str, dict[str, dict[str, int]]]) -> Release:
    """The clean release with ``cells`` as the facets of the nodes they name."""
    return make_release(tuple(replace(n, facets=cells.get(n.id, {})) for n in CLEAN_NODES))


def facet_errors(release: Release) -> list:
    return [f for f in audit(release, scrubber=_NoPII()).errors if f.check == "facets"]


class _NoPII:
    """A scrubber that finds nothing, so these tests isolate the facet check (the real one is tested above)."""

    def scrub(self, texts):
        from clio_lite.scrub import ScrubResult

        return ScrubResult(list(texts))


def test_facet_cells_that_add_up_down_the_tree_pass():
    cells = {"0": {"language": {"en": 70, "fr": 30}}, "0.0": {"language": {"en": 45, "fr": 15}},
             "0.1": {"language": {"en": 25, "other": 15}}, "1": {"language": {"en": 40, "other": 10}}}
    assert facet_errors(with_facets(cells)) == []


def test_a_facet_cell_below_min_users_fails_naming_the_cell():
    errors = facet_errors(with_facets({"1": {"language": {"en": 45, "fr": 5}}}))
    assert [(f.node_id, f.field) for f in errors] == [("1", "facets.language.fr")]
    assert "fewer than min_users=10" in errors[0].detail


def test_a_parent_cell_minus_its_childrens_that_leaves_a_small_group_fails():
    # 30 French conversations in "0", 15 + 12 in its children: 3 French conversations of its remainder.
    cells = {"0": {"language": {"en": 70, "fr": 30}}, "0.0": {"language": {"en": 45, "fr": 15}},
             "0.1": {"language": {"en": 28, "fr": 12}}}
    errors = facet_errors(with_facets(cells))
    assert [(f.node_id, f.field) for f in errors] == [("0", "facets.language.fr")]
    assert "leaves 3 conversations" in errors[0].detail


def test_cells_adding_up_to_more_than_the_node_fail():
    errors = facet_errors(with_facets({"1": {"language": {"en": 40, "fr": 20}}}))
    assert [f.field for f in errors] == ["facets.language"]


def test_given_labels_and_values_the_audit_rederives_each_cell(conversations):
    # Node "1" (bikes) claims a "fr" cell of 10; the conversations say only 3 users wrote in French.
    release = with_facets({"1": {"language": {"en": 30, "fr": 10}}})
    convs = clio_lite.load_conversations(conversations)
    labels = ["1" if c.id.startswith("bike") else "0.0" for c in convs]
    french = {c.id for c in convs if c.id.startswith("bike")}
    values = ["fr" if c.id in french and int(c.user_id[2:]) < 3 else "en" for c in convs]
    report = audit(release, convs, scrubber=_NoPII(), labels=labels, facet_values={"language": values})
    rederived = [f for f in report.errors if f.check == "facets" and "distinct users" in f.detail]
    assert [(f.node_id, f.field) for f in rederived] == [("1", "facets.language.fr")]
    assert "holds 3 with this value, from 3 distinct users" in rederived[0].detail
    honest = ["fr" if c.id in french and int(c.user_id[2:]) < 10 else "en" for c in convs]
    report = audit(release, convs, scrubber=_NoPII(), labels=labels, facet_values={"language": honest})
    assert not [f for f in report.errors if f.check == "facets"]


# -- differentially private releases -------------------------------------------------------------------------------


def dp_release(nodes=CLEAN_NODES) -> Release:
    tree = ClusterTree(list(nodes))
    manifest = {
        "thresholds": {"min_users": MIN_USERS, "min_conversations": MIN_CONVERSATIONS},
        "counts": {"released": sum(r.conversations for r in tree.roots),
                   "in_released_leaves": sum(n.conversations for n in tree.leaves)},
        "privacy": {"mode": "dp", "epsilon": 1.0, "delta": 1e-5},
    }
    return Release(tree, manifest)


def test_a_dp_release_skips_the_exact_differencing_check_and_checks_its_noised_totals():
    # Noised counts: "0" minus its children leaves 0 here, but any remainder would be a noisy number.
    nodes = tuple(replace(n, conversations=103) if n.id == "0" else n for n in CLEAN_NODES)
    report = audit(dp_release(nodes), scrubber=_NoPII())
    assert "differencing" in report.checks_skipped and "differencing" not in report.checks_run
    assert report.passed, report.summary()


def test_a_dp_release_whose_noised_counts_contradict_each_other_fails_accounting():
    nodes = tuple(replace(n, conversations=90) if n.id == "0" else n for n in CLEAN_NODES)  # children hold 100
    release = dp_release(nodes)
    errors = [f for f in audit(release, scrubber=_NoPII()).errors if f.check == "accounting"]
    assert [(f.node_id, f.field) for f in errors] == [("0", "conversations")]
    release.manifest["counts"]["released"] += 1
    errors = [f for f in audit(release, scrubber=_NoPII()).errors if f.check == "accounting"]
    assert ("counts.released" in [f.field for f in errors])


def test_a_facet_value_is_scanned_like_every_other_release_string(conversations):
    # An LLM facet's free-text answer is text: a planted e-mail or a user id in a facet value fails, naming the facet.
    planted = {"1": {"request": {"jane.doe@example.com": 30, "other": 20}}}
    found = errors_by_check(audit(with_facets(planted), conversations))
    assert [(f.node_id, f.field) for f in found["pii"]] == [("1", "facets[request]")]
    leaked_id = {"1": {"request": {"asked by u-0003": 30, "other": 20}}}
    found = errors_by_check(audit(with_facets(leaked_id), conversations))
    assert [(f.node_id, f.field) for f in found["identifiers"]] == [("1", "facets[request]")]
    # The library's own labels, typed by few users ("en", "other"), are not rare words of the users'.
    clean = {"1": {"language": {"en": 30, "other": 20}}}
    assert not [f for f in audit(with_facets(clean), conversations).errors if f.field.startswith("facets")]
