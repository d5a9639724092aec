"""Click on a point -> Venn shown, in headless Chromium, on a freshly opened sweep folder (cold caches).

Opens FOLDER read-only (``SweepManager.open_folder``), serves it with the
widget's server in this process, loads the standalone page in Debian's
chromium through Playwright, waits for the scatter plots, then clicks test
datapoints one after the other and measures, in the page, the time from the
click to the Venn diagram showing that datapoint's counts (the server computes
each view from the columns on that first request). Also measures the server
time of one instances page over HTTP (cold and warm) and saves a screenshot.

Usage::

    python benchmarks/bench_evaluation_scale.py --n 1000000 --keep /tmp/bcml-scale-1m
    python benchmarks/bench_click_venn.py /tmp/bcml-scale-1m [--screenshot artifacts/bench-1m-widget.png]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]

# Resolves when the Venn region counts of the widget read ``expected`` (after the click).
WAIT_FOR_VENN_JS = """
([expected, t0]) => new Promise((resolve) => {
  const read = () => [...document.querySelectorAll('.bcml-venn .bcml-region-count')].map((e) => e.textContent.trim());
  const done = () => JSON.stringify(read()) === JSON.stringify(expected);
  if (done()) { resolve(performance.now() - t0); return; }
  const observer = new MutationObserver(() => {
    if (done()) { observer.disconnect(); resolve(performance.now() - t0); }
  });
  observer.observe(document.body, {subtree: true, childList: true, characterData: true});
})
"""


def http_get(port: int, token: str, path: str) -> tuple:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        start = time.perf_counter()
        conn.request("GET", "/api/v1" + path, headers={"X-BCML-Token": token})
        response = conn.getresponse()
        body = response.read()
        return time.perf_counter() - start, response.status, body
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a sweep folder (e.g. written by bench_evaluation_scale.py --keep)")
    parser.add_argument("--screenshot", default=os.path.join("artifacts", "bench-click-venn.png"))
    parser.add_argument("--points", default="1,3,5,7", help="datapoints to click, in order (default test ones)")
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(HERE))
    from playwright.sync_api import sync_playwright

    from backwardcompatibilityml.results import ResultFiles
    from backwardcompatibilityml.sweep_management import SweepManager
    from backwardcompatibilityml.widgets.compatibility_analysis.compatibility_analysis import CompatibilityAnalysis

    manager = SweepManager.open_folder(args.folder)
    points = [int(p) for p in args.points.split(",")]
    # The expected counts, from a separate reader (the server's cache stays cold).
    expected = {}
    for index in points:
        regions = json.loads(ResultFiles(args.folder).view(index).compact_json())["regions"]
        expected[index] = [str(regions[name]) for name in ("progress", "common", "regress")]
    sizes = {p["datapoint_index"]: p["dataset_size"] for p in manager.get_sweep_summary()["data"]}
    widget = CompatibilityAnalysis.from_sweep_manager(manager, port=0, display_widget=False)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                                 args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 1100})
            page.goto(widget.url)
            page.wait_for_selector('[role="button"][data-datapoint-index="%d"]' % points[-1], timeout=60_000)
            clicks = []
            for index in points:
                point = page.locator('[data-plot="btc"] [role="button"][data-datapoint-index="%d"]' % index)
                choice = page.locator('.bcml-chooser-item[data-choice-index="%d"]' % index)
                t0 = page.evaluate("performance.now()")
                # A DOM click on the point itself: points of equal results lie on each other, and the
                # one drawn on top would take a mouse click.
                point.dispatch_event("click")
                if choice.count():  # stacked points: the widget asks which one; the time runs from that choice
                    t0 = page.evaluate("performance.now()")
                    choice.click()
                clicks.append(page.evaluate(WAIT_FOR_VENN_JS, [expected[index], t0]) / 1000.0)
            page.wait_for_timeout(500)  # let the table and class charts settle for the picture
            os.makedirs(os.path.dirname(os.path.abspath(args.screenshot)), exist_ok=True)
            page.screenshot(path=args.screenshot, full_page=True)
            browser.close()
        fresh = CompatibilityAnalysis.from_sweep_manager(SweepManager.open_folder(args.folder), port=0,
                                                         display_widget=False)
        try:
            query = "/evaluation_data/%d/instances?region=regress&sort=-h2_prediction&limit=50" % points[0]
            cold, status, _ = http_get(fresh.port, fresh.token, query)
            warm, _, _ = http_get(fresh.port, fresh.token, query.replace("limit=50", "limit=50&offset=50"))
            other, _, _ = http_get(fresh.port, fresh.token, query.replace("regress", "common"))
        finally:
            fresh.close()
    finally:
        widget.close()
    print(f"click -> Venn shown in Chromium, cold caches ({os.path.basename(args.folder.rstrip('/'))})")
    for index, seconds in zip(points, clicks):
        print(f"  datapoint {index} ({sizes[index]:,} instances)   {seconds * 1000:8.1f} ms")
    print("one instances page over HTTP (a fresh server; its first request builds the error index):")
    print(f"  first page, cold              {cold * 1000:8.1f} ms   (status {status})")
    print(f"  next page of that filter      {warm * 1000:8.1f} ms")
    print(f"  first page of another filter  {other * 1000:8.1f} ms")
    print(f"  screenshot: {args.screenshot}")


if __name__ == "__main__":
    main()
