"""Shared by the tests of the views (report, widget, plots): a realistic demo release with facets, a large synthetic
tree, Debian's Chromium driven by Playwright, and screenshots that are checked and, on request, kept for the docs.

Screenshots are always written to the test's temporary directory and checked not to be blank; with
``CLIO_LITE_UPDATE_SCREENSHOTS=1`` (``make screenshots``) they are also copied into ``docs/img/``.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import struct
import zlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from clio_lite.release import SCHEMA_VERSION, ClusterNode, ClusterTree, Release
from clio_lite.viz.report import payload_json
from tests.trees import node

ROOT = Path(__file__).resolve().parent.parent
DOCS_IMG = ROOT / "docs" / "img"
UPDATE_SCREENSHOTS = os.environ.get("CLIO_LITE_UPDATE_SCREENSHOTS") == "1"
CHROMIUM = os.environ.get("CLIO_LITE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--font-render-hinting=none"]

# A release that reads like a real one: topics as the keyword namer names them, language and turn-count facets.
DEMO_TOPICS = {
    "Python · Pandas": ["Dataframe · Merge", "Plotting · Matplotlib", "Virtualenv · Pip", "Regex · Parsing"],
    "Resume · Cover letter": ["Interview · Questions", "Linkedin · Profile", "Salary · Negotiation"],
    "Travel · Itinerary": ["Flights · Airline", "Visa · Passport", "Hotel · Booking"],
    "Recipe · Dinner": ["Baking · Bread", "Vegetarian · Meal prep", "Wine · Pairing"],
    "Essay · Grammar": ["Thesis · Outline", "Citation · APA", "Poem · Rhyme"],
    "Budget · Taxes": ["Mortgage · Rates", "Retirement · Savings"],
    "Workout · Running": ["Marathon · Training", "Strength · Gym"],
    "Docker · Kubernetes": ["Compose · Volumes", "Helm · Charts"],
}
DEMO_LEAVES = {"Dataframe · Merge": ["Merge · Keyerror", "Groupby · Aggregate", "Pivot · Reshape"],
               "Flights · Airline": ["Cheap flights · Miles", "Delayed · Refund"],
               "Interview · Questions": ["Behavioral · Star", "Coding · Leetcode"]}
LANGUAGES = ["en", "es", "de", "fr"]
TURNS = ["1", "2-3", "4-7", "8+"]


def demo_release() -> Release:
    """A three-level release of 37 clusters with descriptions, keywords, positions and facet breakdowns."""
    rng = random.Random(7)
    nodes: list[ClusterNode] = []
    total = 6000

    def facets(conversations: int, bias: float) -> dict[str, dict[str, int]]:
        english = int(conversations * (0.55 + 0.35 * bias))
        rest = conversations - english
        language = {"en": english, "es": rest // 2, "de": rest // 4}
        language["other"] = conversations - sum(language.values())
        weights = [0.35 + bias, 0.35, 0.3, 0.25 - bias / 2]
        turns = {t: int(conversations * w / sum(weights)) for t, w in zip(TURNS, weights, strict=True)}
        turns["1"] += conversations - sum(turns.values())
        return {"language": language, "turns": turns}

    def add(node_id: str, name: str, conversations: int, share: float, x: float, y: float) -> None:
        words = [w.strip().lower() for w in name.split("·")]
        base = node(node_id, conversations, max(25, int(conversations * rng.uniform(0.35, 0.6))), name, x, y, share,
                    description=f"Conversations about {words[0]} and {words[1]}: questions, fixes and step-by-step "
                                f"help.", keywords=(*words, *rng.sample(["help", "example", "error", "plan",
                                                                          "best", "how", "list"], 3)))
        nodes.append(replace(base, facets=facets(conversations, rng.uniform(-0.3, 0.3))))

    weights = [rng.uniform(0.5, 1.5) for _ in DEMO_TOPICS]
    for r, (name, children) in enumerate(DEMO_TOPICS.items()):
        size = int(total * weights[r] / sum(weights))
        angle = r / len(DEMO_TOPICS) * 6.283
        cx, cy = 6 * _cos(angle), 6 * _sin(angle)
        add(str(r), name, size, size / total, cx, cy)
        remaining = int(size * 0.85)
        for c, child in enumerate(children):
            part = remaining // (len(children) - c) if c == len(children) - 1 else int(remaining * rng.uniform(.3, .5))
            remaining -= part
            px, py = cx + rng.uniform(-2, 2), cy + rng.uniform(-2, 2)
            add(f"{r}.{c}", child, part, part / size, px, py)
            leaves = DEMO_LEAVES.get(child, [])
            left = int(part * 0.8)
            for g, leaf in enumerate(leaves):
                piece = left // (len(leaves) - g)
                left -= piece
                add(f"{r}.{c}.{g}", leaf, piece, piece / part, px + rng.uniform(-1, 1), py + rng.uniform(-1, 1))
    tree = ClusterTree(nodes)
    manifest = {
        "schema_version": SCHEMA_VERSION, "config_hash": "0f3c9a", "thresholds": {"min_users": 25,
                                                                                   "min_conversations": 50},
        "counts": {"read": 7000, "rejected": 40, "accepted": 6960, "released": sum(n.conversations for n in
                   tree.roots), "suppressed": 310, "unclustered": 0},
        "audit": {"passed": True, "errors": 0, "warnings": 2},
    }
    manifest["counts"]["unclustered"] = 6960 - manifest["counts"]["released"] - 310
    manifest["counts"]["in_released_leaves"] = sum(n.conversations for n in tree.leaves)
    return Release(tree, manifest)


def _cos(angle: float) -> float:
    import math

    return math.cos(angle)


def _sin(angle: float) -> float:
    import math

    return math.sin(angle)


def large_tree(roots: int = 20, children: int = 16, grandchildren: int = 15) -> ClusterTree:
    """A three-level synthetic tree of ``roots * (1 + children * (1 + grandchildren))`` nodes (5,140 by default),
    with consistent counts, spread-out positions, distinct names and a language facet on every node."""
    words = ["python", "pandas", "travel", "flights", "recipes", "baking", "resume", "interview", "docker", "taxes",
             "grammar", "essay", "budget", "fitness", "running", "poetry", "guitar", "chemistry", "algebra", "visa"]
    nodes: list[ClusterNode] = []
    for r in range(roots):
        for c in range(children):
            for g in range(grandchildren):
                nodes.append(_large_node(f"{r}.{c}.{g}", 30 + (r + c + g) % 20, words))
        kids = [_large_node(f"{r}.{c}", 500 + c, words) for c in range(children)]
        nodes.append(_large_node(str(r), 9000 - r, words))
        nodes.extend(kids)
    return ClusterTree(sorted(nodes, key=lambda n: [int(part) for part in n.id.split(".")]))


def _large_node(node_id: str, conversations: int, words: list[str]) -> ClusterNode:
    parts = [int(p) for p in node_id.split(".")]
    seed = sum((k + 3) * p for k, p in enumerate(parts))
    first, second = words[seed % len(words)], words[(seed * 7 + 3) % len(words)]
    english = conversations * 3 // 4
    return replace(
        node(node_id, conversations, conversations // 3 + 20, f"{first.title()} · {second.title()} {node_id}",
             parts[0] % 5 * 4 + sum(parts[1:]) / 10, parts[0] // 5 * 4 + len(parts) / 3, 1 / (len(parts) + 1),
             description=f"Conversations about {first} and {second}.", keywords=(first, second, f"id{node_id}")),
        facets={"language": {"en": english, "other": conversations - english}},
    )


# ----------------------------------------------------------------------------------------------------------
# The browser
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory) -> Iterator[Any]:
    """Debian's Chromium, headless, with Playwright; the tests skip with the reason when either is missing."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the browser test needs Playwright: pip install playwright (no browser download)"
    )
    if CHROMIUM is None:
        pytest.skip("the browser test needs Chromium: apt-get install chromium (or set CLIO_LITE_CHROMIUM)")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1280, "height": 800},
        )
        context.set_default_timeout(10_000)
        try:
            yield context
        finally:
            context.close()


#: Opens every node of an explorer by clicking its carets, level by level, as a user would; returns the ids of the
#: rows then visible, in page order.
EXPAND_ALL = """() => {
  let closed;
  while ((closed = document.querySelectorAll('.clio-tree .clio-row[aria-expanded=false] .clio-caret')).length) {
    closed.forEach((caret) => caret.click());
  }
  return Array.from(document.querySelectorAll('.clio-tree .clio-row')).filter((r) => r.offsetParent)
    .map((r) => r.dataset.id);
}"""


class PageWatch:
    """A page that refuses every request but to local files, and records what it requested and any error."""

    def __init__(self, context: Any) -> None:
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page = context.new_page()
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        self.page.route(re.compile(r"^(?!file:|blob:|data:).*"), lambda route: route.abort())

    def remote_requests(self) -> list[str]:
        return [url for url in self.requests if not url.startswith(("file:", "blob:", "data:"))]


HARNESS = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>clio_lite widget harness</title>
<style>body{{margin:0;padding:12px;background:#fff}}{css}</style></head>
<body><div id="out"></div>
<script type="application/json" id="state">{state}</script>
<script type="module">
// anywidget's front-end contract: the module's default export has render({{model, el}}); the model has get, set,
// on, off and save_changes. This shim keeps the state the kernel sent and records what the view saves.
const state = JSON.parse(document.getElementById("state").textContent);
const listeners = new Map();
let pending = {{}};
window.saved = [];
window.model = {{
  get: (key) => state[key],
  set: (key, value) => {{
    const changed = JSON.stringify(state[key]) !== JSON.stringify(value);
    state[key] = value;
    pending[key] = value;
    if (changed) (listeners.get("change:" + key) || []).forEach((f) => f());
  }},
  save_changes: () => {{ window.saved.push(pending); pending = {{}}; }},
  on: (event, f) => listeners.set(event, (listeners.get(event) || []).concat([f])),
  off: (event, f) => listeners.set(event, (listeners.get(event) || []).filter((g) => g !== f)),
}};
const url = URL.createObjectURL(new Blob([state._esm], {{type: "text/javascript"}}));
const start = performance.now();
const widget = (await import(url)).default;
window.cleanup = await widget.render({{model: window.model, el: document.getElementById("out")}});
document.body.offsetHeight;  // finish layout before the clock stops
window.renderMs = performance.now() - start;
document.body.dataset.ready = "yes";
</script></body></html>
"""


def harness_page(explorer: Any, path: Path) -> Path:
    """A page that renders ``explorer``'s front end from the state the kernel would send it."""
    state = explorer.get_state()
    path.write_text(HARNESS.format(css=state["_css"], state=payload_json(state)), encoding="utf-8")
    return path


def save_screenshot(target: Any, name: str, tmp_path: Path, **options: Any) -> Path:
    """Screenshot a page or locator to ``tmp_path/name``, check it is not blank, keep it for the docs on request."""
    path = tmp_path / name
    target.screenshot(path=str(path), **options)
    assert distinct_colours(path.read_bytes()) > 20, f"the screenshot {name} looks blank"
    if UPDATE_SCREENSHOTS:
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMG / name)
    return path


def distinct_colours(png: bytes) -> int:
    """How many different pixel colours an 8-bit RGB or RGBA, non-interlaced PNG (as Chromium writes) holds."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, header = 8, b"", b""
    while position < len(png):
        length, kind = struct.unpack(">I4s", png[position:position + 8])
        chunk = png[position + 8:position + 8 + length]
        header = chunk if kind == b"IHDR" else header
        idat += chunk if kind == b"IDAT" else b""
        position += 12 + length
    width, height, bit_depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert bit_depth == 8 and colour_type in (2, 6) and interlace == 0
    channels = 3 if colour_type == 2 else 4
    raw, stride = zlib.decompress(idat), width * channels
    previous, colours = bytearray(stride), set()
    for row in range(height):
        kind, line = raw[row * (stride + 1)], bytearray(raw[row * (stride + 1) + 1:(row + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, up_left = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                guess = left + up - up_left
                best = min((abs(guess - left), 0, left), (abs(guess - up), 1, up), (abs(guess - up_left), 2, up_left))
                line[i] = (line[i] + best[2]) & 255
        colours.update(bytes(line[i:i + channels]) for i in range(0, stride, channels * 7))  # every 7th pixel
        previous = line
    return len(colours)
