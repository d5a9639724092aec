"""Fixtures of the browser tests: Playwright (sync API) driving Debian's chromium, headless.

Screenshots go to ``artifacts/e2e/`` at the repository root (git-ignored);
a failing test leaves ``FAILED-<test>.png`` of every open page there too.
"""

from __future__ import annotations

import os
import re

import pytest

from .e2e_helpers import ACTIVE_PAGES, ARTIFACTS_DIR, CHROMIUM_ARGS, artifact_path, find_or_install_chromium


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    return find_or_install_chromium()


@pytest.fixture(scope="session")
def playwright_instance():
    from playwright.sync_api import sync_playwright

    os.makedirs(ARTIFACTS_DIR, exist_ok=True)
    for name in os.listdir(ARTIFACTS_DIR):  # this run's artifacts only
        if name.endswith((".png", ".txt")):
            os.remove(os.path.join(ARTIFACTS_DIR, name))
    manager = sync_playwright()
    playwright = manager.start()
    yield playwright
    playwright.stop()


@pytest.fixture(scope="module")
def browser(playwright_instance, chromium_executable):
    browser = playwright_instance.chromium.launch(executable_path=chromium_executable, headless=True,
                                                  args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)


@pytest.fixture(autouse=True)
def _screenshot_on_failure(request):
    yield
    reports = [getattr(request.node, "rep_" + when, None) for when in ("setup", "call")]
    if any(report is not None and report.failed for report in reports):
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        for label, page in list(ACTIVE_PAGES.items()):
            try:
                page.screenshot(path=artifact_path(f"FAILED-{label}-{name}.png"), full_page=True)
            except Exception:
                pass
