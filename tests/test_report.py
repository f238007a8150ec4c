"""Tests for the HTML report: ``clio_lite.viz.report`` and ``Release.to_html``, on the page and in a real Chromium."""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clio_lite.release import SCHEMA_VERSION, ClusterNode, ClusterTree, Release
from clio_lite.viz import report
from clio_lite.viz.report import PAYLOAD_FIELDS, render_html, write_html
from tests.trees import node as tree_node
from tests.views import (
    EXPAND_ALL,
    PageWatch,
    browser_context,
    demo_release,
    distinct_colours,
    large_tree,
    save_screenshot,
)

__all__ = ["browser_context"]  # a fixture, shared with the other view tests

HOSTILE_NAME = '</script><script>window.pwned = 1</script><!-- <b onmouseover="window.pwned = 2">bold</b>'
HOSTILE_DESCRIPTION = '<img src="https://example.invalid/x.png" onerror="window.pwned = 3"> & </SCRIPT >'
PAYLOAD = re.compile(r'<script type="application/json" id="clio-data">(.*?)</script>', re.DOTALL)


def node(node_id: str, conversations: int, users: int, name: str, x: float, y: float, share: float,
         description: str | None = None, keywords: tuple[str, ...] | None = None) -> ClusterNode:
    """A node described and keyworded from its name unless told otherwise."""
    return tree_node(
        node_id, conversations, users, name, x, y, share,
        description=description or f"Conversations about {name.lower()}.",
        keywords=keywords or tuple(word.lower() for word in name.replace("·", " ").split()[:3]),
    )


def sample_tree() -> ClusterTree:
    # Positions spread out so that every leaf's circle on the map has a clear spot to click.
    return ClusterTree([
        node("0", 300, 120, "Python · Pandas", -4.0, 3.0, 0.6, keywords=("python", "pandas", "dataframe")),
        node("1", 150, 70, "Travel · Flights", 4.0, -3.0, 0.3),
        node("2", 50, 25, HOSTILE_NAME, 4.0, 3.0, 0.1, description=HOSTILE_DESCRIPTION, keywords=("<i>kw</i>",)),
        node("0.0", 180, 80, "Pandas · Merge errors", -6.0, 1.0, 0.6,
             description="Fixing KeyError and duplicate rows when merging two dataframes.",
             keywords=("merge", "keyerror", "join")),
        node("0.1", 100, 45, "Plotting · Matplotlib", -2.0, 5.0, 0.33),
        node("1.0", 120, 55, "Cheap flights · Airline miles", 6.0, -5.0, 0.8),
        node("0.0.0", 60, 30, "Merge on index", -8.0, -1.0, 0.33),
    ])


def sample_manifest() -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "config": {"min_users": 20, "min_conversations": 40},
        "config_hash": "abc123",
        "versions": {"clio_lite": "0.1.0"},
        "thresholds": {"min_users": 20, "min_conversations": 40},
        "counts": {"read": 620, "rejected": 6, "accepted": 614, "released": 500, "in_released_leaves": 370,
                   "suppressed": 64, "unclustered": 50},
        "audit": {"passed": True, "errors": 0, "warnings": 1, "checks_run": ["thresholds"], "checks_skipped": [],
                  "thresholds": {"min_users": 20, "min_conversations": 40},
                  "findings": [{"check": "pii", "severity": "warning", "node_id": "0", "field": "name",
                                "detail": "finding-detail-not-for-the-report"}]},
    }


def sample_release() -> Release:
    return Release(sample_tree(), sample_manifest())


def synthetic_release(size: int = 2000) -> Release:
    """A three-level release of ``size`` nodes (20 roots, 9 children each, 10 grandchildren each) with text as long
    as the keyword namer writes: two-term names, a one-sentence description, five keywords."""
    words = [
        "python", "pandas", "travel", "flights", "recipes", "baking", "resume", "interview", "docker", "kubernetes",
        "grammar", "essay", "budget", "taxes", "fitness", "running", "poetry", "guitar", "chemistry", "algebra",
    ]
    nodes: list[ClusterNode] = []

    def add(node_id: str, seed: int, conversations: int) -> None:
        terms = [words[(seed * k + k * k) % len(words)] for k in range(1, 6)]
        name = f"{terms[0].title()} · {terms[1].title()} {seed % 97}"
        description = f"Conversations about {terms[0]}, {terms[1]} and {terms[2]}, often with {terms[3]}."
        depth = node_id.count(".")
        nodes.append(node(node_id, conversations, conversations // 3 + 20, name, (seed % 41) / 3.0 - 7,
                          (seed * 7 % 37) / 3.0 - 6, round(1 / (depth + 2), 4), description, tuple(terms)))

    for r in range(20):
        add(str(r), r, 4000 - r * 50)
        for c in range(9):
            add(f"{r}.{c}", r * 10 + c, 400 - c * 10)
            for g in range(10):
                add(f"{r}.{c}.{g}", r * 100 + c * 10 + g, 40 - g)
    assert len(nodes) == size
    return Release(ClusterTree(nodes), sample_manifest())


def payload(page: str) -> dict[str, Any]:
    found = PAYLOAD.findall(page)
    assert len(found) == 1, "the page holds exactly one JSON data element"
    return json.loads(found[0])


# ----------------------------------------------------------------------------------------------------------
# The page
# ----------------------------------------------------------------------------------------------------------


def test_payload_holds_every_node_in_walk_order_with_the_release_fields() -> None:
    release = sample_release()
    data = payload(render_html(release))
    assert data["fields"] == list(PAYLOAD_FIELDS)
    rows = [dict(zip(data["fields"], row, strict=True)) for row in data["nodes"]]
    assert [row["id"] for row in rows] == [n.id for n in release.tree.nodes]
    assert [row["name"] for row in rows] == [n.name for n in release.tree.nodes]
    for row, expected in zip(rows, release.tree.nodes, strict=True):
        fields = {key: value for key, value in expected.to_dict().items() if key in PAYLOAD_FIELDS}
        assert row == {**fields, "share_of_parent": pytest.approx(expected.share_of_parent)}


def test_payload_takes_only_the_counts_thresholds_and_audit_verdict_from_the_manifest() -> None:
    page = render_html(sample_release())
    manifest = payload(page)["manifest"]
    assert manifest == {
        "counts": sample_manifest()["counts"],
        "thresholds": {"min_users": 20, "min_conversations": 40},
        "config_hash": "abc123",
        "audit": {"passed": True, "errors": 0, "warnings": 1},
    }
    assert "finding-detail-not-for-the-report" not in page


def test_a_bare_tree_gives_a_report_without_counts_or_verdict() -> None:
    data = payload(render_html(sample_tree(), title="Just the tree"))
    assert data["manifest"] == {}
    assert data["title"] == "Just the tree"
    assert len(data["nodes"]) == len(sample_tree())


def test_page_fetches_nothing_from_anywhere() -> None:
    page = render_html(sample_release())
    # Every src and href points inside the page; the one namespace URI in the script is not a fetch.
    for attribute in re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]*)""", page, flags=re.IGNORECASE):
        assert not re.match(r"(?:https?:)?//", attribute), attribute
    assert not re.search(r"<(?:link[^>]*stylesheet|iframe|img|object|embed)\b", page, flags=re.IGNORECASE)
    assert "@import" not in page and "url(" not in page
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert "default-src 'none'" in csp


def test_the_content_security_policy_allows_exactly_the_page_script() -> None:
    page = render_html(sample_release())
    scripts = re.findall(r"<script>(.*?)</script>", page, flags=re.DOTALL)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode("utf-8")).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in page


def test_a_hostile_name_cannot_break_out_of_the_data() -> None:
    page = render_html(sample_release(), title="<b>Title</b>")
    # Only the page's own two script elements close; no tag or comment of the data's reaches the HTML.
    assert len(re.findall(r"</script", page, flags=re.IGNORECASE)) == 2
    assert "<!--" not in page and "<b>" not in page and "<img" not in page and "<b " not in page and "<i>" not in page
    assert "<title>&lt;b&gt;Title&lt;/b&gt;</title>" in page
    rows = {row[0]: dict(zip(PAYLOAD_FIELDS, row, strict=True)) for row in payload(page)["nodes"]}
    assert rows["2"]["name"] == HOSTILE_NAME
    assert rows["2"]["description"] == HOSTILE_DESCRIPTION
    assert rows["2"]["keywords"] == ["<i>kw</i>"]


def test_the_same_release_gives_the_same_bytes(tmp_path: Path) -> None:
    release = sample_release()
    first = release.to_html(tmp_path / "a" / "report.html")
    second = sample_release().to_html(tmp_path / "b.html")
    assert first == tmp_path / "a" / "report.html"
    assert first.read_bytes() == second.read_bytes() == render_html(release).encode("utf-8")
    # Saving and loading the release changes nothing either.
    reloaded = Release.load(release.save(tmp_path / "saved"))
    assert reloaded.to_html(tmp_path / "c.html").read_bytes() == first.read_bytes()


def test_tree_to_html_and_write_html_write_the_same_page(tmp_path: Path) -> None:
    tree = sample_tree()
    assert tree.to_html(tmp_path / "tree.html").read_bytes() == write_html(tree, tmp_path / "w.html").read_bytes()


def test_a_position_that_is_not_a_number_is_left_off_the_map() -> None:
    nodes = list(sample_tree())
    nodes[1] = ClusterNode(**{**nodes[1].to_dict(), "keywords": nodes[1].keywords, "x": float("nan")})
    rows = {row[0]: row for row in payload(render_html(ClusterTree(nodes)))["nodes"]}
    assert rows[nodes[1].id][PAYLOAD_FIELDS.index("x")] is None


def test_a_2000_node_release_stays_small() -> None:
    page = render_html(synthetic_release(2000))
    assert len(payload(page)["nodes"]) == 2000
    assert len(page.encode("utf-8")) < 500_000


def test_report_module_imports_only_the_release_and_the_standard_library() -> None:
    tree = ast.parse(Path(report.__file__).read_text(encoding="utf-8"))
    modules = {alias.name for stmt in ast.walk(tree) if isinstance(stmt, ast.Import) for alias in stmt.names}
    modules |= {stmt.module for stmt in ast.walk(tree) if isinstance(stmt, ast.ImportFrom)}
    outside = {m for m in modules if m.split(".")[0] not in sys.stdlib_module_names and m != "__future__"}
    assert outside == {"clio_lite.release"}


# ----------------------------------------------------------------------------------------------------------
# In a real browser: Debian's chromium driven by Playwright, with the network off
# ----------------------------------------------------------------------------------------------------------

@pytest.fixture
def open_report(browser_context, tmp_path: Path) -> Iterator[Callable[[Release | ClusterTree], Any]]:
    """Opens a release's report in a fresh page; at the end, checks that no page made a request or met an error."""
    opened: list[tuple[PageWatch, str]] = []

    def open_page(release: Release | ClusterTree) -> Any:
        path = release.to_html(tmp_path / f"report-{len(opened)}.html")
        url = path.resolve().as_uri()
        watch = PageWatch(browser_context)
        watch.page.goto(url)
        watch.page.wait_for_selector(".clio-status:not(:empty)")
        opened.append((watch, url))
        return watch.page

    yield open_page
    for watch, url in opened:
        assert watch.errors == [], f"the report met errors: {watch.errors}"
        assert watch.requests == [url], f"the report made requests: {watch.requests}"
        watch.page.close()


@pytest.fixture
def opened(open_report) -> Any:
    """The sample release's report, open in a fresh page."""
    return open_report(sample_release())


def visible_names(page) -> list[str]:
    return page.locator(".clio-tree .clio-row:visible .clio-name").all_text_contents()


def test_browser_renders_the_tree_with_its_top_level_collapsed(opened) -> None:
    page = opened
    tree = sample_tree()
    assert visible_names(page) == [n.name for n in tree.roots]
    assert page.locator(".clio-tree .clio-row").count() == len(tree.roots)  # the rest is drawn when opened
    assert page.locator(".clio-map circle.clio-node").count() == len(tree)
    assert page.locator(".clio-summary [data-count]").all_text_contents() == [
        "read 620", "released 500", "suppressed 64", "unclustered 50", "rejected 6"]
    assert page.locator(".clio-verdict").text_content() == "audit passed: 0 errors, 1 warnings"
    # The hostile name is text on the page, and none of its markup ran.
    assert page.evaluate("window.pwned") is None
    assert page.locator(".clio-tree .clio-row[data-id='2'] .clio-name").text_content() == HOSTILE_NAME
    # A level's legend entry hides and shows its circles.
    page.locator(".clio-legend button[data-depth='3']").click()
    assert page.locator(".clio-map circle.clio-node:visible").count() == len(tree) - 1
    page.locator(".clio-legend button[data-depth='3']").click()
    assert page.locator(".clio-map circle.clio-node:visible").count() == len(tree)


def test_browser_shows_a_failed_audit_an_unaudited_release_and_a_bare_tree(open_report) -> None:
    manifest = sample_manifest()
    manifest["audit"] = {**manifest["audit"], "passed": False, "errors": 2}
    page = open_report(Release(sample_tree(), manifest))
    assert page.locator(".clio-verdict.failed").text_content() == "audit FAILED: 2 errors, 1 warnings"
    del manifest["audit"]
    assert open_report(Release(sample_tree(), manifest)).locator(".clio-verdict.none").text_content() == "not audited"
    page = open_report(sample_tree())
    assert page.locator(".clio-summary").count() == 0  # nothing to summarise
    assert visible_names(page) == [n.name for n in sample_tree().roots]
    page = open_report(ClusterTree([]))
    assert page.locator(".clio-tree").text_content() == "No clusters were released."
    assert page.locator(".clio-status").text_content() == "0 clusters in 0 top-level groups"


def test_browser_expands_a_node_and_searches(opened) -> None:
    page = opened
    page.locator(".clio-tree .clio-row[data-id='0'] .clio-caret").click()
    assert visible_names(page) == ["Python · Pandas", "Pandas · Merge errors", "Plotting · Matplotlib",
                                   "Travel · Flights", HOSTILE_NAME]
    page.fill(".clio-search", "airline")
    # The match and its ancestors stay; everything else is hidden, in the tree and on the map.
    assert visible_names(page) == ["Travel · Flights", "Cheap flights · Airline miles"]
    assert page.locator(".clio-status").text_content() == "1 of 7 clusters match"
    assert page.locator(".clio-map circle.clio-node:not(.clio-dim)").count() == 1
    page.fill(".clio-search", "KEYERROR")  # a word of a description, in another case
    assert visible_names(page) == ["Python · Pandas", "Pandas · Merge errors"]
    page.fill(".clio-search", "")
    assert visible_names(page) == ["Python · Pandas", "Pandas · Merge errors", "Plotting · Matplotlib",
                                   "Travel · Flights", HOSTILE_NAME]


def test_browser_selects_from_the_tree_and_from_the_map(opened, tmp_path: Path) -> None:
    page = opened
    page.locator(".clio-tree .clio-row[data-id='0']").click()
    page.locator(".clio-tree .clio-row[data-id='0.0']").click()
    details = page.locator(".clio-details")
    assert details.get_attribute("data-id") == "0.0"
    assert "Fixing KeyError and duplicate rows when merging two dataframes." in details.text_content()
    assert "merge" in details.locator(".clio-keywords").text_content()
    assert page.locator(".clio-ring").get_attribute("data-id") == "0.0"  # the tree's selection is ringed on the map

    page.locator(".clio-map circle.clio-node[data-id='1.0']").click()
    assert details.get_attribute("data-id") == "1.0"
    assert details.locator("h2").text_content() == "Cheap flights · Airline miles"
    assert page.locator(".clio-tree .clio-row.clio-selected").get_attribute("data-id") == "1.0"
    assert visible_names(page)[-2:] == ["Cheap flights · Airline miles", HOSTILE_NAME]  # its parent opened

    screenshot = tmp_path / "report.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert distinct_colours(screenshot.read_bytes()) > 20, "the screenshot looks blank"


def test_browser_details_show_each_facet_as_bars_and_the_map_colours_by_a_facet_share(open_report) -> None:
    release = demo_release()
    page = open_report(release)
    target = release.tree["0.0"]
    page.locator(".clio-tree .clio-row[data-id='0'] .clio-caret").click()
    page.locator(".clio-tree .clio-row[data-id='0.0']").click()
    for facet, cells in target.facets.items():
        bars = page.locator(f".clio-details .clio-facet[data-facet='{facet}'] .clio-bar")
        expected = sorted(cells, key=lambda v: (v == "other", -cells[v], v))  # largest first, "other" last
        assert bars.evaluate_all("bars => bars.map(b => b.dataset.value)") == expected
        total = sum(cells.values())
        widths = bars.evaluate_all("bars => bars.map(b => parseFloat(b.querySelector('i').style.width))")
        assert widths == pytest.approx([100 * cells[v] / total for v in expected], abs=0.06)
        assert f"{cells[expected[0]]:,}" in bars.first.text_content()
    # Colour by the share of Spanish: the map's fills follow that share, darkest where it is lowest.
    page.locator(".clio-colour").select_option("facet:language=es")
    fills = page.locator(".clio-map circle.clio-node").evaluate_all(
        "cs => Object.fromEntries(cs.map(c => [c.dataset.id, c.getAttribute('fill')]))")
    share = {n.id: n.facets["language"]["es"] / n.conversations for n in release.tree}
    lowest, highest = min(share, key=share.get), max(share, key=share.get)
    assert fills[lowest] == "rgb(68,1,84)" and fills[highest] == "rgb(253,231,37)"
    assert len(set(fills.values())) > 10
    assert "%" in page.locator(".clio-scale").text_content()
    page.locator(".clio-colour").select_option("depth")
    assert page.locator(".clio-scale").text_content() == ""


def test_browser_colours_nodes_without_a_breakdown_as_no_data(open_report) -> None:
    nodes = [*sample_tree()]
    nodes[0] = ClusterNode(**{**nodes[0].to_dict(), "keywords": nodes[0].keywords,
                              "facets": {"language": {"en": 200, "other": 100}}})
    page = open_report(ClusterTree(nodes))
    page.locator(".clio-colour").select_option("facet:language=other")
    fills = page.locator(".clio-map circle.clio-node").evaluate_all("cs => cs.map(c => c.getAttribute('fill'))")
    assert fills.count("#cbd2d9") == len(nodes) - 1
    assert "no breakdown" in page.locator(".clio-scale").text_content()


def test_browser_screenshots_of_each_view(open_report, tmp_path: Path) -> None:
    """The pictures in docs/views/: the whole report, the tree, the map coloured by a facet, the details panel."""
    page = open_report(demo_release())
    page.set_viewport_size({"width": 1280, "height": 860})
    page.locator(".clio-tree .clio-row[data-id='0'] .clio-caret").click()
    page.locator(".clio-tree .clio-row[data-id='0.0']").click()
    page.locator(".clio-tree .clio-row[data-id='2'] .clio-caret").click()
    save_screenshot(page, "report.png", tmp_path, full_page=True)
    save_screenshot(page.locator(".clio-details"), "details.png", tmp_path)
    page.fill(".clio-search", "flights")
    save_screenshot(page.locator(".clio-left"), "tree-search.png", tmp_path)
    page.fill(".clio-search", "")
    save_screenshot(page.locator(".clio-left"), "tree.png", tmp_path)
    page.locator(".clio-colour").select_option("facet:language=en")
    save_screenshot(page.locator(".clio-map-panel"), "map.png", tmp_path)


def test_browser_a_5000_node_report_renders_every_node_expands_and_searches(open_report) -> None:
    tree = large_tree()
    assert len(tree) >= 5000
    page = open_report(tree)
    # Every node is on the map; the tree starts with its top level, drawing the rest as it opens.
    assert page.locator(".clio-map circle.clio-node").count() == len(tree)
    assert page.locator(".clio-tree .clio-row:visible").count() == len(tree.roots)
    page.locator(".clio-tree .clio-row[data-id='7'] .clio-caret").click()
    assert page.locator(".clio-tree .clio-row:visible").count() == len(tree.roots) + len(tree.children("7"))
    # A deep node is found by a keyword only it has; it shows with its ancestors, and can be selected.
    page.fill(".clio-search", "id13.11.4")
    assert visible_names(page) == [tree["13"].name, tree["13.11"].name, tree["13.11.4"].name]
    assert page.locator(".clio-status").text_content() == f"1 of {len(tree):,} clusters match"
    page.locator(".clio-tree .clio-row[data-id='13.11.4']").click()
    assert page.locator(".clio-details").get_attribute("data-id") == "13.11.4"
    # Still responsive, and every node reachable: opening every caret shows all of them, in walk order.
    page.fill(".clio-search", "")
    assert page.evaluate(EXPAND_ALL) == [n.id for n in tree.walk()]
