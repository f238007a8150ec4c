// The clio_lite explorer: a release's tree, search box, details panel (keywords, counts, facet breakdowns) and 2-D
// map, drawn inside one element. The single source of both the HTML report (report.py wraps it in a classic
// script) and the notebook widget (widget.py wraps it in an ES module). Release text only ever reaches the page
// through textContent; nothing is fetched.
function clioExplorer(root, data, options) {
  "use strict";
  options = options || {};
  const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#9c755f"];
  const SCALE = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];  // viridis
  const NO_DATA = "#cbd2d9";
  const SVG = "http://www.w3.org/2000/svg";
  const W = 640, H = 440, PAD = 28, R_MIN = 2.5, R_MAX = 22, LABEL_PX = 6.2, LABEL_H = 13;
  const number = new Intl.NumberFormat("en-US");
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const svg = (tag, attributes) => {
    const e = document.createElementNS(SVG, tag);
    Object.entries(attributes || {}).forEach(([k, v]) => e.setAttribute(k, v));
    return e;
  };
  const percent = (s) => (s * 100).toFixed(s < 0.1 ? 1 : 0) + "%";
  const levelColour = (depth) => PALETTE[(depth - 1) % PALETTE.length];
  const scaleColour = (t) => {
    const x = Math.min(1, Math.max(0, t)) * (SCALE.length - 1), i = Math.min(SCALE.length - 2, Math.floor(x));
    const f = x - i, c = SCALE[i].map((v, k) => Math.round(v + (SCALE[i + 1][k] - v) * f));
    return "rgb(" + c.join(",") + ")";
  };
  const notify = (name, value) => { if (typeof options[name] === "function") options[name](value); };

  // The nodes, from the payload's rows, linked to their parents and children.
  const nodes = data.nodes.map((row, index) => {
    const n = {index: index, children: []};
    data.fields.forEach((f, i) => { n[f] = row[i]; });
    n.facets = n.facets || {};
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
  const sortedCells = (cells) => Object.entries(cells)
    .sort((a, b) => (a[0] === "other") - (b[0] === "other") || b[1] - a[1] || (a[0] < b[0] ? -1 : 1));

  // The frame: a summary line, the tree on the left, the map and the details on the right.
  root.classList.add("clio-explorer");
  root.replaceChildren();
  const summary = el("div", "clio-summary");
  const left = el("section", "clio-panel clio-left");
  const search = el("input", "clio-search");
  search.type = "search";
  search.placeholder = "Search names, descriptions, keywords";
  search.setAttribute("aria-label", "Search clusters");
  search.autocomplete = "off";
  const status = el("div", "clio-status");
  status.setAttribute("aria-live", "polite");
  const treeBox = el("div", "clio-tree");
  left.append(search, status, treeBox);
  const right = el("div", "clio-right");
  const mapPanel = el("section", "clio-panel clio-map-panel");
  const controls = el("label", "clio-controls", "Colour ");
  const colourSelect = el("select", "clio-colour");
  controls.append(colourSelect);
  const map = svg("svg", {"class": "clio-map", role: "img", "aria-label": "Clusters on the 2-D map",
    viewBox: "0 0 " + W + " " + H});
  const legend = el("div", "clio-legend");
  const scaleLegend = el("div", "clio-scale");
  mapPanel.append(controls, map, legend, scaleLegend);
  const details = el("section", "clio-panel clio-details");
  details.setAttribute("aria-live", "polite");
  details.append(el("p", "clio-placeholder",
    "Select a cluster in the tree or on the map to see its description, keywords, counts and facets."));
  right.append(mapPanel, details);
  const main = el("div", "clio-main");
  main.append(left, right);
  root.append(summary, main);

  // Summary: the manifest's accounting, the audit verdict and the thresholds (a bare tree has none of them).
  const manifest = data.manifest || {};
  const counts = manifest.counts || {};
  (data.shown_counts || []).forEach((key) => {
    if (counts[key] === undefined) return;
    const item = el("span", "clio-count");
    item.dataset.count = key;
    item.append(key + " ", el("b", "", number.format(counts[key])));
    summary.append(item);
  });
  if (Object.keys(manifest).length) {
    const audit = manifest.audit;
    const verdict = el("span", "clio-verdict " + (audit ? (audit.passed ? "passed" : "failed") : "none"));
    verdict.textContent = audit ? "audit " + (audit.passed ? "passed" : "FAILED") + ": " + audit.errors
      + " errors, " + audit.warnings + " warnings" : "not audited";
    summary.append(verdict);
  }
  const th = manifest.thresholds;
  if (th && th.min_users !== undefined && th.min_conversations !== undefined) {
    summary.append(el("span", "", "every cluster: \u2265 " + number.format(th.min_users) + " users, \u2265 "
      + number.format(th.min_conversations) + " conversations"));
  }
  if (!summary.childNodes.length) summary.remove();

  // The tree: a node's children are rendered the first time it opens (or a search reaches them), so a tree of
  // thousands of nodes starts with its top level only; CSS hides what is collapsed or filtered.
  const rows = new Map();
  const items = new Map();
  const build = (list, top) => {
    const ul = el("ul");
    ul.setAttribute("role", top ? "tree" : "group");
    list.forEach((n) => {
      const li = el("li");
      li.setAttribute("role", "none");
      const row = el("div", "clio-row");
      row.dataset.id = n.id;
      row.tabIndex = -1;
      row.setAttribute("role", "treeitem");
      row.append(el("span", "clio-caret", n.children.length ? "\u25b8" : ""), el("span", "clio-name", n.name),
        el("span", "clio-meta", number.format(n.conversations) + " conv \u00b7 " + number.format(n.users)
          + " users \u00b7 " + percent(n.share_of_parent)));
      row.title = n.description;
      li.append(row);
      if (n.children.length) {
        li.classList.add("clio-collapsed");
        row.setAttribute("aria-expanded", "false");
      }
      rows.set(n.id, row);
      items.set(n.id, li);
      ul.append(li);
    });
    return ul;
  };
  const built = new Set();
  const buildChildren = (n) => {
    if (built.has(n.id) || !n.children.length) return;
    built.add(n.id);
    items.get(n.id).append(build(n.children, false));
  };
  if (nodes.length) treeBox.append(build(roots, true));
  else treeBox.append(el("p", "clio-placeholder", "No clusters were released."));
  const setExpanded = (n, open) => {
    if (!n.children.length) return;
    if (open) buildChildren(n);
    items.get(n.id).classList.toggle("clio-collapsed", !open);
    const row = rows.get(n.id);
    row.setAttribute("aria-expanded", String(open));
    row.firstChild.textContent = open ? "\u25be" : "\u25b8";
  };
  const openDepth = options.openDepth || 1;
  nodes.forEach((n) => { if (n.depth < openDepth) setExpanded(n, true); });
  treeBox.addEventListener("click", (event) => {
    const row = event.target.closest(".clio-row");
    if (!row) return;
    const n = byId.get(row.dataset.id);
    if (event.target.classList.contains("clio-caret")) {
      setExpanded(n, items.get(n.id).classList.contains("clio-collapsed"));
    } else { setExpanded(n, true); select(n); }
  });
  treeBox.addEventListener("keydown", (event) => {
    const row = event.target.closest(".clio-row");
    if (!row) return;
    const n = byId.get(row.dataset.id);
    const moves = {ArrowRight: () => setExpanded(n, true), ArrowLeft: () => setExpanded(n, false),
      Enter: () => select(n), " ": () => select(n)};
    if (moves[event.key]) { event.preventDefault(); moves[event.key](); }
  });

  // The map: circles at the release's 2-D positions, area by users; small circles drawn on top of large ones.
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
    const c = svg("circle", {"class": "clio-node", cx: n.cx.toFixed(1), cy: n.cy.toFixed(1), r: n.r.toFixed(1)});
    c.dataset.id = n.id;
    const tip = svg("title");
    tip.textContent = n.name + "\n" + number.format(n.conversations) + " conversations, "
      + number.format(n.users) + " users";
    c.append(tip);
    circles.set(n.id, c);
    map.append(c);
  });
  // Top-level names, largest first, at an estimated width; one that would overlap a placed name is left to the
  // tooltip, so labels never pile up however many clusters there are.
  const boxes = [];
  roots.filter((n) => circles.has(n.id)).slice(0, 20).forEach((n) => {
    const text = n.name.length > 32 ? n.name.slice(0, 31) + "\u2026" : n.name;
    // Above the circle, or below it where the top edge would cut the name off.
    const above = n.cy - n.r - 3 - LABEL_H >= 0, baseline = above ? n.cy - n.r - 3 : n.cy + n.r + LABEL_H;
    const w = text.length * LABEL_PX, b = {x: n.cx - w / 2, y: baseline - LABEL_H, width: w, height: LABEL_H};
    if (boxes.some((o) => b.x < o.x + o.width && o.x < b.x + b.width && b.y < o.y + o.height && o.y < b.y + b.height)) {
      return;
    }
    boxes.push(b);
    const label = svg("text", {"class": "clio-label", x: n.cx.toFixed(1), y: baseline.toFixed(1),
      "text-anchor": "middle"});
    label.textContent = text;
    map.append(label);
  });
  const ring = svg("circle", {"class": "clio-ring", visibility: "hidden"});
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
    dot.style.background = levelColour(d);
    item.append(dot, "level " + d);
    item.addEventListener("click", () => {
      const shown = item.getAttribute("aria-pressed") !== "true";
      item.setAttribute("aria-pressed", String(shown));
      placed.forEach((n) => { if (n.depth === d) circles.get(n.id).classList.toggle("clio-off", !shown); });
    });
    legend.append(item);
  });

  // Colour: by level, by share of parent, or by the share of one facet value among a cluster's conversations.
  const facetValues = new Map();
  nodes.forEach((n) => Object.entries(n.facets).forEach(([facet, cells]) => {
    const totals = facetValues.get(facet) || new Map();
    Object.entries(cells).forEach(([value, count]) => totals.set(value, (totals.get(value) || 0) + count));
    facetValues.set(facet, totals);
  }));
  const addOption = (parent, value, text) => {
    const option = el("option", "", text);
    option.value = value;
    parent.append(option);
  };
  addOption(colourSelect, "depth", "by level");
  addOption(colourSelect, "share", "by share of parent");
  Array.from(facetValues.keys()).sort().forEach((facet) => {
    const group = el("optgroup");
    group.label = facet;
    sortedCells(Object.fromEntries(facetValues.get(facet)))
      .forEach(([value]) => addOption(group, "facet:" + facet + "=" + value, "share " + facet + " = " + value));
    colourSelect.append(group);
  });
  const colourValue = (key, n) => {
    if (key === "share") return n.share_of_parent;
    const [facet, value] = key.slice(6).split(/=(.*)/s);
    const cells = n.facets[facet];
    if (!cells) return null;
    const total = Object.values(cells).reduce((a, b) => a + b, 0);
    return total ? (cells[value] || 0) / total : null;
  };
  let colourKey = "depth";
  const colourBy = (key, silent) => {
    if (!Array.from(colourSelect.options).some((o) => o.value === key)) key = "depth";
    colourKey = key;
    colourSelect.value = key;
    scaleLegend.replaceChildren();
    if (key === "depth") {
      placed.forEach((n) => circles.get(n.id).setAttribute("fill", levelColour(n.depth)));
    } else {
      const values = new Map(placed.map((n) => [n.id, colourValue(key, n)]));
      const known = Array.from(values.values()).filter((v) => v !== null);
      const low = Math.min(...known), high = Math.max(...known);
      placed.forEach((n) => {
        const v = values.get(n.id);
        circles.get(n.id).setAttribute("fill", v === null ? NO_DATA : scaleColour((v - low) / ((high - low) || 1)));
      });
      const bar = el("i", "clio-gradient");
      bar.style.background = "linear-gradient(to right," + SCALE.map((c) => "rgb(" + c.join(",") + ")").join(",")
        + ")";
      scaleLegend.append(el("span", "", known.length ? percent(low) : "\u2013"), bar,
        el("span", "", known.length ? percent(high) : "\u2013"));
      if (known.length < placed.length) {
        const none = el("i", "clio-dot");
        none.style.background = NO_DATA;
        scaleLegend.append(none, "no breakdown");
      }
    }
    if (!silent) notify("onColour", key);
  };
  colourSelect.addEventListener("change", () => colourBy(colourSelect.value));

  // Selection: the row, the circle and the details panel follow one another.
  let selected = null;
  const select = (n, silent) => {
    if (selected) {
      rows.get(selected.id).classList.remove("clio-selected");
      rows.get(selected.id).setAttribute("aria-selected", "false");
    }
    selected = n;
    if (!n) {
      ring.setAttribute("visibility", "hidden");
      delete details.dataset.id;
      if (!silent) notify("onSelect", "");
      return;
    }
    ancestors(n).forEach((a) => setExpanded(a, true));
    const row = rows.get(n.id);
    row.classList.add("clio-selected");
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
    if (!silent) notify("onSelect", n.id);
  };
  const showDetails = (n) => {
    details.replaceChildren();
    details.dataset.id = n.id;
    const crumbs = el("div", "clio-crumbs");
    ancestors(n).forEach((a) => {
      const link = el("button", "", a.name);
      link.type = "button";
      link.addEventListener("click", () => select(a));
      crumbs.append(link, " \u203a ");
    });
    details.append(crumbs, el("h2", "", n.name), el("p", "clio-description", n.description));
    const keywords = el("div", "clio-keywords");
    n.keywords.forEach((k) => keywords.append(el("span", "", k)));
    details.append(keywords);
    const facts = [["Conversations", number.format(n.conversations)], ["Users", number.format(n.users)],
      ["Share of parent", percent(n.share_of_parent)], ["Released children", number.format(n.children.length)],
      ["Depth", String(n.depth)], ["Id", n.id]];
    const dl = el("dl");
    facts.forEach(([k, v]) => dl.append(el("dt", "", k), el("dd", "", v)));
    details.append(dl);
    // Facet breakdowns: one bar per released cell, its share of the cluster's conversations in that facet.
    Object.keys(n.facets).sort().forEach((facet) => {
      const cells = sortedCells(n.facets[facet]);
      const total = cells.reduce((a, c) => a + c[1], 0);
      const box = el("div", "clio-facet");
      box.dataset.facet = facet;
      box.append(el("h3", "", facet));
      cells.forEach(([value, count]) => {
        const share = total ? count / total : 0;
        const bar = el("div", "clio-bar");
        bar.dataset.value = value;
        const fill = el("i");
        fill.style.width = (share * 100).toFixed(1) + "%";
        const track = el("span", "clio-track");
        track.append(fill);
        bar.append(el("span", "clio-value", value), track,
          el("span", "clio-share", percent(share) + " \u00b7 " + number.format(count)));
        bar.title = facet + " = " + value + ": " + number.format(count) + " conversations";
        box.append(bar);
      });
      details.append(box);
    });
  };

  // Search: show the matching nodes and their ancestors; dim the rest on the map.
  const showStatus = (shown) => {
    status.textContent = shown === null ? number.format(nodes.length) + " clusters in "
      + number.format(roots.length) + " top-level groups" : number.format(shown) + " of "
      + number.format(nodes.length) + " clusters match";
  };
  let dimmed = new Set();
  const filter = (text, silent) => {
    if (search.value !== text) search.value = text;
    const needle = text.trim().toLowerCase();
    treeBox.classList.toggle("clio-searching", needle !== "");
    const visible = new Set();
    const hits = needle === "" ? [] : nodes.filter((n) => n.text.includes(needle));
    hits.forEach((n) => {
      visible.add(n.id);
      ancestors(n).forEach((a) => { visible.add(a.id); buildChildren(a); });
    });
    // Only rendered rows need their classes changed, and only circles whose dimming changes need touching.
    const hitIds = new Set(hits.map((n) => n.id));
    items.forEach((li, id) => {
      rows.get(id).classList.toggle("clio-match", hitIds.has(id));
      li.classList.toggle("clio-filtered", needle !== "" && !visible.has(id));
    });
    const dim = needle === "" ? new Set() : new Set(placed.filter((n) => !hitIds.has(n.id)).map((n) => n.id));
    dimmed.forEach((id) => { if (!dim.has(id)) circles.get(id).classList.remove("clio-dim"); });
    dim.forEach((id) => { if (!dimmed.has(id)) circles.get(id).classList.add("clio-dim"); });
    dimmed = dim;
    showStatus(needle === "" ? null : hits.length);
    if (!silent) notify("onSearch", text);
  };
  search.addEventListener("input", () => filter(search.value));
  showStatus(null);
  colourBy(options.colour || "depth", true);

  return {
    select: (id, silent) => select(id ? byId.get(id) || null : null, silent),
    search: (text, silent) => filter(text || "", silent),
    colourBy: colourBy,
    expand: (id, open) => { if (byId.has(id)) setExpanded(byId.get(id), open !== false); },
    get colour() { return colourKey; },
  };
}
