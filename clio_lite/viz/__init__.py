"""Views of a released cluster tree: one-call plotly figures, the HTML report and the notebook explorer.

``pip install clio_lite[viz]`` brings plotly (the figures) and anywidget (the explorer); each is imported only when
used. Like :mod:`clio_lite.release`, nothing here imports the private stages of the pipeline: the views can only
show what was released.
"""

from typing import Any

from .plots import plot_facets, plot_icicle, plot_map, plot_sunburst, plot_treemap
from .report import render_html, write_html

__all__ = [
    "ClusterExplorer", "explore", "plot_facets", "plot_icicle", "plot_map", "plot_sunburst", "plot_treemap",
    "render_html", "write_html",
]


def __getattr__(name: str) -> Any:
    # The widget imports anywidget, an optional dependency: only when asked for.
    if name in ("ClusterExplorer", "explore"):
        from . import widget

        return getattr(widget, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
