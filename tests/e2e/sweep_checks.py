"""The sweep-lifecycle checks of :class:`~.widget_driver.WidgetDriver`: start, progress, completion, cancel.

The checks stall the sweep through a :class:`~.sweep_gate.PassGate` (the
gated training set of the notebook, or of the demo through ``gated_demo.py``)
at chosen passes, and look at the page while nothing moves: no check depends
on how fast the sweep runs.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any, Dict, List, Tuple

from playwright.sync_api import expect

from .e2e_helpers import artifact_path, wait_until
from .sweep_gate import PassGate


class SweepChecks:
    """Mixed into :class:`~.widget_driver.WidgetDriver`: needs its ``page``, ``root``, ``api``, ``label``,
    ``state``, ``button``, ``snapshot`` and ``screenshot``."""

    def click_start(self) -> None:
        """Click "Start sweep" and wait for the server's answer: from then on the new sweep runs (or ran)."""
        with self.page.expect_response(lambda r: r.request.method == "POST" and "/start_sweep" in r.url,
                                       timeout=15_000) as answer:
            self.button("Start sweep").click()
        assert answer.value.status == 202, f"start_sweep answers 202, not {answer.value.status}"

    def check_stalled_progress(self, gate: PassGate, number: int, above: int) -> Dict[str, Any]:
        """The sweep stalls at the start of training-set pass ``number``: the bar shows the API's percent.

        While the sweep's thread waits at the gate its status cannot move, so the
        UI's polls must come to show exactly the API's percent (rounded as the UI
        rounds, Math.round), and that value must lie strictly between 0 and 100
        and above ``above``. Returns the API's status at the stall.
        """
        gate.wait_reached(number)
        status = self.api.status()
        assert status["running"], f"the sweep runs while stalled at pass {number}: {status}"
        percent = status["percent_complete"]
        shown = math.floor(percent * 100 + 0.5)  # the UI's Math.round of a fraction in [0, 1]
        bar = self.root.get_by_role("progressbar")
        expect(bar).to_have_attribute("aria-valuenow", str(shown), timeout=15_000)
        again = self.api.status()
        assert again["percent_complete"] == percent and again["running"], \
            f"the sweep's status stays put while it is stalled at pass {number}: {status} then {again}"
        assert 0 < shown < 100, f"stalled at pass {number}, the bar shows {shown}; it must lie strictly between " \
                                f"0 and 100 (API percent_complete {percent}): {status}"
        assert shown > above, f"stalled at pass {number}, the bar shows {shown}; it must exceed {above}, " \
                              f"what it showed at the gate before"
        if status.get("executor") == "vectorized":
            # Several trainings run as one stacked model: the status lists them all as running.
            assert len(status.get("running_jobs") or []) > 1, \
                f"the vectorized executor trains jobs together: {status}"
        status["shown"] = shown
        return status

    def run_first_sweep(self, gate: PassGate, gated_epochs: Tuple[int, ...] = (2, 11),
                        timeout: float = 150) -> None:
        """Start sweep: the bar advances, points stream in while it runs, the sweep completes.

        The sweep stalls at the starts of ``gated_epochs`` in turn: at each
        stall the bar shows the API's percent, strictly between 0 and 100 and
        larger at the second. After the last stall the page is sampled until
        the sweep ends (the bar never goes back).
        """
        samples: List[Tuple[float, int, int]] = []
        shot_taken = False
        stalls: List[Dict[str, Any]] = []
        started = time.monotonic()
        numbers = [gate.epoch_pass(epoch) for epoch in gated_epochs]
        assert len(numbers) >= 2 and list(gated_epochs) == sorted(set(gated_epochs)) and gated_epochs[0] >= 2, \
            f"gate two or more distinct epochs in order, after the first (at its start nothing is trained): " \
            f"{gated_epochs}"
        gate.arm(*numbers)
        try:
            self.click_start()
            for number in numbers:
                stall = self.check_stalled_progress(gate, number, stalls[-1]["shown"] if stalls else 0)
                stalls.append(stall)
                snap = self.snapshot()
                samples.append((round(time.monotonic() - started, 2), snap["value"], snap["points"]))
                if not shot_taken:
                    self.screenshot("sweep-running")
                    shot_taken = True
                gate.release(number)
            while True:
                snap = self.snapshot()
                status = self.api.status()
                samples.append((round(time.monotonic() - started, 2), snap["value"], snap["points"]))
                if not shot_taken and 0 < snap["points"] < status["total_points"] and snap["value"] < 100:
                    self.screenshot("sweep-running")
                    shot_taken = True
                if not status["running"]:
                    break
                assert time.monotonic() - started < timeout, f"the sweep still runs after {timeout} s: {status}"
                time.sleep(0.15)
        except BaseException:
            gate.release_all()  # the sweep goes on; the test fails with its own message
            raise
        assert status["state"] == "completed", f"the first sweep completes: {status}"
        total = status["total_points"]
        # The UI reaches the end state too.
        expect(self.root.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100", timeout=15_000)
        wait_until(lambda: self.snapshot()["points"] == total, 15, 0.2, f"{total} points in the scatter plots")
        expect(self.root.get_by_text(re.compile(r"completed", re.I)).first).to_be_visible()
        expect(self.button("Start sweep")).to_be_enabled()
        with open(artifact_path(f"{self.label}-progress-samples.txt"), "w") as handle:
            for number, stall in zip(numbers, stalls):
                handle.write(f"stalled at training-set pass {number}: API percent_complete "
                             f"{stall['percent_complete']}, bar {stall['shown']}\n")
            handle.write("seconds\taria-valuenow\tpoints shown\n")
            handle.writelines(f"{t}\t{v}\t{p}\n" for t, v, p in samples)
        values = [v for _, v, _ in samples]
        assert values == sorted(values), f"the progress bar never goes back: {samples}"
        summary = self.api.summary()
        assert len(summary["data"]) == total
        self.state["summary"] = summary
        self.state["samples"] = samples
        self.screenshot("sweep-completed")

    def check_cancel_second_sweep(self, gate: PassGate, gated_epoch: int = 2) -> None:
        """A second sweep starts and can be cancelled; the UI says so.

        The sweep stalls at the start of ``gated_epoch``; Cancel is clicked
        there (the UI posts the cancel with fetch, so the click does not wait
        for the server, whose cancel waits for the sweep to stop), the stall is
        released only once the sweep has registered the cancel, and the sweep
        must stop before its next training step: its percent stays the stalled
        one.
        """
        start, cancel = self.button("Start sweep"), self.button("Cancel sweep")
        expect(start).to_be_enabled()
        total = self.api.status()["total_points"]
        assert gated_epoch >= 2, "gate an epoch after the first, so that the cancel lands among the steps"
        number = gate.epoch_pass(gated_epoch)
        gate.arm(number)
        try:
            self.click_start()
            gate.wait_reached(number)
            status = self.api.status()
            assert status["running"], f"the second sweep runs, stalled at pass {number}: {status}"
            expect(cancel).to_be_enabled(timeout=15_000)
            cancel.click()
            gate.wait_stop_requested(number)
            still = self.api.status()
            assert still["running"] and still["percent_complete"] == status["percent_complete"], \
                f"the cancelled sweep waits at the gate of pass {number}: {status} then {still}"
            gate.release(number)
        except BaseException:
            gate.release_all()
            raise
        expect(self.root.get_by_text(re.compile(r"cancelled", re.I)).first).to_be_visible(timeout=30_000)
        final = self.api.wait_idle(30)
        assert final["state"] == "cancelled", final
        assert final["completed_points"] < final["total_points"] == total, final
        expect(start).to_be_enabled(timeout=15_000)
        expect(cancel).to_be_disabled()
        bar = self.root.get_by_role("progressbar")
        # Cancelled before the step after the stall: no step trained (the last step's loss is the same) and
        # no datapoint finished since; an ended sweep is at its share of stored points.
        assert final["loss"] == status["loss"] is not None, \
            f"the sweep trained no step after the cancel at pass {number}: {status} then {final}"
        assert final["completed_points"] == status["completed_points"], (status, final)
        assert final["percent_complete"] == final["completed_points"] / total, final
        shown = math.floor(final["percent_complete"] * 100 + 0.5)
        expect(bar).to_have_attribute("aria-valuenow", str(shown), timeout=15_000)
        value = int(bar.get_attribute("aria-valuenow"))
        assert value < 100, f"a cancelled sweep's bar is not full: {value}"
        self.screenshot("sweep-cancelled")
