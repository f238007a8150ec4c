"""Tests for the plots: ``clio_lite.viz`` (icicle, sunburst, treemap, map) on hand-built cluster trees."""

from __future__ import annotations

import ast
import io
import logging
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import plotly.graph_objects as go
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import clio_lite.viz as viz
from clio_lite.release import ClusterNode, ClusterTree, Release
from clio_lite.viz import plot_facets, plot_icicle, plot_map, plot_sunburst, plot_treemap
from clio_lite.viz.plots import ALL_ID, AUTO_MAX_CLUSTERS, LABEL_CHARS, MAP_AREA_PX, _auto_depth, _unclashed_labels
from tests.trees import node
from tests.views import PageWatch, browser_context, demo_release, save_screenshot

__all__ = ["browser_context"]  # the shared Chromium fixture

# The release zone may import only itself; every other module of the package is a private stage, including
# ones added later (an allowlist, so a new stage cannot slip through).
RELEASE_ZONE = {"release", "release_files", "viz"}
HIERARCHY_PLOTS = [plot_icicle, plot_sunburst, plot_treemap]
TRACE_TYPES = {plot_icicle: go.Icicle, plot_sunburst: go.Sunburst, plot_treemap: go.Treemap}


def sample_tree() -> ClusterTree:
    # "0" holds 120 conversations but its released children only 110: 10 were suppressed or left unclustered.
    return ClusterTree([
        node("0", 120, users=61, x=1.5, y=-2.0, share=0.6),
        node("1", 80, users=33, x=-3.0, y=4.25, share=0.4),
        node("0.0", 70, users=35, x=1.0, y=-1.0, share=0.58),
        node("0.1", 40, users=20, x=2.0, y=-3.0, share=0.33),
        node("1.0", 80, users=33, x=-3.5, y=4.0, share=1.0),
        node("0.0.0", 30, users=15, x=0.5, y=-0.5, share=0.43),
    ])


def synthetic_tree(roots: int = 10, children: int = 10, grandchildren: int = 24) -> ClusterTree:
    """A three-level tree of ``roots * (1 + children * (1 + grandchildren))`` nodes with consistent counts."""
    nodes: list[ClusterNode] = []
    for r in range(roots):
        kids = []
        for c in range(children):
            leaves = [node(f"{r}.{c}.{g}", 20 + (r * 7 + c * 3 + g) % 50, x=r + c / 10 + g / 100, y=-g)
                      for g in range(grandchildren)]
            kids.append(node(f"{r}.{c}", sum(n.conversations for n in leaves) + 5, x=r + c / 10, y=c))
            nodes.extend(leaves)
        nodes.append(node(str(r), sum(n.conversations for n in kids) + 3, x=float(r), y=float(r)))
        nodes.extend(kids)
    return ClusterTree(nodes)


def all_markers(figure: go.Figure, field: str) -> list:
    return [value for trace in figure.data for value in (getattr(trace, field) or ())]


# ----------------------------------------------------------------------------------------------------------
# Icicle, sunburst, treemap
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("plot", HIERARCHY_PLOTS)
def test_hierarchy_trace_has_the_tree_ids_parents_and_conversation_counts(plot: Callable) -> None:
    tree = sample_tree()
    figure = plot(tree)
    assert isinstance(figure, go.Figure)
    (trace,) = figure.data
    assert isinstance(trace, TRACE_TYPES[plot])
    assert trace.branchvalues == "total"
    # One root above the top-level clusters, then every released node in walk order.
    assert list(trace.ids) == [ALL_ID, *(n.id for n in tree.walk())]
    assert list(trace.parents) == ["", *(n.parent_id or ALL_ID for n in tree.walk())]
    assert list(trace.values) == [200, *(n.conversations for n in tree.walk())]
    assert list(trace.labels)[1:] == [n.name for n in tree.walk()]


@pytest.mark.parametrize("plot", HIERARCHY_PLOTS)
def test_a_parent_keeps_its_own_count_so_the_unreleased_remainder_shows_as_unfilled(plot: Callable) -> None:
    trace = plot(sample_tree()).data[0]
    values = dict(zip(trace.ids, trace.values, strict=True))
    assert values["0"] == 120 > values["0.0"] + values["0.1"] == 110
    for node_id, parent in zip(trace.ids, trace.parents, strict=True):
        children = [values[c] for c, p in zip(trace.ids, trace.parents, strict=True) if p == node_id]
        assert values[node_id] >= sum(children), f"{node_id} (parent {parent!r}) is smaller than its children"


def test_a_parent_smaller_than_its_children_is_drawn_at_their_total_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Noised counts can leave a parent below its children; plotly would then draw nothing of that branch.
    tree = ClusterTree([node("0", 50), node("0.0", 40), node("0.1", 30), node("0.1.0", 35)])
    with caplog.at_level(logging.WARNING, logger="clio_lite.viz.plots"):
        trace = plot_icicle(tree).data[0]
    values = dict(zip(trace.ids, trace.values, strict=True))
    assert values == {ALL_ID: 75, "0": 75, "0.0": 40, "0.1": 35, "0.1.0": 35}
    assert "2 clusters hold fewer conversations than their children" in caplog.text
    hover = dict(zip(trace.ids, trace.hovertext, strict=True))
    assert "50 conversations" in hover["0"]  # the released count, not the drawn one


@pytest.mark.parametrize("plot", HIERARCHY_PLOTS)
def test_hover_text_shows_name_description_counts_and_share(plot: Callable) -> None:
    tree = sample_tree()
    trace = plot(tree).data[0]
    assert trace.hovertemplate == "%{hovertext}<extra></extra>"
    hover = dict(zip(trace.ids, trace.hovertext, strict=True))
    for n in tree:
        text = hover[n.id]
        assert n.name in text and n.description in text
        assert f"{n.conversations:,} conversations · {n.users:,} users" in text
        assert f"{n.share_of_parent:.1%}" in text
    assert "58.0% of parent" in hover["0.0"]
    assert "60.0% of all released conversations" in hover["0"]
    assert "200 conversations in 2 top-level clusters" in hover[ALL_ID]


def test_long_names_are_cut_short_in_labels_and_kept_whole_in_the_hover() -> None:
    long_name = "Debugging asynchronous Python web servers that deadlock under load"
    tree = ClusterTree([node("0", 10, name=long_name), node("1", 5, name="Short")])
    trace = plot_sunburst(tree).data[0]
    labels = dict(zip(trace.ids, trace.labels, strict=True))
    assert len(labels["0"]) == LABEL_CHARS and labels["0"].endswith("…")
    assert long_name.startswith(labels["0"][:-1])
    assert labels["1"] == "Short"
    assert long_name in dict(zip(trace.ids, trace.hovertext, strict=True))["0"]


def test_names_are_escaped_so_markup_in_a_name_is_shown_not_interpreted() -> None:
    tree = ClusterTree([node("0", 10, name="<b>C++ & templates</b>")])
    trace = plot_treemap(tree).data[0]
    assert list(trace.labels)[1] == "&lt;b&gt;C++ &amp; templates&lt;/b&gt;"
    assert "<b>&lt;b&gt;C++ &amp; templates&lt;/b&gt;</b>" in trace.hovertext[1]


@pytest.mark.parametrize("plot", HIERARCHY_PLOTS)
def test_max_depth_becomes_plotly_maxdepth_counting_the_root(plot: Callable) -> None:
    assert plot(sample_tree()).data[0].maxdepth == -1  # "auto": a small tree is drawn whole
    assert plot(sample_tree(), max_depth=None).data[0].maxdepth == -1
    assert plot(sample_tree(), max_depth=1).data[0].maxdepth == 2
    assert plot(sample_tree(), max_depth=2).data[0].maxdepth == 3
    # Every node is still in the trace: clicking a cluster drills down to the levels below it.
    assert len(plot(sample_tree(), max_depth=1).data[0].ids) == 7


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True, "all"])
def test_max_depth_must_be_a_positive_int(bad: object) -> None:
    with pytest.raises(ValueError, match="max_depth"):
        plot_icicle(sample_tree(), max_depth=bad)
    with pytest.raises(ValueError, match="max_depth"):
        plot_map(sample_tree(), max_depth=bad)


def test_hierarchy_colour_by_a_field_or_a_mapping_of_node_ids() -> None:
    tree = sample_tree()
    assert plot_icicle(tree).data[0].marker.colors is None  # plotly's colour per top-level branch
    depth = plot_icicle(tree, color="depth").data[0].marker
    assert list(depth.colors) == [1, *(n.depth for n in tree.walk())]
    assert depth.showscale and depth.colorbar.title.text == "depth"
    share = plot_sunburst(tree, color="share").data[0].marker
    assert list(share.colors)[1:] == [n.share_of_parent for n in tree.walk()]
    custom = plot_treemap(tree, color={"0": 0.9, "1": 0.2}).data[0].marker
    assert dict(zip(plot_treemap(tree).data[0].ids, custom.colors, strict=True)) == {
        ALL_ID: 0.2, "0": 0.9, "0.0": 0.2, "0.0.0": 0.2, "0.1": 0.2, "1": 0.2, "1.0": 0.2,
    }
    with pytest.raises(ValueError, match="'share'"):
        plot_icicle(tree, color="sentiment")


def test_a_release_or_its_tree_can_be_plotted_and_anything_else_is_refused() -> None:
    tree = sample_tree()
    from_release = plot_sunburst(Release(tree, {"counts": {}}))
    assert list(from_release.data[0].ids) == list(plot_sunburst(tree).data[0].ids)
    with pytest.raises(TypeError, match="ClusterTree or a Release"):
        plot_icicle(tree.to_pandas())


def test_an_empty_tree_plots_an_empty_root() -> None:
    trace = plot_icicle(ClusterTree([])).data[0]
    assert list(trace.ids) == [ALL_ID] and list(trace.values) == [0]
    assert plot_map(ClusterTree([])).data == ()


# ----------------------------------------------------------------------------------------------------------
# The map
# ----------------------------------------------------------------------------------------------------------


def test_map_puts_each_cluster_at_its_position_sized_by_users() -> None:
    tree = sample_tree()
    figure = plot_map(tree)
    assert [trace.name for trace in figure.data] == ["level 1", "level 2", "level 3"]
    by_id = {n.id: n for n in tree}
    ids = all_markers(figure, "ids")
    assert sorted(ids) == sorted(by_id)
    assert all_markers(figure, "x") == [by_id[i].x for i in ids]
    assert all_markers(figure, "y") == [by_id[i].y for i in ids]
    sizes = [s for trace in figure.data for s in trace.marker.size]
    assert sizes == [by_id[i].users for i in ids]
    marker = figure.data[0].marker
    assert marker.sizemode == "area" and marker.sizeref == pytest.approx(2 * 61 / 48**2)


def test_map_sizes_by_conversations_or_not_at_all() -> None:
    tree = sample_tree()
    sizes = [s for trace in plot_map(tree, size="conversations").data for s in trace.marker.size]
    ids = all_markers(plot_map(tree, size="conversations"), "ids")
    assert sizes == [tree[i].conversations for i in ids]
    assert {trace.marker.size for trace in plot_map(tree, size=None).data} == {10}
    with pytest.raises(ValueError, match="size must be one of"):
        plot_map(tree, size="share")


def test_map_hover_and_top_level_labels() -> None:
    tree = sample_tree()
    figure = plot_map(tree)
    hover = dict(zip(all_markers(figure, "ids"), all_markers(figure, "hovertext"), strict=True))
    assert "Topic 0.0.0" in hover["0.0.0"] and "30 conversations · 15 users" in hover["0.0.0"]
    assert list(figure.data[0].text) == ["Topic 0", "Topic 1"]  # only the top level is labelled on the map
    assert figure.data[1].text is None


def test_map_colours_levels_apart_or_shares_one_scale_across_levels() -> None:
    tree = sample_tree()
    by_level = plot_map(tree, color="depth")
    colours = [trace.marker.color for trace in by_level.data]
    assert len(set(colours)) == 3 and all(isinstance(c, str) for c in colours)
    shared = plot_map(tree, color="share")
    assert {trace.marker.coloraxis for trace in shared.data} == {"coloraxis"}
    ids = all_markers(shared, "ids")
    assert [c for trace in shared.data for c in trace.marker.color] == [tree[i].share_of_parent for i in ids]
    assert shared.layout.coloraxis.colorbar.title.text == "share of parent"


def test_map_max_depth_leaves_out_deeper_levels() -> None:
    figure = plot_map(sample_tree(), max_depth=2)
    assert [trace.name for trace in figure.data] == ["level 1", "level 2"]
    assert sorted(all_markers(figure, "ids")) == ["0", "0.0", "0.1", "1", "1.0"]


# ----------------------------------------------------------------------------------------------------------
# Methods on the tree, size, offline HTML, missing plotly
# ----------------------------------------------------------------------------------------------------------


def test_tree_methods_give_the_same_figures_as_the_functions() -> None:
    tree = sample_tree()
    assert tree.plot_icicle(max_depth=2, color="users").to_dict() == plot_icicle(tree, 2, "users").to_dict()
    assert tree.plot_sunburst(max_depth=1).to_dict() == plot_sunburst(tree, max_depth=1).to_dict()
    assert tree.plot_treemap(color="share").to_dict() == plot_treemap(tree, color="share").to_dict()
    assert tree.plot_map(color="users", size="conversations", max_depth=2).to_dict() == plot_map(
        tree, color="users", size="conversations", max_depth=2
    ).to_dict()


def test_a_tree_of_2500_nodes_builds_every_figure_quickly() -> None:
    tree = synthetic_tree()
    assert len(tree) == 2510 and tree.depth == 3
    start = time.perf_counter()
    figures = [plot(tree, max_depth=2) for plot in HIERARCHY_PLOTS] + [plot_map(tree, max_depth=2)]
    elapsed = time.perf_counter() - start
    assert elapsed < 5, f"building the figures took {elapsed:.1f} s"
    for figure in figures[:3]:
        trace = figure.data[0]
        assert len(trace.ids) == 2511 and trace.maxdepth == 3
        assert len(set(trace.ids)) == 2511
    assert len(all_markers(figures[3], "ids")) == 110


@pytest.mark.parametrize("plot", HIERARCHY_PLOTS)
def test_a_large_tree_draws_as_many_levels_as_stay_readable_by_default(plot: Callable) -> None:
    tree = synthetic_tree()  # 10 + 100 + 2,400 clusters
    assert 110 <= AUTO_MAX_CLUSTERS < 2510
    trace = plot(tree).data[0]
    assert trace.maxdepth == 3 and len(trace.ids) == 2511  # two levels (and the root) drawn; all a click away
    assert plot(tree, max_depth=None).data[0].maxdepth == -1
    assert plot(synthetic_tree(roots=400, children=1, grandchildren=1)).data[0].maxdepth == 2  # one level at least


def test_a_large_map_shows_the_readable_levels_and_keeps_the_rest_in_the_legend() -> None:
    figure = plot_map(synthetic_tree())
    assert [(trace.name, trace.visible) for trace in figure.data] == [
        ("level 1", True), ("level 2", True), ("level 3", "legendonly")]
    assert len(all_markers(figure, "ids")) == 2510
    assert {trace.visible for trace in plot_map(synthetic_tree(), max_depth=None).data} == {True}


def test_map_labels_that_would_overlap_are_left_to_the_hover() -> None:
    tree = ClusterTree([
        node("0", 100, users=90, name="Travel · Flights", x=0.0, y=0.0),
        node("1", 80, users=50, name="Travel · Hotels", x=0.05, y=0.01),  # almost on top of "0"
        node("2", 60, users=40, name="Cooking · Bread", x=10.0, y=5.0),
    ])
    figure = plot_map(tree)
    labels = dict(zip(figure.data[0].ids, figure.data[0].text, strict=True))
    assert labels == {"0": "Travel · Flights", "1": "", "2": "Cooking · Bread"}
    assert "Travel · Hotels" in figure.data[0].hovertext[1]


@settings(max_examples=40, deadline=None)
@given(roots=st.integers(1, 40), children=st.integers(0, 12), grandchildren=st.integers(0, 8))
def test_auto_depth_draws_the_most_levels_that_fit(roots: int, children: int, grandchildren: int) -> None:
    tree = synthetic_tree(roots, children, grandchildren) if children else ClusterTree(
        [node(str(r), 10) for r in range(roots)])
    drawn = {d: sum(n.depth <= d for n in tree) for d in range(1, tree.depth + 1)}
    depth = _auto_depth(tree)
    if depth is None:
        assert drawn[tree.depth] <= AUTO_MAX_CLUSTERS
    else:
        assert 1 <= depth < tree.depth and drawn[depth + 1] > AUTO_MAX_CLUSTERS
        assert depth == 1 or drawn[depth] <= AUTO_MAX_CLUSTERS
    assert plot_icicle(tree).data[0].maxdepth == (-1 if depth is None else depth + 1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(-20, 20), st.floats(-20, 20), st.integers(20, 500),
                          st.text(st.characters(codec="ascii", categories=["L"]), min_size=1, max_size=40)),
                min_size=1, max_size=25))
def test_map_labels_never_overlap_and_the_largest_cluster_is_always_named(roots: list[tuple]) -> None:
    tree = ClusterTree([node(str(i), conversations, x=x, y=y, name=name)
                        for i, (x, y, conversations, name) in enumerate(roots)])
    labels = _unclashed_labels(tree.roots, "conversations")
    assert max(tree.roots, key=lambda n: n.conversations).id in labels
    # At the assumed drawing size, two names closer than a line apart vertically are apart horizontally.
    xs, ys = [n.x for n in tree.roots], [n.y for n in tree.roots]
    scale = min(MAP_AREA_PX[0] / ((max(xs) - min(xs)) or 1), MAP_AREA_PX[1] / ((max(ys) - min(ys)) or 1))
    placed = [(tree[i], text) for i, text in labels.items()]
    for k, (a, a_text) in enumerate(placed):
        for b, b_text in placed[k + 1:]:
            if abs(a.y - b.y) * scale < 14:
                assert abs(a.x - b.x) * scale >= 3.5 * (len(a_text) + len(b_text)), (a.name, b.name)


def test_html_export_is_self_contained_for_offline_use() -> None:
    html = plot_sunburst(sample_tree()).to_html(include_plotlyjs=True, full_html=True)
    assert "Topic 0.0.0" in html
    assert len(html) > 1_000_000  # plotly.js itself is inlined
    script_sources = re.findall(r"<script[^>]*\bsrc\s*=\s*[\"']?([^\"' >]+)", html, flags=re.IGNORECASE)
    assert [src for src in script_sources if re.match(r"(https?:)?//", src)] == []
    assert "cdn.plot.ly/plotly" not in html


def test_missing_plotly_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)  # makes the import fail
    for plot in [*HIERARCHY_PLOTS, plot_map]:
        with pytest.raises(ImportError, match=re.escape("pip install clio_lite[viz]")):
            plot(sample_tree())
    with pytest.raises(ImportError, match=re.escape("clio_lite[viz]")):
        sample_tree().plot_treemap()


# ----------------------------------------------------------------------------------------------------------
# Facet breakdowns
# ----------------------------------------------------------------------------------------------------------


def test_plot_facets_draws_each_released_value_as_a_share_against_the_parent() -> None:
    tree = demo_release().tree
    child, parent = tree["0.1"], tree["0"]
    figure = plot_facets(tree, "0.1", "language")
    compared, shown = figure.data
    cells = child.facets["language"]
    order = sorted(cells, key=lambda v: (v == "other", -cells[v], v))
    assert list(shown.y) == order and order[-1] == "other"
    assert list(shown.x) == pytest.approx([cells[v] / sum(cells.values()) for v in order])
    assert list(shown.customdata) == [cells[v] for v in order]
    assert list(compared.y) == order and compared.name.startswith("parent: ")
    parent_cells = parent.facets["language"]
    assert list(compared.x) == pytest.approx([parent_cells[v] / sum(parent_cells.values()) for v in order])
    assert shown.orientation == "h" and figure.layout.xaxis.tickformat == ".0%"


def test_plot_facets_of_a_top_level_cluster_compares_with_all_released_clusters() -> None:
    tree = demo_release().tree
    compared, _ = tree.plot_facets("3", "turns").data
    totals = {v: sum(root.facets["turns"][v] for root in tree.roots) for v in tree["3"].facets["turns"]}
    assert compared.name == "all released clusters"
    assert dict(zip(compared.y, compared.x, strict=True)) == pytest.approx(
        {v: count / sum(totals.values()) for v, count in totals.items()})
    assert len(plot_facets(tree, "3", "turns", compare=False).data) == 1


def test_plot_facets_names_what_is_missing() -> None:
    with pytest.raises(KeyError, match="'7.7'"):
        plot_facets(demo_release().tree, "7.7", "language")
    with pytest.raises(ValueError, match="release's facets are 'language', 'turns'"):
        plot_facets(demo_release().tree, "0", "sentiment")
    with pytest.raises(ValueError, match="carries no facet breakdowns"):
        plot_facets(sample_tree(), "0", "language")


# ----------------------------------------------------------------------------------------------------------
# Screenshots of the plots and of the terminal view, in Chromium
# ----------------------------------------------------------------------------------------------------------


def test_screenshots_of_the_plots(browser_context, tmp_path: Path) -> None:
    import plotly.offline

    tree = demo_release().tree
    (tmp_path / "plotly.min.js").write_text(plotly.offline.get_plotlyjs(), encoding="utf-8")
    figures = {
        "plot-treemap.png": tree.plot_treemap(max_depth=2), "plot-sunburst.png": tree.plot_sunburst(),
        "plot-icicle.png": tree.plot_icicle(max_depth=2, color="share"), "plot-map.png": tree.plot_map(),
        "plot-facets.png": tree.plot_facets("0.0", "language"),
    }
    watch = PageWatch(browser_context)
    watch.page.set_viewport_size({"width": 900, "height": 560})
    for name, figure in figures.items():
        figure.update_layout(width=880, height=540 if name != "plot-facets.png" else 420)
        path = tmp_path / name.replace(".png", ".html")
        figure.write_html(path, include_plotlyjs="plotly.min.js", full_html=True)
        watch.page.goto(path.resolve().as_uri())
        watch.page.wait_for_selector(".main-svg")
        save_screenshot(watch.page.locator(".js-plotly-plot"), name, tmp_path)
    assert watch.errors == [] and watch.remote_requests() == []
    watch.page.close()


def test_screenshot_of_the_terminal_view(
    browser_context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``clio-lite show DIR --max-depth 2`` on a saved release, its colours kept, drawn as rich's SVG in Chromium."""
    from rich.console import Console
    from rich.text import Text

    from clio_lite import cli

    saved = demo_release().save(tmp_path / "release")
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setattr(cli, "console", Console())  # made now, so it sees the width and colours set here
    assert cli.main(["show", str(saved), "--max-depth", "2"]) == 0
    out = capsys.readouterr().out
    plain = Text.from_ansi(out).plain
    assert "8 top-level clusters" in plain and "Dataframe · Merge" in plain and "Merge · Keyerror" not in plain
    assert "Where every conversation went" in plain and "\x1b[" in out

    recorder = Console(record=True, width=100, file=io.StringIO())
    recorder.print(Text.from_ansi(out))
    # rich's SVG names a web font; the page must fetch nothing, so the system's monospace font draws it.
    svg = re.sub(r"@font-face\s*{[^}]*}", "", recorder.export_svg(title="clio-lite show release/ --max-depth 2"))
    page = tmp_path / "terminal.html"
    page.write_text(f"<!DOCTYPE html><html><body style='margin:0'>{svg}</body></html>", encoding="utf-8")
    watch = PageWatch(browser_context)
    watch.page.set_viewport_size({"width": 1240, "height": 900})
    watch.page.goto(page.resolve().as_uri())
    save_screenshot(watch.page.locator("svg").first, "terminal.png", tmp_path)
    assert watch.remote_requests() == []
    watch.page.close()


# ----------------------------------------------------------------------------------------------------------
# Isolation from the private stages
# ----------------------------------------------------------------------------------------------------------


def imported_modules(source: str, package: str) -> set[str]:
    """Every module a source file in ``package`` imports, relative imports resolved against that package."""
    found: set[str] = set()
    for stmt in ast.walk(ast.parse(source)):
        if isinstance(stmt, ast.Import):
            found.update(alias.name for alias in stmt.names)
        elif isinstance(stmt, ast.ImportFrom):
            if stmt.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - stmt.level + 1])
                module = f"{base}.{stmt.module}" if stmt.module else base
            else:
                module = stmt.module or ""
            found.add(module)
            # from clio_lite import pipeline / from .. import privacy: the names may be modules too
            found.update(f"{module}.{alias.name}" for alias in stmt.names)
    return found


def private_imports(source: str, package: str = "clio_lite.viz") -> set[str]:
    def private(module: str) -> bool:
        parts = module.split(".")
        # The package root imports the pipeline, so importing it reaches the private stages as well.
        return parts[0] == "clio_lite" and (len(parts) == 1 or parts[1] not in RELEASE_ZONE)

    return {m for m in imported_modules(source, package) if private(m)}


def test_private_import_check_catches_every_import_form() -> None:
    for source in ["from ..privacy import gate", "import clio_lite.scrub", "from clio_lite.name import X",
                   "from .. import embed", "from clio_lite import pipeline", "def f():\n    from ..io import x\n",
                   "import clio_lite", "from clio_lite.audit import audit", "from .. import Clio"]:
        assert private_imports(source), source
    assert not private_imports("import json\nimport plotly.graph_objects as go\nfrom clio_lite.release import X\n"
                               "from .plots import plot_map\nfrom ..release import ClusterTree")


def test_viz_modules_import_nothing_from_the_private_stages() -> None:
    files = sorted(Path(viz.__file__).parent.glob("*.py"))
    assert {p.name for p in files} >= {"__init__.py", "plots.py"}
    for path in files:
        source = path.read_text(encoding="utf-8")
        assert imported_modules(source, "clio_lite.viz"), f"{path.name}: the parse sees no imports"
        assert private_imports(source) == set(), path.name
    plots_source = (Path(viz.__file__).parent / "plots.py").read_text(encoding="utf-8")
    assert "clio_lite.release" in imported_modules(plots_source, "clio_lite.viz")
