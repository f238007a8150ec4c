"""Tests for the notebook explorer: ``clio_lite.viz.widget.ClusterExplorer`` and ``ClusterTree.show/explore``.

The Python side is checked for what it sends to the front end (the synchronised traitlets); the front end, the
widget's own ES module, is rendered in headless Chromium by a small harness page that plays anywidget's part: it
hands ``render({model, el})`` a model holding the widget's state, and records what the view sends back, which is
then applied to the Python widget as the kernel would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import traitlets

from clio_lite.release import ClusterTree
from clio_lite.viz import report
from clio_lite.viz.report import PAYLOAD_FIELDS, explorer_data
from clio_lite.viz.widget import CSS, ESM, ClusterExplorer
from tests.trees import node
from tests.views import EXPAND_ALL, PageWatch, browser_context, demo_release, harness_page, large_tree, save_screenshot

__all__ = ["browser_context"]  # the shared Chromium fixture

# ----------------------------------------------------------------------------------------------------------
# The Python side: what is sent to the front end
# ----------------------------------------------------------------------------------------------------------


def test_the_widget_sends_the_release_as_the_report_does() -> None:
    release = demo_release()
    explorer = release.explore()
    state = explorer.get_state()
    assert state["data"] == explorer_data(release)
    assert state["data"]["fields"] == list(PAYLOAD_FIELDS) and "facets" in PAYLOAD_FIELDS
    rows = [dict(zip(PAYLOAD_FIELDS, row, strict=True)) for row in state["data"]["nodes"]]
    assert [row["id"] for row in rows] == [n.id for n in release.tree.walk()]
    assert rows[1]["facets"] == release.tree.nodes[1].facets and rows[1]["facets"]["language"]["en"] > 0
    assert state["data"]["manifest"] == {
        "counts": release.counts, "thresholds": release.manifest["thresholds"],
        "config_hash": release.manifest["config_hash"], "audit": {"passed": True, "errors": 0, "warnings": 2},
    }
    assert (state["selected"], state["search"], state["color_by"], state["open_depth"]) == ("", "", "depth", 1)
    # It is all JSON: what the comm sends.
    assert json.loads(json.dumps(state["data"])) == state["data"]


def test_a_bare_tree_sends_no_manifest_and_show_options_reach_the_widget() -> None:
    tree = demo_release().tree
    explorer = tree.explore(open_depth=2, height=300)
    assert explorer.data["manifest"] == {}
    assert (explorer.open_depth, explorer.height) == (2, 300)
    assert explorer.tree is tree
    assert repr(explorer) == f"ClusterExplorer({len(tree)} clusters, selected='')"


def test_the_front_end_is_the_shared_explorer_with_nothing_fetched() -> None:
    explorer = ClusterExplorer(demo_release())
    state = explorer.get_state()
    explorer_js, explorer_css = report.asset("explorer.js"), report.asset("explorer.css")
    # One source: the widget's module and the report's script both carry the explorer file verbatim.
    assert state["_esm"] == ESM and ESM.startswith(explorer_js) and "export default { render }" in ESM
    assert explorer_js in report.render_html(demo_release())
    assert state["_css"] == CSS == explorer_css
    assert not re.search(r"^\s*import\b|\bimport\s*\(|https?://(?!www\.w3\.org/2000/svg)", ESM, flags=re.M)
    assert "url(" not in CSS and "@import" not in CSS


def test_selection_is_validated_and_resolves_to_the_node() -> None:
    release = demo_release()
    explorer = release.explore()
    explorer.selected = "0.1"
    assert explorer.selected_node == release.tree["0.1"]
    explorer.selected = ""
    assert explorer.selected_node is None
    with pytest.raises(traitlets.TraitError, match="No released cluster has the id '9.9'"):
        explorer.selected = "9.9"


def test_colour_is_a_level_a_share_or_a_released_facet_value() -> None:
    explorer = demo_release().explore()
    for key in ("share", "facet:language=es", "facet:turns=8+", "depth"):
        explorer.color_by = key
        assert explorer.color_by == key
    for bad in ("facet:language=xx", "facet:sentiment=happy", "users"):
        with pytest.raises(traitlets.TraitError, match="language, turns"):
            explorer.color_by = bad
    with pytest.raises(traitlets.TraitError, match="none in this release"):
        ClusterTree([node("0", 100), node("0.0", 60)]).explore().color_by = "facet:a=b"
    with pytest.raises(traitlets.TraitError, match="open_depth must be at least 1"):
        explorer.open_depth = 0


def test_anything_but_a_release_or_tree_is_refused() -> None:
    with pytest.raises(TypeError, match="Release or a ClusterTree"):
        ClusterExplorer(demo_release().tree.to_pandas())


def test_outside_a_notebook_show_prints_the_tree(capsys: pytest.CaptureFixture[str]) -> None:
    release = demo_release()
    release.tree.show(max_depth=1)
    out = capsys.readouterr().out
    assert "8 top-level clusters" in out and "Python · Pandas" in out and "Dataframe · Merge" not in out
    release.show(max_depth=2)
    assert "Dataframe · Merge" in capsys.readouterr().out
    release.tree.show(max_depth=2, widget=False)
    assert "Dataframe · Merge" in capsys.readouterr().out


def test_show_with_widget_true_displays_the_explorer(capsys: pytest.CaptureFixture[str]) -> None:
    # Outside a kernel, IPython's display falls back to printing the object's plain-text form.
    demo_release().tree.show(widget=True)
    assert capsys.readouterr().out.strip() == "ClusterExplorer(37 clusters, selected='')"


# ----------------------------------------------------------------------------------------------------------
# The front end, in Chromium: the widget's ES module rendered by a harness page in anywidget's place
# ----------------------------------------------------------------------------------------------------------

@pytest.fixture
def open_widget(browser_context, tmp_path: Path) -> Iterator[Callable[[ClusterExplorer], Any]]:
    watches: list[PageWatch] = []

    def open_page(explorer: ClusterExplorer) -> Any:
        watch = PageWatch(browser_context)
        watch.page.goto(harness_page(explorer, tmp_path / f"widget-{len(watches)}.html").resolve().as_uri())
        watch.page.wait_for_selector("body[data-ready=yes]")
        watches.append(watch)
        return watch.page

    yield open_page
    for watch in watches:
        assert watch.errors == [], f"the widget met errors: {watch.errors}"
        assert watch.remote_requests() == [], f"the widget fetched: {watch.remote_requests()}"
        watch.page.close()


def visible_ids(page) -> list[str]:
    return page.locator(".clio-tree .clio-row:visible").evaluate_all("rows => rows.map(r => r.dataset.id)")


def sync_back(page, explorer: ClusterExplorer) -> list[dict[str, Any]]:
    """Apply what the view saved to the Python widget, as the kernel does with the comm's update messages."""
    saved = page.evaluate("() => window.saved.splice(0)")
    for update in saved:
        explorer.set_state(update)
    return saved


def test_widget_renders_every_node_expands_searches_and_selects(open_widget, tmp_path: Path) -> None:
    release = demo_release()
    explorer = release.explore()
    page = open_widget(explorer)
    tree = release.tree
    assert page.locator(".clio-tree .clio-row").count() == len(tree.roots)  # the rest is drawn when opened
    assert page.locator(".clio-map circle.clio-node").count() == len(tree)
    assert visible_ids(page) == [n.id for n in tree.roots]
    assert page.locator(".clio-summary [data-count='released']").text_content() == f"released {5996:,}"

    page.locator(".clio-tree .clio-row[data-id='0'] .clio-caret").click()
    assert visible_ids(page) == ["0", *(n.id for n in tree.children("0")), *(n.id for n in tree.roots[1:])]

    page.fill(".clio-search", "keyerror")
    assert visible_ids(page) == ["0", "0.0", "0.0.0"]
    page.locator(".clio-map circle.clio-node[data-id='2.0']").click()
    assert page.locator(".clio-details").get_attribute("data-id") == "2.0"
    assert page.locator(".clio-details .clio-facet").count() == 2

    # What the view sent reaches the Python widget.
    assert sync_back(page, explorer) == [{"search": "keyerror"}, {"selected": "2.0"}]
    assert explorer.search == "keyerror" and explorer.selected_node == tree["2.0"]

    # What Python sets reaches the view (the kernel sends the new state; the model fires its change events).
    explorer.search = ""
    explorer.selected = "1.2"
    explorer.color_by = "facet:turns=8+"
    page.evaluate("(s) => Object.entries(s).forEach(([k, v]) => window.model.set(k, v))",
                  explorer.get_state(["search", "selected", "color_by"]))
    assert page.locator(".clio-details").get_attribute("data-id") == "1.2"
    assert page.locator(".clio-search").input_value() == ""
    assert page.locator(".clio-colour").input_value() == "facet:turns=8+"
    assert page.evaluate("() => window.saved") == []  # following the model sends nothing back
    save_screenshot(page, "widget.png", tmp_path, full_page=True)


def test_widget_opens_at_its_depth_with_its_selection(open_widget) -> None:
    release = demo_release()
    explorer = release.explore(open_depth=2)
    explorer.selected = "0.0.1"
    page = open_widget(explorer)
    assert page.locator(".clio-tree .clio-row:visible").count() == len(release.tree.roots) + sum(
        len(release.tree.children(n.id)) for n in release.tree.roots) + 3  # + the selection's siblings, opened
    assert page.locator(".clio-details h2").text_content() == release.tree["0.0.1"].name
    assert page.evaluate("() => window.saved") == []
    # Unmounting removes the model listeners the view added.
    page.evaluate("() => window.cleanup()")
    page.evaluate("() => window.model.set('selected', '1')")
    assert page.locator(".clio-details").get_attribute("data-id") == "0.0.1"


def test_widget_of_5000_nodes_renders_every_node_and_finds_a_deep_one(open_widget) -> None:
    tree = large_tree()
    assert len(tree) >= 5000
    explorer = tree.explore()
    page = open_widget(explorer)
    assert page.locator(".clio-map circle.clio-node").count() == len(tree)
    page.locator(".clio-tree .clio-row[data-id='19'] .clio-caret").click()
    assert len(visible_ids(page)) == len(tree.roots) + len(tree.children("19"))
    explorer.search = "id4.15.14"
    page.evaluate("(text) => window.model.set('search', text)", explorer.search)
    assert visible_ids(page) == ["4", "4.15", "4.15.14"]
    page.locator(".clio-tree .clio-row[data-id='4.15.14']").click()
    sync_back(page, explorer)
    assert explorer.selected_node == tree["4.15.14"]
    # Every node is reachable: opening every caret shows them all, in walk order (and the page still answers).
    page.evaluate("() => window.model.set('search', '')")
    assert page.evaluate(EXPAND_ALL) == [n.id for n in tree.walk()]


def test_without_anywidget_explore_names_the_extra_and_show_prints(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "anywidget", None)  # makes the import fail
    monkeypatch.delitem(sys.modules, "clio_lite.viz.widget")
    tree = demo_release().tree
    with pytest.raises(ImportError, match=re.escape("pip install clio_lite[viz]")):
        tree.explore()
    tree.show(max_depth=1)
    assert "8 top-level clusters" in capsys.readouterr().out


@pytest.mark.slow
def test_a_fitted_release_explored_shows_its_clusters_and_nothing_of_the_conversations(
    corpus, fitted, open_widget
) -> None:
    """End to end: the real pipeline's release, in the widget and the report, holds no id, PII value or quote."""
    release = fitted.release_
    explorer = release.explore()
    sent = json.dumps(explorer.get_state(["data"]), ensure_ascii=False) + report.render_html(release)
    ids = {str(record["id"]) for record in corpus} | {str(record.get("user_id")) for record in corpus}
    assert not [identifier for identifier in ids if identifier in sent and identifier != "None"]
    values = [pii["value"].lower() for record in corpus for pii in record.get("pii", [])]
    assert values and not [value for value in values if value in sent.lower()]
    page = open_widget(explorer)
    assert page.evaluate(EXPAND_ALL) == [n.id for n in release.tree.walk()]
    assert page.locator(".clio-summary [data-count='released']").text_content() == (
        f"released {release.counts['released']:,}")
