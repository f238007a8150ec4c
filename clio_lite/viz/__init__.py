"""Views of a released cluster tree: one-call plotly figures (``pip install clio_lite[viz]``).

Like :mod:`clio_lite.release`, nothing here imports the private stages of the pipeline: the views can only show
what was released.
"""

from .plots import plot_icicle, plot_map, plot_sunburst, plot_treemap
from .report import render_html, write_html

__all__ = ["plot_icicle", "plot_map", "plot_sunburst", "plot_treemap", "render_html", "write_html"]
