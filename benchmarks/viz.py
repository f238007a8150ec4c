"""How fast the explorer draws large trees: the HTML report and the notebook widget in headless Chromium.

For synthetic three-level trees of growing size (the test suite's ``tests.views.large_tree``, 5,140 nodes at the
largest, each with a language facet) it measures, in Python, the time to build the explorer's data, the report and
the widget, and, in the page with ``performance.now()``:

- ``render_ms``: the report, from navigation start to the end of its load event (parsing the page and its data,
  building every row and circle); the widget, from importing its ES module to the end of ``render`` plus layout;
- ``expand_ms``: a click on a top-level caret until layout is done;
- ``search_deep_ms`` / ``search_common_ms``: typing a search that finds one deep node / a word most nodes have;
- ``clear_ms``: emptying the search; ``select_ms``: clicking a deep node (details panel, ring on the map).

Interaction timings end after a forced layout, before paint. Each figure is the median of ``--repeats`` fresh
page loads. Run (Debian's chromium and Playwright, as for the tests)::

    nice -n 5 .venv/bin/python benchmarks/viz.py [--sizes 500 2000 5140] [--repeats 3] > viz.json

It prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from clio_lite.viz.report import explorer_data, render_html  # noqa: E402
from clio_lite.viz.widget import ClusterExplorer  # noqa: E402
from tests.views import CHROMIUM, CHROMIUM_FLAGS, harness_page, large_tree  # noqa: E402

SHAPES = {500: (20, 4, 5), 2000: (20, 9, 10), 5140: (20, 16, 15)}  # roots, children, grandchildren

CLICK = """(selector) => {
  const t0 = performance.now();
  document.querySelector(selector).click();
  document.body.offsetHeight;
  return performance.now() - t0;
}"""
TYPE = """(text) => {
  const box = document.querySelector('.clio-search');
  const t0 = performance.now();
  box.value = text;
  box.dispatchEvent(new Event('input'));
  document.body.offsetHeight;
  return performance.now() - t0;
}"""


def interactions(page, deep_id: str, deep_keyword: str) -> dict[str, float]:
    return {
        "expand_ms": page.evaluate(CLICK, ".clio-tree .clio-row[data-id='1'] .clio-caret"),
        "search_deep_ms": page.evaluate(TYPE, deep_keyword),
        "select_ms": page.evaluate(CLICK, f".clio-tree .clio-row[data-id='{deep_id}'] .clio-name"),
        "clear_ms": page.evaluate(TYPE, ""),
        "search_common_ms": page.evaluate(TYPE, "python"),
    }


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(run[key] for run in runs), 1) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SHAPES))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("file:", "blob:"))
                   else route.abort())
        for size in args.sizes:
            tree = large_tree(*SHAPES[size])
            last = tree.nodes[-1]
            start = time.perf_counter()
            explorer_data(tree)
            data_ms = (time.perf_counter() - start) * 1000
            start = time.perf_counter()
            html = render_html(tree)
            report_build_ms = (time.perf_counter() - start) * 1000
            start = time.perf_counter()
            explorer = ClusterExplorer(tree)
            widget_build_ms = (time.perf_counter() - start) * 1000
            report_path = Path(folder) / f"report-{size}.html"
            report_path.write_text(html, encoding="utf-8")
            harness = harness_page(explorer, Path(folder) / f"widget-{size}.html")

            report_runs, widget_runs = [], []
            for _ in range(args.repeats):
                page.goto(report_path.as_uri())
                page.wait_for_selector(".clio-status:not(:empty)")
                run = {"render_ms": page.evaluate(
                    "() => performance.getEntriesByType('navigation')[0].loadEventEnd")}
                run.update(interactions(page, last.id, last.keywords[-1]))
                report_runs.append(run)
                page.goto(harness.as_uri())
                page.wait_for_selector("body[data-ready=yes]")
                run = {"render_ms": page.evaluate("() => window.renderMs")}
                run.update(interactions(page, last.id, last.keywords[-1]))
                widget_runs.append(run)
            results.append({
                "nodes": len(tree),
                "python": {"explorer_data_ms": round(data_ms, 1), "render_html_ms": round(report_build_ms, 1),
                           "widget_ms": round(widget_build_ms, 1), "report_bytes": len(html.encode("utf-8")),
                           "widget_state_bytes": len(json.dumps(explorer.get_state()["data"]))},
                "report": median(report_runs),
                "widget": median(widget_runs),
            })
        version = browser.version
        browser.close()
    print(json.dumps({
        "benchmark": "viz", "repeats": args.repeats, "chromium": version, "python": platform.python_version(),
        "machine": platform.machine(), "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
