"""One-call plotly figures of a released cluster tree: icicle, sunburst, treemap and the 2-D cluster map.

Everything drawn comes from the release (names, descriptions, keywords, counts, positions); this module imports
nothing but :mod:`clio_lite.release` and plotly, so it cannot reach conversation text. plotly is imported lazily:
``pip install clio_lite[viz]``.

The hierarchical plots draw one extra node above the top-level clusters, ``"All clusters"`` (id ``ALL_ID``), so that
every plot has a single root to click back to and ``max_depth`` counts levels the same way whether the tree has one
top-level cluster or many. Sector sizes are the clusters' conversation counts with ``branchvalues="total"``: where a
parent holds more conversations than its released children (suppressed or unclustered remainders), the difference
shows as the unfilled part of the parent.
"""

from __future__ import annotations

import html
import logging
import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from clio_lite.release import ClusterNode, ClusterTree, Release

if TYPE_CHECKING:
    import plotly.graph_objects as go

log = logging.getLogger(__name__)

#: The id of the root the hierarchical plots add above the top-level clusters.
ALL_ID = "(all)"
#: Names longer than this are cut short in labels (the full name is in the hover text).
LABEL_CHARS = 32
#: The largest marker on the map, in pixels across.
MAX_MARKER_PX = 48
#: Node fields a plot can be coloured by, and the names they go by.
COLOR_FIELDS = {
    "depth": "depth",
    "share": "share_of_parent",
    "share_of_parent": "share_of_parent",
    "conversations": "conversations",
    "users": "users",
}
SIZE_FIELDS = ("users", "conversations")
COLORSCALE = "Viridis"

Color = str | Mapping[str, float] | None
Depth = int | str | None
#: With ``max_depth="auto"``, the most clusters a plot draws at once: levels are added while they fit.
AUTO_MAX_CLUSTERS = 300
#: The map's assumed drawing area, in pixels, for keeping its top-level labels from overlapping.
MAP_AREA_PX = (800, 420)


def plot_icicle(tree: ClusterTree | Release, max_depth: Depth = "auto", color: Color = None) -> go.Figure:
    """An icicle plot of the cluster tree: each cluster a bar, its children below it, sized by conversations.

    Parameters
    ----------
    tree : ClusterTree or Release
        The released clusters.
    max_depth : int, "auto" or None
        How many levels of clusters to draw at once (plotly's ``maxdepth``); clicking a cluster drills into it and
        shows that many levels below it. ``None`` draws all levels; ``"auto"`` (the default) draws as many levels as
        hold at most :data:`AUTO_MAX_CLUSTERS` clusters together (at least one), so trees of thousands of nodes stay
        readable: every node is still in the figure, a click away.
    color : str or mapping, optional
        ``None`` colours each top-level branch in its own colour; ``"depth"``, ``"share"`` (of the parent),
        ``"conversations"`` or ``"users"`` colour by that field on a continuous scale; a mapping from node id to a
        number colours by your own metric (nodes missing from it take the low end of the scale).

    Returns
    -------
    plotly.graph_objects.Figure

    Examples
    --------
    >>> plot_icicle(release.tree, max_depth=2).show()  # doctest: +SKIP
    """
    go = _plotly()
    return _hierarchy_figure(go.Icicle, tree, max_depth, color, {"tiling": {"orientation": "v"}})


def plot_sunburst(tree: ClusterTree | Release, max_depth: Depth = "auto", color: Color = None) -> go.Figure:
    """A sunburst of the cluster tree: top-level clusters in the inner ring, their children outside them.

    Takes the same parameters as :func:`plot_icicle`.

    Returns
    -------
    plotly.graph_objects.Figure

    Examples
    --------
    >>> plot_sunburst(release.tree, max_depth=2).show()  # doctest: +SKIP
    """
    go = _plotly()
    return _hierarchy_figure(go.Sunburst, tree, max_depth, color, {"insidetextorientation": "radial"})


def plot_treemap(tree: ClusterTree | Release, max_depth: Depth = "auto", color: Color = None) -> go.Figure:
    """A treemap of the cluster tree: nested rectangles with areas in proportion to conversations.

    Takes the same parameters as :func:`plot_icicle`.

    Returns
    -------
    plotly.graph_objects.Figure

    Examples
    --------
    >>> plot_treemap(release.tree, max_depth=2).show()  # doctest: +SKIP
    """
    go = _plotly()
    return _hierarchy_figure(go.Treemap, tree, max_depth, color, {"pathbar": {"visible": True}})


def plot_map(
    tree: ClusterTree | Release,
    color: Color = "depth",
    size: str | None = "users",
    max_depth: Depth = "auto",
) -> go.Figure:
    """The clusters at their positions on the 2-D map, sized by users, one legend entry per level.

    Parameters
    ----------
    tree : ClusterTree or Release
        The released clusters.
    color : str or mapping, optional
        ``"depth"`` (the default) gives each level its own colour; ``"share"``, ``"conversations"`` or ``"users"``
        colour by that field on one continuous scale; a mapping from node id to a number colours by your own metric
        (nodes missing from it take the low end of the scale); ``None`` draws every marker in one colour.
    size : {"users", "conversations"} or None
        What a marker's area is proportional to; ``None`` draws markers of one size.
    max_depth : int, "auto" or None
        Draw only the clusters down to this level; ``None`` draws every level. ``"auto"`` (the default) shows the
        levels that hold at most :data:`AUTO_MAX_CLUSTERS` clusters together and puts the deeper levels in the
        legend, hidden: click a level in the legend to show or hide it.

    Returns
    -------
    plotly.graph_objects.Figure
        One scatter trace per level (``name`` ``"level 1"``, ...), markers in walk order. The top-level clusters
        are labelled with their names, largest first, except where a label would overlap one already placed (its
        name stays in the hover text).

    Examples
    --------
    >>> plot_map(release.tree, color="share", max_depth=2).show()  # doctest: +SKIP
    """
    go = _plotly()
    tree = _as_tree(tree)
    _check_max_depth(max_depth)
    if size is not None and size not in SIZE_FIELDS:
        raise ValueError(f"size must be one of {', '.join(map(repr, SIZE_FIELDS))} or None, not {size!r}.")
    shown_depth = _auto_depth(tree) if max_depth == "auto" else max_depth
    nodes = [node for node in tree.nodes if max_depth in (None, "auto") or node.depth <= max_depth]
    labels = _unclashed_labels(tree.roots, size or "conversations")
    by_depth: dict[int, list[ClusterNode]] = {}
    for node in nodes:
        by_depth.setdefault(node.depth, []).append(node)
    palette = _qualitative_palette()
    continuous = color is not None and color != "depth"
    values = _color_values(nodes, color) if continuous else {}
    largest = max((getattr(node, size) for node in nodes), default=0) if size else 0

    figure = go.Figure()
    for index, (depth, level) in enumerate(sorted(by_depth.items())):
        marker: dict[str, Any] = {"opacity": 0.75, "line": {"width": 0.5, "color": "white"}}
        if size and largest > 0:
            marker.update(
                size=[getattr(node, size) for node in level], sizemode="area", sizemin=3,
                sizeref=2.0 * largest / MAX_MARKER_PX**2,
            )
        else:
            marker["size"] = 10
        if continuous:
            marker.update(color=[values[node.id] for node in level], coloraxis="coloraxis")
        elif color == "depth":
            marker["color"] = palette[index % len(palette)]
        labelled = depth == 1
        figure.add_trace(
            go.Scatter(
                x=[node.x for node in level],
                y=[node.y for node in level],
                ids=[node.id for node in level],
                mode="markers+text" if labelled else "markers",
                text=[labels.get(node.id, "") for node in level] if labelled else None,
                textposition="top center",
                hovertext=[_hover(node) for node in level],
                hovertemplate="%{hovertext}<extra></extra>",
                marker=marker,
                name=f"level {depth}",
                visible=True if shown_depth is None or depth <= shown_depth else "legendonly",
            )
        )
    layout: dict[str, Any] = {
        "xaxis": {"visible": False},
        "yaxis": {"visible": False, "scaleanchor": "x"},
        "legend": {"title": {"text": "Clusters"}, "itemsizing": "constant"},
        "plot_bgcolor": "white",
        "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
        "hoverlabel": {"align": "left"},
    }
    if continuous:
        layout["coloraxis"] = {"colorscale": COLORSCALE, "colorbar": {"title": {"text": _color_title(color)}}}
    figure.update_layout(**layout)
    return figure


def plot_facets(tree: ClusterTree | Release, node_id: str, facet: str, compare: bool = True) -> go.Figure:
    """A bar chart of one cluster's breakdown by a facet: each released value's share of its conversations.

    Parameters
    ----------
    tree : ClusterTree or Release
        The released clusters.
    node_id : str
        The cluster to show.
    facet : str
        A facet the release carries (``node.facets``' keys, e.g. ``"language"``).
    compare : bool
        Also draw the same values' shares in the cluster's parent (for a top-level cluster, in all released
        clusters together), so what is distinctive about the cluster stands out.

    Returns
    -------
    plotly.graph_objects.Figure
        Horizontal bars, one per released value, largest first and the pooled ``"other"`` last; the bar text is the
        share, the hover adds the count. Only released, k-supported cells are drawn: there is nothing else.

    Examples
    --------
    >>> plot_facets(release.tree, "0", "language").show()  # doctest: +SKIP
    """
    go = _plotly()
    tree = _as_tree(tree)
    if node_id not in {node.id for node in tree.nodes}:
        raise KeyError(f"No released cluster has the id {node_id!r}.")
    node = tree[node_id]
    if facet not in node.facets:
        known = sorted({name for other in tree.nodes for name in other.facets})
        raise ValueError(
            f"Cluster {node_id!r} has no {facet!r} breakdown; "
            + (f"the release's facets are {', '.join(map(repr, known))}." if known
               else "this release carries no facet breakdowns (fit with facets to get them).")
        )
    cells = _ordered_cells(node.facets[facet])
    values = [value for value, _ in cells]
    total = sum(count for _, count in cells) or 1
    labels = [_label(value) for value in values]
    figure = go.Figure()
    if compare:
        if node.parent_id is None:
            reference, name = _summed(root.facets.get(facet, {}) for root in tree.roots), "all released clusters"
        else:
            reference, name = tree[node.parent_id].facets.get(facet, {}), "parent: " + _label(tree[node.parent_id].name)
        reference_total = sum(reference.values()) or 1
        figure.add_trace(go.Bar(
            y=labels, x=[reference.get(value, 0) / reference_total for value in values], orientation="h",
            name=name, marker={"color": "#bcccdc"},
            customdata=[reference.get(value, 0) for value in values],
            hovertemplate="%{y}: %{x:.1%} (%{customdata:,} conversations)<extra>" + name + "</extra>",
        ))
    figure.add_trace(go.Bar(
        y=labels, x=[count / total for _, count in cells], orientation="h", name=_label(node.name),
        marker={"color": "#4e79a7"}, text=[f"{count / total:.0%}" for _, count in cells], textposition="outside",
        customdata=[count for _, count in cells],
        hovertemplate="%{y}: %{x:.1%} (%{customdata:,} conversations)<extra></extra>",
    ))
    figure.update_layout(
        title={"text": f"{_label(node.name)}: {html.escape(facet, quote=False)}"},
        barmode="group",
        xaxis={"tickformat": ".0%", "title": {"text": "share of conversations"}, "rangemode": "tozero"},
        yaxis={"autorange": "reversed", "automargin": True},
        height=max(260, 120 + len(cells) * (44 if compare else 26)),
        margin={"l": 10, "r": 30, "t": 50, "b": 40}, plot_bgcolor="white",
        legend={"orientation": "h", "y": -0.2, "traceorder": "reversed"},
    )
    return figure


def _ordered_cells(cells: Mapping[str, int]) -> list[tuple[str, int]]:
    """Largest first, ties by value, the pooled ``"other"`` last (as the explorer's bars)."""
    return sorted(cells.items(), key=lambda item: (item[0] == "other", -item[1], item[0]))


def _summed(breakdowns: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for cells in breakdowns:
        for value, count in cells.items():
            total[value] = total.get(value, 0) + count
    return total


def _hierarchy_figure(
    trace_type: Any, tree: ClusterTree | Release, max_depth: Depth, color: Color, options: dict[str, Any]
) -> go.Figure:
    go = _plotly()
    tree = _as_tree(tree)
    _check_max_depth(max_depth)
    if any(node.id == ALL_ID for node in tree.nodes):
        raise ValueError(f"A cluster has the id {ALL_ID!r}, which the plots use for the root above the clusters.")
    depth = _auto_depth(tree) if max_depth == "auto" else max_depth
    values = _branch_totals(tree)
    total = sum(values[node.id] for node in tree.roots)
    ids = [ALL_ID, *(node.id for node in tree.nodes)]
    parents = ["", *(node.parent_id or ALL_ID for node in tree.nodes)]
    labels = ["All clusters", *(_label(node.name) for node in tree.nodes)]
    hover = [
        f"<b>All released clusters</b><br>{total:,} conversations in {len(tree.roots):,} top-level clusters",
        *(_hover(node) for node in tree.nodes),
    ]
    marker: dict[str, Any] = {"line": {"width": 0.5}}
    if color is not None:
        by_id = _color_values(tree.nodes, color)
        low = min(by_id.values(), default=0.0)
        marker.update(
            colors=[low, *(by_id[node.id] for node in tree.nodes)], colorscale=COLORSCALE, showscale=True,
            colorbar={"title": {"text": _color_title(color)}},
        )
    trace = trace_type(
        ids=ids,
        parents=parents,
        labels=labels,
        values=[total, *(values[node.id] for node in tree.nodes)],
        branchvalues="total",
        maxdepth=-1 if depth is None else depth + 1,  # + 1: the "All clusters" root is a level to plotly
        hovertext=hover,
        hovertemplate="%{hovertext}<extra></extra>",
        marker=marker,
        sort=False,  # keep the release's order: siblings largest first
        **options,
    )
    figure = go.Figure(trace)
    # Labels that do not fit their sector are hidden rather than shrunk into an unreadable, overlapping smear.
    figure.update_layout(
        margin={"l": 10, "r": 10, "t": 30, "b": 10}, uniformtext={"minsize": 10, "mode": "hide"},
        hoverlabel={"align": "left"},
    )
    return figure


def _branch_totals(tree: ClusterTree) -> dict[str, int]:
    """Each node's conversations, raised where needed to the sum of its children's so ``branchvalues="total"`` holds.

    A gated release never needs the raise (a parent counts every conversation of its children); a tree whose counts
    were noised might, and plotly draws nothing at all for a parent smaller than its children.
    """
    totals: dict[str, int] = {}
    raised = 0
    for node in reversed(tree.nodes):  # children before parents
        below = sum(totals[child.id] for child in tree.children(node.id))
        totals[node.id] = max(node.conversations, below)
        raised += below > node.conversations
    if raised:
        log.warning(
            "%d clusters hold fewer conversations than their children together; their sectors are drawn at the "
            "children's total (the hover text shows the released count).", raised,
        )
    return totals


def _color_values(nodes: Sequence[ClusterNode], color: str | Mapping[str, float]) -> dict[str, float]:
    if isinstance(color, Mapping):
        present = [float(color[node.id]) for node in nodes if node.id in color]
        low = min(present, default=0.0)
        return {node.id: float(color.get(node.id, low)) for node in nodes}
    if color not in COLOR_FIELDS:
        raise ValueError(
            f"color must be None, a mapping from node id to a number, or one of "
            f"{', '.join(map(repr, COLOR_FIELDS))}; got {color!r}."
        )
    field = COLOR_FIELDS[color]
    return {node.id: float(getattr(node, field)) for node in nodes}


def _color_title(color: str | Mapping[str, float]) -> str:
    if isinstance(color, Mapping):
        return "value"
    return "share of parent" if COLOR_FIELDS[color] == "share_of_parent" else color


def _label(name: str) -> str:
    short = name if len(name) <= LABEL_CHARS else name[: LABEL_CHARS - 1].rstrip() + "…"
    return html.escape(short, quote=False)


def _hover(node: ClusterNode) -> str:
    description = "<br>".join(textwrap.wrap(html.escape(node.description, quote=False), 60))
    lines = [
        f"<b>{html.escape(node.name, quote=False)}</b>",
        description,
        f"{node.conversations:,} conversations · {node.users:,} users · {node.share_of_parent:.1%} of "
        + ("all released conversations" if node.parent_id is None else "parent"),
    ]
    if node.keywords:
        lines.append("keywords: " + html.escape(", ".join(node.keywords), quote=False))
    lines.append(f"id {node.id} · level {node.depth}")
    return "<br>".join(line for line in lines if line)


def _as_tree(tree: ClusterTree | Release) -> ClusterTree:
    if isinstance(tree, Release):
        return tree.tree
    if not isinstance(tree, ClusterTree):
        raise TypeError(f"Expected a ClusterTree or a Release, got {type(tree).__name__}.")
    return tree


def _check_max_depth(max_depth: Depth) -> None:
    if max_depth in (None, "auto"):
        return
    if isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < 1:
        raise ValueError(f"max_depth must be a positive int, 'auto' or None, not {max_depth!r}.")


def _auto_depth(tree: ClusterTree) -> int | None:
    """The most levels holding at most AUTO_MAX_CLUSTERS clusters together (at least one); None if all fit."""
    per_level: dict[int, int] = {}
    for node in tree.nodes:
        per_level[node.depth] = per_level.get(node.depth, 0) + 1
    drawn, depth = 0, 0
    for level in sorted(per_level):
        drawn += per_level[level]
        if drawn > AUTO_MAX_CLUSTERS and depth:
            return depth
        depth = level
    return None


def _unclashed_labels(nodes: Sequence[ClusterNode], size: str) -> dict[str, str]:
    """Map labels for ``nodes``, largest first, leaving out any that would overlap one already placed.

    Positions are scaled to an assumed drawing area of MAP_AREA_PX with labels about 7 px a character and 14 px
    high, centred above the marker: an estimate (plotly sizes the figure to its container), generous enough that
    labels that pass do not touch at the usual sizes.
    """
    placed = [node for node in nodes if math.isfinite(node.x) and math.isfinite(node.y)]
    if not placed:
        return {}
    xs, ys = [node.x for node in placed], [node.y for node in placed]
    width, height = MAP_AREA_PX
    x_span, y_span = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    scale = min(width / x_span, height / y_span)  # the axes share a scale (scaleanchor)
    boxes: list[tuple[float, float, float, float]] = []
    labels: dict[str, str] = {}
    for node in sorted(placed, key=lambda n: -getattr(n, size)):
        text = _label(node.name)
        x, y = (node.x - min(xs)) * scale, (node.y - min(ys)) * scale
        half = 3.5 * len(html.unescape(text))
        box = (x - half, y + 6, x + half, y + 20)
        if any(box[0] < other[2] and other[0] < box[2] and box[1] < other[3] and other[1] < box[3] for other in boxes):
            continue
        boxes.append(box)
        labels[node.id] = text
    return labels


def _qualitative_palette() -> list[str]:
    import plotly.colors

    return list(plotly.colors.qualitative.Plotly)


def _plotly() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError as error:
        raise ImportError("clio_lite's plots need plotly: pip install clio_lite[viz]") from error
    return go
