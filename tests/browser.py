"""Headless Chromium for the UI tests: Debian's browser driven by Playwright (nothing is
downloaded), one page that leaves a screenshot behind whatever happens."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parents[1]
SHOTS = Path(os.environ.get("DISTILLERY_TEST_ARTIFACTS", REPO / "data" / "test-artifacts"))


def require_browser() -> None:
    problems = []
    if not CHROMIUM.exists():
        problems.append(f"{CHROMIUM} not found (apt-get install chromium chromium-driver)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("playwright is not installed (pip install -e '.[dev]')")
    if problems:
        # In CI a missing browser is a broken setup, not a reason to skip the UI test.
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("browser test cannot run: " + "; ".join(problems))
        pytest.skip("; ".join(problems))


@contextmanager
def browser_page(shot: Path, width: int = 1400, height: int = 1000,
                 full_page: bool = False) -> Iterator[Any]:
    """A page of a fresh headless Chromium; its screenshot goes to `shot` on the way out."""
    require_browser()
    from playwright.sync_api import sync_playwright

    shot.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(30_000)
            try:
                yield page
            finally:
                page.screenshot(path=str(shot), full_page=full_page)
        finally:
            browser.close()
