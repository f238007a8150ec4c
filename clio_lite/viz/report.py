"""A self-contained HTML report of a release: a collapsible tree, a search box, a details panel and the 2-D map.

The report is one file that opens in any browser with no server and no network: the styles, the script and the
data are inline, and a ``Content-Security-Policy`` in the page forbids every fetch (no script, stylesheet, font,
image or connection from anywhere), so it can be sent to someone without Python. Only the release goes in: each
node's fields and the manifest's counts, thresholds, config hash and audit verdict. This module imports nothing but
:mod:`clio_lite.release` and the standard library, so it cannot reach conversation text.

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
from pathlib import Path
from typing import Any

from clio_lite.release import ClusterNode, ClusterTree, Release

#: Node fields in the payload, in the order of each node's row (a row, not an object, keeps the file small).
PAYLOAD_FIELDS = (
    "id", "parent_id", "depth", "name", "description", "keywords", "conversations", "users", "share_of_parent",
    "x", "y",
)
#: Manifest counts shown in the header, in this order.
SHOWN_COUNTS = ("read", "released", "suppressed", "unclustered", "rejected")
#: Digits kept of shares and map positions: the report shows no more, and the file stays small.
DIGITS = 4
DEFAULT_TITLE = "clio_lite release"

# Characters that could end the <script> element, start a comment or tag, or end a JavaScript line.
_JSON_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026", 0x2028: "\\u2028", 0x2029: "\\u2029"}

_STYLE = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2933;background:#f5f7fa}
header{padding:12px 20px;background:#fff;border-bottom:1px solid #d9e2ec}
h1{margin:0 0 6px;font-size:20px}
#summary{display:flex;flex-wrap:wrap;gap:6px 16px;align-items:center;color:#52606d}
#summary b{color:#1f2933}
.verdict{padding:2px 8px;border-radius:10px;font-weight:600}
.verdict.passed{background:#e3f9e5;color:#1f7a33}.verdict.failed{background:#ffe3e3;color:#a61b1b}
.verdict.none{background:#e4e7eb;color:#52606d}
main{display:grid;grid-template-columns:minmax(320px,2fr) 3fr;gap:16px;padding:16px 20px}
.panel{background:#fff;border:1px solid #d9e2ec;border-radius:6px;padding:12px}
#left{display:flex;flex-direction:column;max-height:calc(100vh - 110px);min-height:420px}
#search{width:100%;padding:7px 9px;font:inherit;border:1px solid #bcccdc;border-radius:4px}
#status{margin:6px 0;color:#616e7c;font-size:12px}
#tree{overflow:auto;flex:1;margin:0;padding:0}
#tree ul{list-style:none;margin:0;padding:0 0 0 16px}#tree>ul{padding:0}
#tree li.collapsed>ul,#tree li.filtered{display:none}
#tree.searching li.collapsed:not(.filtered)>ul{display:block}
.row{display:flex;gap:6px;align-items:baseline;padding:2px 4px;border-radius:4px;cursor:pointer}
.row:hover{background:#f0f4f8}.row.selected{background:#d9e8ff}.row.match .name{background:#fff3c4}
.row:focus{outline:2px solid #2680c2;outline-offset:-2px}
.caret{width:14px;flex:none;color:#7b8794;text-align:center}
.name{font-weight:500}.meta{color:#7b8794;font-size:12px;white-space:nowrap;margin-left:auto}
#right{display:flex;flex-direction:column;gap:16px;min-width:0}
#map{width:100%;height:auto;display:block;background:#fbfcfd;border-radius:4px}
#map circle.node{stroke:#fff;stroke-width:.6;fill-opacity:.78;cursor:pointer}
#map circle.node.dim{fill-opacity:.08;stroke-opacity:.2}
#map circle.node:hover{stroke:#1f2933;stroke-width:1.2}
#ring{fill:none;stroke:#d64545;stroke-width:2.5;pointer-events:none}
#map text{font-size:11px;fill:#323f4b;pointer-events:none;paint-order:stroke;stroke:#fff;stroke-width:3px}
#legend{display:flex;gap:12px;flex-wrap:wrap;color:#52606d;font-size:12px;margin-top:6px}
#legend button{font:inherit;color:inherit;background:none;border:0;padding:0;cursor:pointer}
#legend button[aria-pressed=false]{opacity:.4;text-decoration:line-through}
#map circle.node.off{display:none}
#legend i{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:4px;vertical-align:-1px}
#details h2{margin:4px 0 6px;font-size:18px}#details .placeholder{color:#7b8794}
#details dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:10px 0 0}
#details dt{color:#7b8794}#details dd{margin:0}
.crumbs{font-size:12px;color:#7b8794}.crumbs button{font:inherit;color:#2680c2;background:none;border:0;padding:0;
cursor:pointer}.keywords span{display:inline-block;background:#f0f4f8;border-radius:10px;padding:1px 8px;margin:2px}
footer{padding:0 20px 16px;color:#9aa5b1;font-size:12px}
@media (max-width:900px){main{grid-template-columns:1fr}#left{max-height:60vh}}
"""

_SCRIPT = r"""
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("clio-data").textContent);
  const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#9c755f"];
  const SVG = "http://www.w3.org/2000/svg";
  const W = 640, H = 440, PAD = 28, R_MIN = 2.5, R_MAX = 22;
  const number = new Intl.NumberFormat("en-US");
  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const percent = (s) => (s * 100).toFixed(s < 0.1 ? 1 : 0) + "%";
  const colour = (depth) => PALETTE[(depth - 1) % PALETTE.length];

  const nodes = data.nodes.map((row, index) => {
    const n = {index: index, children: []};
    data.fields.forEach((f, i) => { n[f] = row[i]; });
    n.text = [n.name, n.description].concat(n.keywords).join("\n").toLowerCase();
    return n;
  });
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const roots = [];
  nodes.forEach((n) => {
    const parent = n.parent_id === null ? undefined : byId.get(n.parent_id);
    n.parent = parent || null;
    (parent ? parent.children : roots).push(n);
  });
  const ancestors = (n) => { const up = []; for (let p = n.parent; p; p = p.parent) up.unshift(p); return up; };

  // Header: title, the manifest's accounting and the audit verdict.
  document.title = data.title;
  $("title").textContent = data.title;
  const summary = $("summary");
  const counts = data.manifest.counts || {};
  data.shown_counts.forEach((key) => {
    if (counts[key] === undefined) return;
    const item = el("span", "count");
    item.dataset.count = key;
    item.append(key + " ", el("b", "", number.format(counts[key])));
    summary.append(item);
  });
  const audit = data.manifest.audit;
  if (Object.keys(data.manifest).length) {  // a bare tree has no manifest: nothing to say about an audit
    const verdict = el("span", "verdict " + (audit ? (audit.passed ? "passed" : "failed") : "none"));
    verdict.id = "verdict";
    verdict.textContent = audit ? "audit " + (audit.passed ? "passed" : "FAILED") + ": " + audit.errors
      + " errors, " + audit.warnings + " warnings" : "not audited";
    summary.append(verdict);
  }
  const th = data.manifest.thresholds;
  if (th && th.min_users !== undefined && th.min_conversations !== undefined) {
    summary.append(el("span", "", "every cluster: \u2265 " + number.format(th.min_users) + " users, \u2265 "
      + number.format(th.min_conversations) + " conversations"));
  }

  // The tree: every node rendered once, collapsed below the top level; CSS hides what is collapsed or filtered.
  const rows = new Map();
  const items = new Map();
  const build = (list) => {
    const ul = el("ul");
    ul.setAttribute("role", list === roots ? "tree" : "group");
    list.forEach((n) => {
      const li = el("li");
      li.setAttribute("role", "none");
      const row = el("div", "row");
      row.dataset.id = n.id;
      row.tabIndex = -1;
      row.setAttribute("role", "treeitem");
      row.append(el("span", "caret", n.children.length ? "\u25b8" : ""), el("span", "name", n.name),
        el("span", "meta", number.format(n.conversations) + " conv \u00b7 " + number.format(n.users) + " users \u00b7 "
          + percent(n.share_of_parent)));
      li.append(row);
      if (n.children.length) {
        li.classList.add("collapsed");
        row.setAttribute("aria-expanded", "false");
        li.append(build(n.children));
      }
      rows.set(n.id, row);
      items.set(n.id, li);
      ul.append(li);
    });
    return ul;
  };
  const tree = $("tree");
  if (nodes.length) tree.append(build(roots));
  else tree.append(el("p", "placeholder", "No clusters were released."));
  const setExpanded = (n, open) => {
    if (!n.children.length) return;
    items.get(n.id).classList.toggle("collapsed", !open);
    const row = rows.get(n.id);
    row.setAttribute("aria-expanded", String(open));
    row.firstChild.textContent = open ? "\u25be" : "\u25b8";
  };
  tree.addEventListener("click", (event) => {
    const row = event.target.closest(".row");
    if (!row) return;
    const n = byId.get(row.dataset.id);
    if (event.target.classList.contains("caret")) setExpanded(n, items.get(n.id).classList.contains("collapsed"));
    else { setExpanded(n, true); select(n); }
  });
  tree.addEventListener("keydown", (event) => {
    const row = event.target.closest(".row");
    if (!row) return;
    const n = byId.get(row.dataset.id);
    const moves = {ArrowRight: () => setExpanded(n, true), ArrowLeft: () => setExpanded(n, false),
      Enter: () => select(n), " ": () => select(n)};
    if (moves[event.key]) { event.preventDefault(); moves[event.key](); }
  });

  // The map: circles at the release's 2-D positions, area by users, colour by depth; small circles on top.
  const map = $("map");
  map.setAttribute("viewBox", "0 0 " + W + " " + H);
  const placed = nodes.filter((n) => n.x !== null && n.y !== null);
  const xs = placed.map((n) => n.x), ys = placed.map((n) => n.y);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const scale = Math.min((W - 2 * PAD) / ((x1 - x0) || 1), (H - 2 * PAD) / ((y1 - y0) || 1));
  const ox = (W - (x1 - x0) * scale) / 2, oy = (H - (y1 - y0) * scale) / 2;
  const mostUsers = Math.max(1, ...placed.map((n) => n.users));
  const circles = new Map();
  placed.forEach((n) => {
    n.cx = ox + (n.x - x0) * scale;
    n.cy = H - (oy + (n.y - y0) * scale);  // SVG's y grows downwards
    n.r = R_MIN + (R_MAX - R_MIN) * Math.sqrt(Math.max(0, n.users) / mostUsers);
  });
  placed.slice().sort((a, b) => b.r - a.r || a.index - b.index).forEach((n) => {
    const c = document.createElementNS(SVG, "circle");
    c.setAttribute("class", "node");
    c.setAttribute("cx", n.cx.toFixed(1));
    c.setAttribute("cy", n.cy.toFixed(1));
    c.setAttribute("r", n.r.toFixed(1));
    c.setAttribute("fill", colour(n.depth));
    c.dataset.id = n.id;
    const tip = document.createElementNS(SVG, "title");
    tip.textContent = n.name + "\n" + number.format(n.conversations) + " conversations, "
      + number.format(n.users) + " users";
    c.append(tip);
    circles.set(n.id, c);
    map.append(c);
  });
  // Top-level names, largest first; a name that would overlap one already placed is left to the tooltip.
  const boxes = [];
  roots.filter((n) => circles.has(n.id)).slice(0, 20).forEach((n) => {
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("x", n.cx.toFixed(1));
    label.setAttribute("y", (n.cy - n.r - 3).toFixed(1));
    label.setAttribute("text-anchor", "middle");
    label.textContent = n.name.length > 32 ? n.name.slice(0, 31) + "\u2026" : n.name;
    map.append(label);
    const b = label.getBBox();
    if (boxes.some((o) => b.x < o.x + o.width && o.x < b.x + b.width && b.y < o.y + o.height && o.y < b.y + b.height)) {
      label.remove();
    } else boxes.push(b);
  });
  const ring = document.createElementNS(SVG, "circle");
  ring.id = "ring";
  ring.setAttribute("visibility", "hidden");
  map.append(ring);
  map.addEventListener("click", (event) => {
    const id = event.target.dataset && event.target.dataset.id;
    if (id !== undefined && byId.has(id)) select(byId.get(id));
  });
  const depths = Array.from(new Set(placed.map((n) => n.depth))).sort((a, b) => a - b);
  depths.forEach((d) => {
    // A legend entry hides or shows its level on the map, as in the notebook's plots.
    const item = el("button");
    item.type = "button";
    item.dataset.depth = d;
    item.setAttribute("aria-pressed", "true");
    const dot = el("i");
    dot.style.background = colour(d);
    item.append(dot, "level " + d);
    item.addEventListener("click", () => {
      const shown = item.getAttribute("aria-pressed") !== "true";
      item.setAttribute("aria-pressed", String(shown));
      placed.forEach((n) => { if (n.depth === d) circles.get(n.id).classList.toggle("off", !shown); });
    });
    $("legend").append(item);
  });

  // Selection: the row, the circle and the details panel follow one another.
  let selected = null;
  const select = (n) => {
    if (selected) {
      rows.get(selected.id).classList.remove("selected");
      rows.get(selected.id).setAttribute("aria-selected", "false");
    }
    selected = n;
    ancestors(n).forEach((a) => setExpanded(a, true));
    const row = rows.get(n.id);
    row.classList.add("selected");
    row.setAttribute("aria-selected", "true");
    row.focus({preventScroll: true});
    row.scrollIntoView({block: "nearest"});
    if (circles.has(n.id)) {
      ring.setAttribute("cx", n.cx.toFixed(1));
      ring.setAttribute("cy", n.cy.toFixed(1));
      ring.setAttribute("r", (n.r + 3).toFixed(1));
      ring.setAttribute("visibility", "visible");
      ring.dataset.id = n.id;
    } else ring.setAttribute("visibility", "hidden");
    showDetails(n);
  };
  const showDetails = (n) => {
    const panel = $("details");
    panel.replaceChildren();
    panel.dataset.id = n.id;
    const crumbs = el("div", "crumbs");
    ancestors(n).forEach((a) => {
      const link = el("button", "", a.name);
      link.addEventListener("click", () => select(a));
      crumbs.append(link, " \u203a ");
    });
    panel.append(crumbs, el("h2", "", n.name), el("p", "description", n.description));
    const keywords = el("div", "keywords");
    n.keywords.forEach((k) => keywords.append(el("span", "", k)));
    panel.append(keywords);
    const facts = [["Conversations", number.format(n.conversations)], ["Users", number.format(n.users)],
      ["Share of parent", percent(n.share_of_parent)], ["Released children", number.format(n.children.length)],
      ["Depth", String(n.depth)], ["Id", n.id]];
    const dl = el("dl");
    facts.forEach(([k, v]) => dl.append(el("dt", "", k), el("dd", "", v)));
    panel.append(dl);
  };

  // Search: show the matching nodes and their ancestors; dim the rest on the map.
  const status = $("status");
  const showStatus = (shown) => {
    status.textContent = shown === null ? number.format(nodes.length) + " clusters in "
      + number.format(roots.length) + " top-level groups" : number.format(shown) + " of "
      + number.format(nodes.length) + " clusters match";
  };
  $("search").addEventListener("input", (event) => {
    const needle = event.target.value.trim().toLowerCase();
    tree.classList.toggle("searching", needle !== "");
    const visible = new Set();
    let matches = 0;
    nodes.forEach((n) => {
      const hit = needle !== "" && n.text.includes(needle);
      rows.get(n.id).classList.toggle("match", hit);
      if (circles.has(n.id)) circles.get(n.id).classList.toggle("dim", needle !== "" && !hit);
      if (hit) {
        matches += 1;
        visible.add(n.id);
        ancestors(n).forEach((a) => visible.add(a.id));
      }
    });
    nodes.forEach((n) => items.get(n.id).classList.toggle("filtered", needle !== "" && !visible.has(n.id)));
    showStatus(needle === "" ? null : matches);
  });
  showStatus(null);
})();
"""

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
<header><h1 id="title">{title}</h1><div id="summary"></div></header>
<main>
<section id="left" class="panel">
<input id="search" type="search" placeholder="Search names, descriptions, keywords" aria-label="Search clusters"
 autocomplete="off">
<div id="status" aria-live="polite"></div>
<div id="tree"></div>
</section>
<div id="right">
<section class="panel"><svg id="map" role="img" aria-label="Clusters on the 2-D map"></svg><div id="legend"></div>
</section>
<section id="details" class="panel" aria-live="polite">
<p class="placeholder">Select a cluster in the tree or on the map to see its description, keywords and counts.</p>
</section>
</div>
</main>
<footer>Made by clio_lite from a release: cluster names, descriptions, keywords and counts that passed the privacy
gate. No conversation is in this file.</footer>
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
    tree, manifest = (release.tree, release.manifest) if isinstance(release, Release) else (release, {})
    title = DEFAULT_TITLE if title is None else str(title)
    payload = {
        "title": title,
        "fields": list(PAYLOAD_FIELDS),
        "nodes": [_node_row(node) for node in tree.nodes],
        "manifest": _manifest_summary(manifest),
        "shown_counts": list(SHOWN_COUNTS),
    }
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
    row = node.to_dict()
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
