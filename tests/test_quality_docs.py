"""Data Docs of a failed validation: `distillery docs` finds the site beside the warehouse, and
a real headless Chromium shows the suite and the failing expectations (screenshot kept under
data/test-artifacts/). Playwright drives Debian's /usr/bin/chromium as in test_ui_browser.py;
the pages' CDN assets (bootstrap, jquery) are blocked: the machine is offline, and the
validation pages are plain HTML without them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from browser import SHOTS, browser_page  # noqa: I001

from quality.context import docs_dir_for
from quality.validate import validate_candidates

REPO = Path(__file__).resolve().parents[1]


def _docs_cli(*args: str) -> subprocess.CompletedProcess:
    # `distillery docs` from this checkout (PYTHONPATH), as the console script runs it.
    code = "from flows.cli.main import main; main()"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code, "docs", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def _failed_batch() -> pd.DataFrame:
    rows = []
    for i in range(12):
        rows.append({"question_id": f"q{i}", "question": f"What is {i} plus four, exactly?",
                     "context": "", "program": f"ans = {i} + 4", "answer": str(i + 4),
                     "source": "procedural", "kind": ("sum", "ratio")[i % 2],
                     "difficulty": 1, "exec_status": "ok"})
    for i in (1, 2, 3):
        rows[i]["program"] = "ans = (1 +"  # does not compile
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def failed_docs(tmp_path_factory) -> tuple[Path, object]:
    warehouse = tmp_path_factory.mktemp("docs") / "wh.duckdb"
    with pytest.MonkeyPatch.context() as mp:  # the suite turns Data Docs off (conftest.py)
        mp.setenv("DISTILLERY_DATA_DOCS", "1")
        out = validate_candidates(_failed_batch(), max_rejected_fraction=0.1,
                                  run_id="run-failed-1", docs_dir=docs_dir_for(warehouse))
    assert not out.success  # 3 of 12 rows rejected, over 0.1: the batch is refused
    return warehouse, out


def test_docs_command_prints_the_site_beside_the_warehouse(failed_docs):
    warehouse, out = failed_docs
    got = _docs_cli("--warehouse", str(warehouse))
    assert got.returncode == 0, got.stderr[-2000:]
    assert got.stdout.strip() == str(warehouse.parent / "docs" / "index.html")
    assert Path(got.stdout.strip()) == out.docs_index


def test_docs_command_without_a_site_fails_in_one_line(tmp_path):
    got = _docs_cli("--warehouse", str(tmp_path / "empty.duckdb"))
    assert got.returncode == 2
    lines = got.stderr.strip().splitlines()
    assert len(lines) == 1 and "no Data Docs at" in lines[0] and str(tmp_path) in lines[0]
    assert not (tmp_path / "docs").exists()


def test_docs_rebuild_renders_the_stored_results_again(failed_docs, tmp_path):
    warehouse, out = failed_docs
    page = Path(out.docs_pages["samples"].removeprefix("file://"))
    page.unlink()
    got = _docs_cli("--warehouse", str(warehouse), "--rebuild")
    assert got.returncode == 0, got.stderr[-2000:]
    assert page.is_file()


def test_browser_shows_the_failed_suite_and_expectation(failed_docs):
    _, out = failed_docs
    shot = SHOTS / "data-docs-failed-validation.png"
    with browser_page(shot, height=1600, full_page=True) as page:
        page.route(re.compile(r"^https?://"), lambda route: route.abort())
        page.goto(out.docs_index.as_uri())
        # The index lists this run's result pages (its table is drawn by a CDN
        # script; the links are in the page either way).
        links = re.findall(r"validations/samples/run-failed-1/[^\"']+\.html",
                           page.content())
        assert links, "the index does not link the samples result of the run"
        page.goto((out.docs_index.parent / links[0]).as_uri())
        page.get_by_text("Expectation Suite:").first.wait_for()
        body = page.locator("body").inner_text()
        assert re.search(r"Expectation Suite:\s*samples", body)
        assert re.search(r"Status:\s*Failed", body)
        failing = page.get_by_text("Every program compiles as Python").first
        failing.scroll_into_view_if_needed()
        assert "25% unexpected" in body  # 3 of 12 programs
        assert "ans = (1 +" in body      # the failing value is shown

        page.goto(out.docs_pages["curated_batch"])
        page.get_by_text("Expectation Suite:").first.wait_for()
        batch = page.locator("body").inner_text()
        assert re.search(r"Expectation Suite:\s*curated_batch", batch)
        assert re.search(r"Status:\s*Failed", batch)
        assert "row_rejected" in batch
        page.goto((out.docs_index.parent / links[0]).as_uri())
        compiles = page.get_by_text("Every program compiles as Python").first
        compiles.scroll_into_view_if_needed()
    assert shot.stat().st_size > 10_000
