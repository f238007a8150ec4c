"""A self-contained HTML report of a release: a collapsible tree, a search box, a details panel and the 2-D map.

The tree, map and details are drawn by the explorer in ``assets/explorer.js`` and ``assets/explorer.css``, the same
files the notebook widget (:mod:`clio_lite.viz.widget`) runs: one source for both views.

The report is one file that opens in any browser with no server and no network: the styles, the script and the
data are inline, and a ``Content-Security-Policy`` in the page forbids every fetch (no script, stylesheet, font,
image or connection from anywhere), so it can be sent to someone without Python. Only the release goes in: each
node's fields (facet breakdowns included) and the manifest's counts, thresholds, config hash and audit verdict.
This module imports nothing but :mod:`clio_lite.release` and the standard library, so it cannot reach
conversation text.

The data is JSON in a ``<script type="application/json">`` element with ``<``, ``>``, ``&`` and the two JavaScript
line separators written as ``\\uXXXX`` escapes, so no name or description can close the element or open a tag; the
page's script only ever puts release text into the page with ``textContent``. The same release always gives the
same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import os
from importlib import resources
from pathlib import Path
from typing import Any

from clio_lite.release import ClusterNode, ClusterTree, Release

#: Node fields in the payload, in the order of each node's row (a row, not an object, keeps the file small).
PAYLOAD_FIELDS = (
    "id", "parent_id", "depth", "name", "description", "keywords", "conversations", "users", "share_of_parent",
    "x", "y", "facets",
)
#: Manifest counts shown in the header, in this order.
SHOWN_COUNTS = ("read", "released", "suppressed", "unclustered", "rejected")
#: Digits kept of shares and map positions: the report shows no more, and the file stays small.
DIGITS = 4
DEFAULT_TITLE = "clio_lite release"

# Characters that could end the <script> element, start a comment or tag, or end a JavaScript line.
_JSON_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026", 0x2028: "\\u2028", 0x2029: "\\u2029"}

#: The page around the explorer: its header and footer (the explorer brings its own styles, in assets/).
_PAGE_STYLE = """
body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2933;background:#f5f7fa}
header{padding:12px 20px 0}
h1{margin:0;font-size:20px}
#clio{padding:12px 20px}
footer{padding:0 20px 16px;color:#9aa5b1;font-size:12px}
"""

# The page's only script: the shared explorer, started on the page's data.
_BOOT = """
(function () {
  "use strict";
%s
  const data = JSON.parse(document.getElementById("clio-data").textContent);
  clioExplorer(document.getElementById("clio"), data, {});
})();
"""


def asset(name: str) -> str:
    """The text of one of the explorer's files shipped with the package (``explorer.js``, ``explorer.css``)."""
    return (resources.files("clio_lite.viz") / "assets" / name).read_text(encoding="utf-8")


_STYLE = _PAGE_STYLE + asset("explorer.css")
_SCRIPT = _BOOT % asset("explorer.js")

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="clio_lite">
<title>{title}</title>
<link rel="icon" href="data:,">
<style>{style}</style>
</head>
<body>
<header><h1 id="title">{title}</h1></header>
<main id="clio"></main>
<footer>Made by clio_lite from a release: cluster names, descriptions, keywords, counts and facet breakdowns that
passed the privacy gate. No conversation is in this file.</footer>
<script type="application/json" id="clio-data">{payload}</script>
<script>{script}</script>
</body>
</html>
"""


def render_html(release: Release | ClusterTree, title: str | None = None) -> str:
    """The report of a release as one self-contained HTML page.

    Parameters
    ----------
    release : Release or ClusterTree
        What to show. A bare tree has no manifest, so the report shows no counts and no audit verdict.
    title : str, optional
        The page's title; ``"clio_lite release"`` by default.

    Returns
    -------
    str
        The page. The same release and title always give the same string.

    Examples
    --------
    >>> tree = ClusterTree([ClusterNode("0", None, 1, "Python · Pandas", "Conversations about python.",
    ...                                 ("python",), 120, 40, 1.0, 0.0, 0.0)])
    >>> page = render_html(tree, title="Demo")
    >>> page.startswith("<!DOCTYPE html>") and "Python · Pandas" in page
    True
    """
    title = DEFAULT_TITLE if title is None else str(title)
    payload = explorer_data(release, title)
    return _PAGE.format(
        csp=_content_security_policy(),
        title=html.escape(title),
        style=_STYLE.strip(),
        payload=payload_json(payload),
        script=_SCRIPT.strip("\n"),
    )


def write_html(release: Release | ClusterTree, path: str | os.PathLike, title: str | None = None) -> Path:
    """Write the report of a release to ``path`` (a single ``.html`` file), creating its directory if needed.

    Parameters
    ----------
    release : Release or ClusterTree
        What to show; see :func:`render_html`.
    path : str or path-like
        Where to write the page; an existing file is replaced.
    title : str, optional
        The page's title.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> write_html(release, "report.html")  # doctest: +SKIP
    PosixPath('report.html')
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", encoding="utf-8", newline="\n") as file:
        file.write(render_html(release, title=title))
    return target


def explorer_data(release: Release | ClusterTree, title: str = DEFAULT_TITLE) -> dict[str, Any]:
    """What the explorer (the report's script and the notebook widget) is given: the release, row by row.

    Parameters
    ----------
    release : Release or ClusterTree
        What to show. A bare tree has no manifest: the explorer then shows no counts and no audit verdict.
    title : str
        The title to show.

    Returns
    -------
    dict
        ``title``; ``fields`` (:data:`PAYLOAD_FIELDS`); ``nodes``, one row per node in walk order with those fields
        (shares and positions rounded to :data:`DIGITS` digits, a position that is not a number as ``None``);
        ``manifest``, only its counts, thresholds, config hash and audit verdict; ``shown_counts``.

    Examples
    --------
    >>> tree = ClusterTree([ClusterNode("0", None, 1, "Python", "About python.", ("python",), 120, 40, 1.0, 0, 0)])
    >>> explorer_data(tree)["nodes"][0][:4]
    ['0', None, 1, 'Python']
    """
    if isinstance(release, Release):
        tree, manifest = release.tree, release.manifest
    elif isinstance(release, ClusterTree):
        tree, manifest = release, {}
    else:
        raise TypeError(f"Expected a Release or a ClusterTree, got {type(release).__name__}.")
    return {
        "title": str(title),
        "fields": list(PAYLOAD_FIELDS),
        "nodes": [_node_row(node) for node in tree.nodes],
        "manifest": _manifest_summary(manifest),
        "shown_counts": list(SHOWN_COUNTS),
    }


def payload_json(document: Any) -> str:
    """``document`` as compact, sorted JSON that is safe inside a ``<script>`` element.

    ``<``, ``>`` and ``&`` become ``\\u003c``, ``\\u003e`` and ``\\u0026`` (still the same JSON string values), so no
    text can write ``</script>`` or ``<!--`` into the page.

    Examples
    --------
    >>> payload_json({"name": "</script><b>"})
    '{"name":"\\\\u003c/script\\\\u003e\\\\u003cb\\\\u003e"}'
    """
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.translate(_JSON_ESCAPES)


def _node_row(node: ClusterNode) -> list[Any]:
    # Field by field rather than node.to_dict(): asdict deep-copies every facet breakdown, slow at thousands of nodes.
    row = {field: getattr(node, field) for field in PAYLOAD_FIELDS}
    row["keywords"] = list(node.keywords)
    row["facets"] = {facet: dict(cells) for facet, cells in node.facets.items()}
    row["share_of_parent"] = _rounded(row["share_of_parent"])
    row["x"], row["y"] = _rounded(row["x"]), _rounded(row["y"])
    return [row[field] for field in PAYLOAD_FIELDS]


def _rounded(value: float) -> float | None:
    # A position the reducer could not give (NaN) is left off the map rather than breaking the JSON.
    value = float(value)
    return round(value, DIGITS) if math.isfinite(value) else None


def _manifest_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """The parts of the manifest the report shows: counts, thresholds, config hash and the audit's verdict."""
    summary: dict[str, Any] = {}
    if "counts" in manifest:
        summary["counts"] = {str(key): int(value) for key, value in manifest["counts"].items()}
    if "thresholds" in manifest:
        summary["thresholds"] = {str(key): value for key, value in manifest["thresholds"].items()}
    if "config_hash" in manifest:
        summary["config_hash"] = str(manifest["config_hash"])
    audit = manifest.get("audit")
    if audit is not None:
        summary["audit"] = {
            "passed": bool(audit.get("passed")),
            "errors": int(audit.get("errors", 0)),
            "warnings": int(audit.get("warnings", 0)),
        }
    return summary


def _content_security_policy() -> str:
    # Only this module's own script may run, and nothing may be fetched: no script, style, font, image or connection.
    digest = base64.b64encode(hashlib.sha256(_SCRIPT.strip("\n").encode("utf-8")).digest()).decode("ascii")
    return (
        f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; img-src data:; "
        "base-uri 'none'; form-action 'none'"
    )
