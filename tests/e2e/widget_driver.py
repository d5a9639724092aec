"""Drives one compatibility-analysis widget in a page and checks it against the widget's API.

Every selector is scoped to one widget root (``.bcml-widget``) and uses the
accessible names of the UI contract (buttons "Start sweep" / "Cancel sweep",
``role="progressbar"``, points with ``data-datapoint-index``, ``[data-field]``
details, Venn regions "Progress" / "Common" / "Regress", class bars, the
instance table and its dialog). The checks are shared by the JupyterLab test
and the standalone demo test; each returns what later checks need. The
sweep's lifecycle (start, progress, cancel) is checked by the methods of
:class:`~.sweep_checks.SweepChecks`, mixed in.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from playwright.sync_api import expect

from .e2e_helpers import WidgetApi, artifact_path, wait_until
from .sweep_checks import SweepChecks

SNAPSHOT_JS = """
(root) => {
  const bar = root.querySelector('[role="progressbar"]');
  const points = new Set([...root.querySelectorAll('[role="button"][data-datapoint-index]')]
      .map((e) => e.getAttribute('data-datapoint-index')));
  return {
    value: bar ? Number(bar.getAttribute('aria-valuenow')) : null,
    points: points.size,
    text: root.textContent,
  };
}
"""

TABLE_JS = """
(root) => {
  // The instance table: the one with a "Ground truth" column (tooltips hold tables too).
  const table = [...root.querySelectorAll('table')].find((t) =>
      [...t.querySelectorAll('thead th')].some((th) => th.textContent.trim().startsWith('Ground truth')));
  if (!table) return null;
  const heads = [...table.querySelectorAll('thead th')].map((th) => th.textContent.trim());
  const rows = [...table.querySelectorAll('tbody tr')].map((tr) => [...tr.children].map((td) => td.textContent.trim()));
  const pager = root.textContent.match(/page (\\d+) of (\\d+)/);
  const clear = [...root.querySelectorAll('button')].find((b) => b.textContent.trim() === 'Clear filter');
  return {
    heads,
    rows,
    busy: table.getAttribute('aria-busy') === 'true',
    page: pager ? [Number(pager[1]), Number(pager[2])] : null,
    filter: clear ? (clear.parentElement.querySelector('.bcml-filter-chip') || {textContent: ''}).textContent.trim() : null,
  };
}
"""

HIT_TEST_JS = """
(el) => {
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) return false;
  const hit = el.ownerDocument.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
  return hit === el || el.contains(hit);
}
"""

Row = Tuple[int, int, int, int]  # instance id, h1 prediction, h2 prediction, ground truth


def _first_int(text: str) -> int:
    match = re.search(r"-?\d+", text)
    assert match, f"a number in {text!r}"
    return int(match.group(0))


def api_rows(items: List[Dict[str, Any]]) -> Dict[int, Row]:
    return {int(i["instance_id"]): (int(i["instance_id"]), int(i["h1_prediction"]), int(i["h2_prediction"]),
                                    int(i["ground_truth"])) for i in items}


@dataclass
class WidgetDriver(SweepChecks):
    page: Any
    root: Any  # Locator of one .bcml-widget
    api: WidgetApi
    label: str  # "jupyterlab" or "demo": prefix of the screenshots
    shots: List[str] = field(default_factory=list)
    state: Dict[str, Any] = field(default_factory=dict)

    # -- basics -----------------------------------------------------------------------------------
    def screenshot(self, name: str, full_page: bool = False) -> str:
        """The widget (or the whole page) as ``artifacts/e2e/<label>-NN-<name>.png``.

        JupyterLab's notebook scrolls inside the page, so an element taller
        than the window would come out clipped: the window grows to fit the
        widget for the screenshot and shrinks back afterwards.
        """
        path = artifact_path(f"{self.label}-{len(self.shots) + 1:02d}-{name}.png")
        if full_page:
            self.page.screenshot(path=path, full_page=True)
        else:
            size = dict(self.page.viewport_size)
            height = self.root.evaluate("(el) => el.getBoundingClientRect().height")
            grow = height + 320 > size["height"]
            if grow:
                self.page.set_viewport_size({"width": size["width"], "height": int(math.ceil(height + 320))})
            try:
                self.root.scroll_into_view_if_needed()
                self.root.screenshot(path=path)
            finally:
                if grow:
                    self.page.set_viewport_size(size)
        self.shots.append(path)
        return path

    def snapshot(self) -> Dict[str, Any]:
        return self.root.evaluate(SNAPSHOT_JS)

    def button(self, name: str):
        return self.root.get_by_role("button", name=name, exact=True)

    def points(self, index: int):
        return self.root.locator(f'[role="button"][data-datapoint-index="{index}"]')

    def table(self) -> Optional[Dict[str, Any]]:
        return self.root.evaluate(TABLE_JS)

    # -- checks -----------------------------------------------------------------------------------
    def check_mounted_idle(self) -> None:
        expect(self.root.get_by_role("progressbar")).to_be_visible(timeout=30_000)
        expect(self.button("Start sweep")).to_be_enabled(timeout=30_000)
        expect(self.button("Cancel sweep")).to_be_disabled()
        for name in ("Training", "Testing", "New Error", "Strict Imitation"):
            expect(self.root.get_by_label(name, exact=True)).to_be_checked()
        for name in ("Minimum lambda_c", "Maximum lambda_c"):
            expect(self.root.get_by_label(name, exact=True)).to_be_editable()
        snap = self.snapshot()
        assert snap["value"] == 0 and snap["points"] == 0, snap
        assert self.api.status()["state"] == "idle"
        self.screenshot("mounted")

    def check_filters(self) -> None:
        """The dataset checkbox and the lambda_c range hide exactly the points they should."""
        data = self.state["summary"]["data"]
        total = len(data)
        training = self.root.get_by_label("Training", exact=True)
        training.uncheck()
        testing_only = sum(1 for p in data if p["testing"] and not p["training"])
        wait_until(lambda: self.snapshot()["points"] == testing_only, 10, 0.2,
                   f"only the {testing_only} testing points with Training unchecked")
        training.check()
        wait_until(lambda: self.snapshot()["points"] == total, 10, 0.2, "every point again")
        minimum = self.root.get_by_label("Minimum lambda_c", exact=True)
        initial = minimum.input_value()
        minimum.fill("0.5")
        above = sum(1 for p in data if p["lambda_c"] >= 0.5 - 1e-9)
        wait_until(lambda: self.snapshot()["points"] == above, 10, 0.2, f"{above} points with lambda_c >= 0.5")
        minimum.fill(initial)
        wait_until(lambda: self.snapshot()["points"] == total, 10, 0.2, f"every point with the minimum back at {initial!r}")

    def choose_point(self) -> int:
        """The datapoint with the most regress instances whose marker is not covered by another."""
        candidates = []
        for point in self.state["summary"]["data"]:
            evaluation = self.api.evaluation(point["datapoint_index"])
            candidates.append((evaluation["regions"]["regress"], point["datapoint_index"]))
        candidates.sort(reverse=True)
        for regress, index in candidates:
            if regress == 0:
                break
            markers = self.points(index)
            for k in range(markers.count()):
                marker = markers.nth(k)
                marker.scroll_into_view_if_needed()
                if marker.evaluate(HIT_TEST_JS):
                    self.state["marker"] = k
                    return index
        raise AssertionError(f"no uncovered datapoint with regress instances: {candidates}")

    def click_point(self, marker: Any, index: int) -> None:
        """Click a point's marker; when it lies in a stack, pick ``index`` from the menu that opens."""
        marker.click()
        menu = self.root.get_by_role("menu")
        if menu.count() > 0:
            menu.locator(f'[data-choice-index="{index}"]').click()
            expect(menu).to_have_count(0)

    def check_executor_line(self) -> None:
        """The header names the executor the server reports (and its note)."""
        status = self.api.status()
        assert status.get("executor"), f"the server reports its executor: {status}"
        line = self.root.locator('[data-field="executor"]')
        expect(line).to_contain_text(f"Executor: {status['executor']}")
        if status.get("executor_note"):
            expect(line).to_contain_text(status["executor_note"])

    def check_axes_and_zoom(self) -> None:
        """Each plot's axes fit its own points; a dragged rectangle zooms, "Reset zoom" goes back."""
        data = self.state["summary"]["data"]
        for metric in ("btc", "bec"):
            svg = self.root.locator(f'[data-plot="{metric}"] svg').first
            x_lo, x_hi = (float(v) for v in svg.get_attribute("data-x-domain").split(","))
            y_lo, y_hi = (float(v) for v in svg.get_attribute("data-y-domain").split(","))
            xs = [p[metric] for p in data]
            ys = [p["performance"] for p in data]
            assert x_lo <= min(xs) and x_hi >= max(xs), f"{metric}: x axis {x_lo}..{x_hi} holds {min(xs)}..{max(xs)}"
            assert x_hi - x_lo <= 1.2 * max(max(xs) - min(xs), 0.02) + 1e-9, \
                f"{metric}: x axis {x_lo}..{x_hi} fits the points {min(xs)}..{max(xs)}"
            assert y_lo <= min(ys) and y_hi >= max(ys), f"{metric}: y axis {y_lo}..{y_hi} holds {min(ys)}..{max(ys)}"
            for dataset in ("training", "testing"):
                shown = self.root.locator(f'[data-plot="{metric}"] .bcml-h1-label[data-dataset="{dataset}"]')
                expect(shown).to_have_count(1)
        plot = self.root.locator('[data-plot="btc"]')
        svg = plot.locator("svg").first
        reset = plot.get_by_role("button", name="Reset zoom of the BTC plot")
        expect(reset).to_be_disabled()
        before = svg.get_attribute("data-x-domain")
        overlay = plot.locator(".bcml-brush .overlay")
        box = overlay.bounding_box()
        assert box and box["width"] > 100 and box["height"] > 100, box
        start = (box["x"] + 3, box["y"] + 3)
        end = (box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.6)
        self.page.mouse.move(*start)
        self.page.mouse.down()
        self.page.mouse.move(*end, steps=8)
        self.page.mouse.up()
        expect(svg).to_have_attribute("data-zoomed", "true")
        x_lo, x_hi = (float(v) for v in svg.get_attribute("data-x-domain").split(","))
        b_lo, b_hi = (float(v) for v in before.split(","))
        assert b_lo - 1e-9 <= x_lo < x_hi < b_hi and (x_hi - x_lo) < 0.7 * (b_hi - b_lo), \
            f"the zoomed x axis {x_lo}..{x_hi} is a part of {b_lo}..{b_hi}"
        expect(reset).to_be_enabled()
        self.screenshot("btc-zoomed")
        reset.click()
        expect(svg).to_have_attribute("data-zoomed", "false")
        expect(svg).to_have_attribute("data-x-domain", before)
        total = len(data)
        wait_until(lambda: self.snapshot()["points"] == total, 10, 0.2, "every point after the reset")

    def check_point_details(self) -> int:
        """Clicking a point shows the API's numbers for that datapoint, three decimals."""
        index = self.choose_point()
        marker = self.points(index).nth(self.state["marker"])
        evaluation = self.api.evaluation(index)
        label = marker.get_attribute("aria-label") or ""
        for name, key in (("lambda_c", "lambda_c"), ("performance", "performance"), ("BTC", "btc"), ("BEC", "bec")):
            match = re.search(rf"\b{name} (-?\d+(?:\.\d+)?)", label)
            assert match and abs(float(match.group(1)) - evaluation[key]) <= 0.0005 + 1e-9, \
                f"the point's label names its {name} {evaluation[key]}: {label!r}"
        self.click_point(marker, index)
        expect(marker).to_have_attribute("aria-pressed", "true")
        for key in ("lambda_c", "btc", "bec", "nfr", "h1_performance", "h2_performance"):
            cell = self.root.locator(f'[data-field="{key}"]')
            expect(cell).to_have_count(1)
            expect(cell).to_have_text(re.compile(r"^\s*-?\d+\.\d{3}\s*$"))
            shown = float(cell.inner_text())
            assert abs(shown - evaluation[key]) <= 0.0005 + 1e-9, \
                f"{key}: the page shows {shown}, the API says {evaluation[key]}"
        for region, title in (("progress", "Progress"), ("common", "Common"), ("regress", "Regress")):
            button = self.root.get_by_role("button", name=re.compile(rf"^{title}\b"))
            expect(button).to_have_count(1)
            name = button.get_attribute("aria-label") or button.inner_text()
            assert re.search(rf"\b{evaluation['regions'][region]}\b", name), \
                f"{title} region names its count {evaluation['regions'][region]}: {name!r}"
        self.state["index"] = index
        self.state["evaluation"] = evaluation
        self.screenshot("point-selected")
        return index

    def read_table(self, expected: Dict[int, Row], filtered: bool, timeout: float = 30) -> Tuple[List[Row], int, str]:
        """All pages of the table once it shows ``expected``'s instances; returns rows, pages, filter text."""
        total = len(expected)
        heads: List[str] = []

        def parse(table: Dict[str, Any]) -> List[Row]:
            heads[:] = table["heads"]
            columns = []
            for name in ("Instance", "h1 prediction", "h2 prediction", "Ground truth"):
                found = [i for i, h in enumerate(table["heads"]) if h.startswith(name)]
                assert found, f"column {name!r} in {table['heads']}"
                columns.append(found[0])
            return [tuple(_first_int(row[c]) for c in columns) for row in table["rows"]]  # type: ignore[misc]

        def settled_first_page() -> Optional[Tuple[Dict[str, Any], List[Row]]]:
            table = self.table()
            if not table or table["busy"] or not table["page"] or table["page"][0] != 1:
                return None
            if (table["filter"] is not None) != filtered:
                return None
            rows = parse(table)
            if total == 0:
                return (table, rows) if not rows and table["page"][1] == 1 else None
            if not rows or any(r[0] not in expected for r in rows):
                return None
            pages = table["page"][1]
            if pages == 1 and len(rows) != total:
                return None
            if pages > 1 and pages != math.ceil(total / len(rows)):
                return None
            return table, rows

        table, rows = wait_until(settled_first_page, timeout, 0.2,
                                 f"the table's first page of {total} expected instances")
        missing = [h for h in ("Image", "Instance", "h1 prediction", "h2 prediction", "Ground truth")
                   if not any(x.startswith(h) for x in heads)]
        assert not missing, f"the table has the columns {missing}: {heads}"
        pages = table["page"][1]
        seen = list(rows)
        for number in range(2, pages + 1):
            self.button("Next page").click()
            ids = {r[0] for r in seen}

            def settled_page() -> Optional[List[Row]]:
                t = self.table()
                if not t or t["busy"] or t["page"] != [number, pages]:
                    return None
                page_rows = parse(t)
                if not page_rows or any(r[0] in ids or r[0] not in expected for r in page_rows):
                    return None
                return page_rows

            seen.extend(wait_until(settled_page, timeout, 0.2, f"page {number} of {pages}"))
        if pages > 1:
            expect(self.button("Next page")).to_be_disabled()
        return seen, pages, table["filter"] or ""

    def check_regress_region(self) -> None:
        """The Regress region lists exactly the API's regress instances across all table pages."""
        index = self.state["index"]
        expected = api_rows(self.api.instances(index, region="regress"))
        assert len(expected) == self.state["evaluation"]["regions"]["regress"]
        # The unfiltered table first: every instance either model gets wrong.
        items = self.api.instances(index)
        everything = api_rows(items)
        self.state["all_errors"] = everything
        self.state["all_error_items"] = {int(i["instance_id"]): i for i in items}
        self.read_table(everything, filtered=False, timeout=30)
        self.root.get_by_role("button", name=re.compile(r"^Regress\b")).click()
        rows, pages, filter_text = self.read_table(expected, filtered=True)
        assert {r[0] for r in rows} == set(expected), (
            f"table ids {sorted(r[0] for r in rows)} != API regress ids {sorted(expected)}")
        assert len(rows) == len(expected), f"no instance twice in the table: {len(rows)} rows"
        for row in rows:
            assert row == expected[row[0]], f"row {row} vs API {expected[row[0]]}"
        assert re.search(r"regress", filter_text, re.I), f"the filter is shown: {filter_text!r}"
        self.state["regress_pages"] = pages
        self.screenshot("regress-filter")
        self.button("Clear filter").click()
        expect(self.button("Clear filter")).to_have_count(0)
        self.read_table(everything, filtered=False)

    def check_class_bars(self) -> None:
        """A class bar filters the table to exactly the API's instances of that filter."""
        index = self.state["index"]
        evaluation = self.state["evaluation"]
        by_class = sorted(evaluation["h2_accuracy_by_class"], key=lambda c: (-c["error_count"], c["class"]))
        assert by_class and by_class[0]["error_count"] > 0, "h2 makes errors on some class"
        cls = by_class[0]["class"]
        bar = self.root.get_by_role("button", name=re.compile(rf"\bclass {cls}\b(?=.*\bh2\b)(?=.*accuracy)", re.I))
        expect(bar).to_have_count(1)
        bar.click()
        expected = api_rows(self.api.instances(index, model="h2", **{"class": cls}))
        rows, _, filter_text = self.read_table(expected, filtered=True)
        assert {r[0] for r in rows} == set(expected), f"class {cls} h2 errors: table {sorted(r[0] for r in rows)}, API {sorted(expected)}"
        assert re.search(rf"\b{cls}\b", filter_text) and "h2" in filter_text, f"the filter names h2 and class {cls}: {filter_text!r}"
        self.screenshot(f"class-{cls}-h2-errors")

        # The incompatible-instances chart: regress instances of one class.
        counts = sorted(evaluation["h2_incompatible_count_by_class"], key=lambda c: (-c["count"], c["class"]))
        cls2 = counts[0]["class"]
        bar = self.root.get_by_role("button", name=re.compile(rf"\bclass {cls2}\b(?=.*incompatible)", re.I))
        expect(bar).to_have_count(1)
        bar.click()
        expected2 = api_rows(self.api.instances(index, region="regress", **{"class": cls2}))
        assert len(expected2) == counts[0]["count"]
        rows2, _, filter_text2 = self.read_table(expected2, filtered=True)
        assert {r[0] for r in rows2} == set(expected2)
        assert filter_text2 != filter_text, f"the table's filter changed: {filter_text2!r}"
        assert re.search(rf"\b{cls2}\b", filter_text2) and re.search("regress", filter_text2, re.I), filter_text2
        self.button("Clear filter").click()
        self.read_table(self.state["all_errors"], filtered=False)

    def check_instance_dialog(self) -> None:
        """Opening an instance shows its image, loaded, and Escape closes the dialog."""
        table = self.root.locator("table", has=self.page.get_by_role("columnheader", name=re.compile(r"^Ground truth")))
        expect(table).to_have_count(1)
        first_row = table.locator("tbody tr").first
        first_row.scroll_into_view_if_needed()
        thumb = first_row.locator("img")
        expect(thumb).to_have_count(1)
        self.page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=thumb.element_handle(),
                                    timeout=15_000)
        instance_id = _first_int(first_row.locator("td").nth(1).inner_text())
        first_row.click()
        dialog = self.root.get_by_role("dialog")
        expect(dialog).to_be_visible(timeout=10_000)
        image = dialog.locator("img")
        expect(image).to_have_count(1)
        alt = image.get_attribute("alt") or ""
        assert str(instance_id) in alt, f"the image's alt text names instance {instance_id}: {alt!r}"
        self.page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle(),
                                    timeout=15_000)
        expect(image).to_be_in_viewport()
        natural = image.evaluate("(img) => [img.naturalWidth, img.naturalHeight]")
        box = image.bounding_box()
        assert natural[0] > 0 and natural[1] > 0, natural
        assert box and box["width"] >= 96, f"the dialog shows the image large: {box}"
        item = self.state["all_error_items"][instance_id]
        if item.get("metadata"):
            expect(dialog).to_contain_text(item["metadata"])
        self.screenshot("instance-dialog", full_page=True)
        self.page.keyboard.press("Escape")
        expect(dialog).to_have_count(0, timeout=5_000)
