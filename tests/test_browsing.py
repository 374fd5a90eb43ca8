"""Browsing as the README tells users to: the DuckDB CLI installed with the project opens a
warehouse that the pipeline wrote (the session's procedural one, conftest.py), and every
query of the README's SQL tour runs in it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).parent / "duckdb"


def _tour() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("### A short SQL tour", 1)[1]
    block = re.search(r"```sql\n(.*?)```", section, re.S)
    assert block, "README: the SQL tour has no sql block"
    lines = [ln for ln in block.group(1).splitlines() if not ln.lstrip().startswith("--")]
    return [q.strip() for q in "\n".join(lines).split(";") if q.strip()]


def _duckdb(path: Path, sql: str) -> subprocess.CompletedProcess:
    # -bail: stop at the first error with a non-zero exit, as a script would want.
    return subprocess.run([str(CLI), "-bail", "-csv", str(path), "-c", sql],
                          capture_output=True, text=True, timeout=60)


def test_duckdb_cli_opens_a_pipeline_warehouse(procedural_warehouse):
    assert CLI.exists(), "the DuckDB CLI (PyPI duckdb-cli, dev extras) is missing from the venv"
    version = subprocess.run([str(CLI), "-version"], capture_output=True, text=True)
    out = _duckdb(procedural_warehouse, "select (select count(*) from curated) as curated, "
                  "(select count(*) from duplicates) as duplicates, "
                  "(select status from run_summary) as status;")
    assert out.returncode == 0, f"{version.stdout}\n{out.stderr}"
    header, row = out.stdout.strip().splitlines()
    assert header == "curated,duplicates,status"
    curated, duplicates, status = row.split(",")
    assert int(curated) > 80 and int(duplicates) > 0 and status == "completed"


def test_readme_sql_tour_runs_in_the_cli(procedural_warehouse):
    queries = _tour()
    assert len(queries) >= 8
    for sql in queries:
        out = _duckdb(procedural_warehouse, sql + ";")
        assert out.returncode == 0 and not out.stderr, f"{sql}\n{out.stderr}"
