"""Data Docs of a failed validation: `distillery docs` finds the site beside the warehouse, and
a real headless Chromium shows the suite and the failing expectations offline, styled by the
vendored Bootstrap/jQuery/bootstrap-table/Font Awesome copies the site carries under
static/vendor/ (quality/docs_assets.py), with the index table listing the run's validations
(screenshots kept under data/test-artifacts/). Playwright drives Debian's /usr/bin/chromium as
in test_ui_browser.py; any http(s) request is refused and fails the test."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import great_expectations
import pandas as pd
import pytest
from browser import SHOTS, browser_page  # noqa: I001

from quality.context import docs_dir_for
from quality.docs_assets import CDN_COPIES, VENDOR_DIR, vendored_files
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
        # Does not compile: the sandbox says error, and a row that reaches publishing without a
        # successful run is what the samples suite's exec_status expectation catches.
        rows[i]["program"], rows[i]["exec_status"] = "ans = (1 +", "error"
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


GE_TEMPLATES = Path(great_expectations.__file__).parent / "render" / "view" / "templates"
# A tag that makes the browser fetch something, and the URL it fetches.
_FETCHING_TAG = re.compile(r"<(?:script|link|img)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"[^>]*>")


def test_every_cdn_asset_of_ge_templates_has_a_vendored_copy():
    # A GE upgrade that loads a new URL fails here, not silently offline.
    loaded = {url for t in GE_TEMPLATES.glob("*.j2")
              for url in _FETCHING_TAG.findall(t.read_text())
              if url.startswith(("http://", "https://"))}
    assert len(loaded) >= 15
    assert loaded <= set(CDN_COPIES), sorted(loaded - set(CDN_COPIES))
    for copy in CDN_COPIES.values():
        assert (VENDOR_DIR / copy).is_file(), copy
    for folder in (p for p in VENDOR_DIR.iterdir() if p.is_dir()):
        assert list(folder.glob("LICENSE*")), f"{folder.name} has no license file"


def test_vendored_scripts_have_the_bytes_ge_pins():
    # GE pins popper and bootstrap.js with sha384 (integrity=): our copies are those files.
    pinned = re.findall(r'<script src="([^"]+)" integrity="sha384-([^"]+)"',
                        (GE_TEMPLATES / "js_script_imports.j2").read_text())
    assert len(pinned) == 2
    for url, pin in pinned:
        digest = hashlib.sha384((VENDOR_DIR / CDN_COPIES[url]).read_bytes()).digest()
        assert base64.b64encode(digest).decode() == pin, url


def test_vendored_assets_are_package_data():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["quality"]
    root = REPO / "quality"
    shipped = {p for g in globs for p in root.glob(g)}
    missing = [str(p.relative_to(root)) for p in vendored_files() if p not in shipped]
    assert not missing and (VENDOR_DIR / "README.md") in shipped, missing


def test_site_pages_load_only_files_of_the_site(failed_docs):
    _, out = failed_docs
    site = out.docs_index.parent
    pages = list(site.rglob("*.html"))
    assert len(pages) >= 9  # the index, 4 suites, 4 results of the run
    for page in pages:
        urls = _FETCHING_TAG.findall(page.read_text())
        assert any("static/vendor/bootstrap-4.3.1/bootstrap.min.css" in u for u in urls), page
        for url in urls:
            assert not urlsplit(url).scheme, f"{page.relative_to(site)} loads {url}"
            target = (page.parent / urlsplit(url).path).resolve()
            assert target.is_file() and target.is_relative_to(site), (page, url)


def _styles(page) -> dict:
    # Values only the vendored CSS sets: Bootstrap 4's .pl-5 (3rem), the grid's flex row, the
    # Font Awesome faces (a used one's woff2 loaded from the site).
    return page.evaluate("""() => {
        const box = getComputedStyle(document.querySelector('.container-fluid'));
        const row = getComputedStyle(document.querySelector('.row'));
        const fa = [...document.fonts].filter(f => f.family.includes('Font Awesome'));
        return {padding_left: box.paddingLeft, row_display: row.display,
                font_awesome_loaded: fa.some(f => f.status === 'loaded')};
    }""")


@pytest.mark.slow
def test_browser_shows_the_site_offline_styled_with_the_failed_suite(failed_docs):
    _, out = failed_docs
    index_shot = SHOTS / "data-docs-index-offline.png"
    shot = SHOTS / "data-docs-failed-validation.png"
    requests: list[str] = []
    failed: list[str] = []
    with browser_page(shot, height=1600, full_page=True) as page:
        page.on("request", lambda r: requests.append(r.url))
        page.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
        page.route(re.compile(r"^https?://"), lambda route: route.abort())
        page.goto(out.docs_index.as_uri())
        # The index table is drawn by bootstrap-table (a vendored script): one row per suite
        # of this run, each linking its result page.
        rows = page.locator("table.ge-index-page-validation-results-table tbody tr")
        rows.first.wait_for()
        assert page.locator("div.bootstrap-table").count() >= 1
        listed = [r for r in rows.all_inner_texts() if "run-failed-1" in r]
        assert len(listed) == len(out.docs_pages) == 4
        for suite in out.docs_pages:
            assert any(re.search(rf"\b{suite}\b", r) for r in listed), suite
        assert _styles(page) == {"padding_left": "48px", "row_display": "flex",
                                 "font_awesome_loaded": True}
        page.screenshot(path=str(index_shot))

        # A row opens its result page (GE's clickable-row script); the suite cell links the
        # suite's page instead, so click the run name.
        samples_row = rows.filter(has_text="run-failed-1").filter(
            has=page.get_by_role("link", name="samples", exact=True))
        samples_row.get_by_text("run-failed-1").click()
        page.get_by_text("Expectation Suite:").first.wait_for()
        assert "/validations/samples/run-failed-1/" in page.url
        body = page.locator("body").inner_text()
        assert re.search(r"Expectation Suite:\s*samples", body)
        assert re.search(r"Status:\s*Failed", body)
        assert "25% unexpected" in body  # 3 of 12 programs
        assert "error" in body           # the failing value is shown
        assert _styles(page)["padding_left"] == "48px"
        samples_page = page.url

        page.goto(out.docs_pages["curated_batch"])
        page.get_by_text("Expectation Suite:").first.wait_for()
        batch = page.locator("body").inner_text()
        assert re.search(r"Expectation Suite:\s*curated_batch", batch)
        assert re.search(r"Status:\s*Failed", batch)
        assert "row_rejected" in batch
        page.goto(samples_page)
        compiles = page.get_by_text("Execution produced").first
        compiles.scroll_into_view_if_needed()
    # Nothing left the machine: every request was a file of the site (or inline data).
    assert requests and all(u.startswith(("file://", "data:")) for u in requests), \
        [u for u in requests if not u.startswith(("file://", "data:"))]
    assert not failed, failed
    assert any("static/vendor/jquery-3.7.1/jquery.min.js" in u for u in requests)
    assert shot.stat().st_size > 10_000 and index_shot.stat().st_size > 10_000
