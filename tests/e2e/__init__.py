"""Browser tests (pytest + Playwright + Debian chromium); a package so that its conftest does not shadow tests/conftest.py."""
