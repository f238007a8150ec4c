"""The notebook explorer: a release's tree, search box, details panel and 2-D map as an anywidget.

``tree.show()`` in Jupyter, JupyterLab or VS Code displays a :class:`ClusterExplorer`; ``tree.explore()`` returns
one to keep and script. Its front end is the same explorer the HTML report runs (``assets/explorer.js`` and
``assets/explorer.css``), wrapped in an ES module that anywidget loads from the kernel: no script, style or font is
fetched from the internet. The data it sends is :func:`clio_lite.viz.report.explorer_data`, the release's own
fields, nothing else. Needs ``anywidget`` (``pip install clio_lite[viz]``).
"""

from __future__ import annotations

from typing import Any

try:
    import anywidget
    import traitlets
except ImportError as error:
    raise ImportError(
        "The notebook explorer needs anywidget: pip install clio_lite[viz] (or pip install anywidget)."
    ) from error

from clio_lite.release import ClusterNode, ClusterTree, Release
from clio_lite.viz.report import DEFAULT_TITLE, asset, explorer_data

#: The model's front-end glue: starts the shared explorer in the widget's element and keeps it and the model in step.
_RENDER = """
function render({ model, el }) {
  let api = null;
  let fromView = false;  // a change the view made itself: the model's echo of it is not applied again
  const send = (key, value) => {
    fromView = true;
    try { model.set(key, value); model.save_changes(); } finally { fromView = false; }
  };
  const follow = (apply) => () => { if (!fromView) apply(); };
  const mount = () => {
    api = clioExplorer(el, model.get("data"), {
      openDepth: model.get("open_depth"),
      colour: model.get("color_by"),
      onSelect: (id) => send("selected", id),
      onSearch: (text) => send("search", text),
      onColour: (key) => send("color_by", key),
    });
    el.style.setProperty("--clio-tree-height", model.get("height") + "px");
    if (model.get("search")) api.search(model.get("search"), true);
    if (model.get("selected")) api.select(model.get("selected"), true);
  };
  mount();
  const handlers = [
    ["change:data", mount],
    ["change:open_depth", mount],
    ["change:height", mount],
    ["change:selected", follow(() => api.select(model.get("selected"), true))],
    ["change:search", follow(() => api.search(model.get("search"), true))],
    ["change:color_by", follow(() => api.colourBy(model.get("color_by"), true))],
  ];
  handlers.forEach(([event, handler]) => model.on(event, handler));
  return () => handlers.forEach(([event, handler]) => model.off(event, handler));
}
export default { render };
"""

#: The widget's ES module: the shared explorer, then the anywidget entry point.
ESM = asset("explorer.js") + _RENDER
CSS = asset("explorer.css")


class ClusterExplorer(anywidget.AnyWidget):
    """An interactive explorer of a release in a notebook: tree, search, details with facet bars, and the map.

    The selection, the search text and the map's colouring are synchronised both ways: click a cluster and
    ``explorer.selected`` holds its id; set ``explorer.search = "pandas"`` and the tree filters.

    Parameters
    ----------
    release : Release or ClusterTree
        What to explore. A :class:`~clio_lite.release.Release` also shows its counts and audit verdict.
    open_depth : int
        Levels shown when it opens: 1 shows the top-level clusters, 2 opens them one level, and so on.
    title : str, optional
        A title for the data sent (the HTML report's title); not shown in the widget.
    height : int
        The tree panel's maximum height, in pixels.

    Attributes
    ----------
    data : dict
        What the front end draws: :func:`clio_lite.viz.report.explorer_data` of the release.
    selected : str
        The id of the selected cluster, ``""`` for none.
    search : str
        The text in the search box.
    color_by : str
        ``"depth"``, ``"share"`` (of parent) or ``"facet:<facet>=<value>"`` (that value's share of each cluster's
        conversations).

    Examples
    --------
    >>> explorer = release.tree.explore()          # doctest: +SKIP
    >>> explorer                                   # doctest: +SKIP
    >>> explorer.search = "python"                 # doctest: +SKIP
    >>> explorer.selected_node.name                # doctest: +SKIP
    'Python · Pandas'
    """

    _esm = ESM
    _css = CSS

    data = traitlets.Dict().tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)
    search = traitlets.Unicode("").tag(sync=True)
    color_by = traitlets.Unicode("depth").tag(sync=True)
    open_depth = traitlets.Int(1).tag(sync=True)
    height = traitlets.Int(520).tag(sync=True)

    def __init__(
        self,
        release: Release | ClusterTree,
        open_depth: int = 1,
        title: str | None = None,
        height: int = 520,
        **kwargs: Any,
    ) -> None:
        self._tree = release.tree if isinstance(release, Release) else release
        data = explorer_data(release, DEFAULT_TITLE if title is None else title)
        super().__init__(data=data, open_depth=open_depth, height=height, **kwargs)

    @property
    def tree(self) -> ClusterTree:
        """The tree being explored."""
        return self._tree

    @property
    def selected_node(self) -> ClusterNode | None:
        """The selected cluster, or ``None``."""
        return self._tree[self.selected] if self.selected else None

    @traitlets.validate("selected")
    def _check_selected(self, proposal: dict[str, Any]) -> str:
        value = proposal["value"]
        if value and value not in {node.id for node in self._tree.nodes}:
            raise traitlets.TraitError(f"No released cluster has the id {value!r}; ids look like '0', '0.1'.")
        return value

    @traitlets.validate("color_by")
    def _check_color_by(self, proposal: dict[str, Any]) -> str:
        value = proposal["value"]
        if value in ("depth", "share"):
            return value
        facet, _, cell = value.removeprefix("facet:").partition("=")
        if value.startswith("facet:") and any(cell in node.facets.get(facet, {}) for node in self._tree.nodes):
            return value
        facets = sorted({facet for node in self._tree.nodes for facet in node.facets})
        raise traitlets.TraitError(
            f"color_by must be 'depth', 'share' or 'facet:<facet>=<value>' with a released facet value "
            f"(facets: {', '.join(facets) or 'none in this release'}); got {value!r}."
        )

    @traitlets.validate("open_depth", "height")
    def _check_positive(self, proposal: dict[str, Any]) -> int:
        if proposal["value"] < 1:
            raise traitlets.TraitError(f"{proposal['trait'].name} must be at least 1, not {proposal['value']!r}.")
        return proposal["value"]

    def __repr__(self) -> str:
        return f"ClusterExplorer({len(self._tree)} clusters, selected={self.selected!r})"


def explore(release: Release | ClusterTree, open_depth: int = 1, height: int = 520) -> ClusterExplorer:
    """A :class:`ClusterExplorer` of ``release``; see :meth:`clio_lite.release.ClusterTree.explore`.

    Examples
    --------
    >>> explore(release, open_depth=2)  # doctest: +SKIP
    """
    return ClusterExplorer(release, open_depth=open_depth, height=height)
