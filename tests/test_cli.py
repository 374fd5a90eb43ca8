"""The `distillery` console script as a user runs it (subprocess, Prefect ephemeral mode)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from warehouse import Store

BIN = Path(sys.executable).parent / "distillery"


def _run(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("PREFECT_API_URL", None)  # the harness of other tests is not this process's
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


@pytest.mark.slow
def test_refresh_in_prefect_ephemeral_mode(tmp_path):
    """The one CLI refresh of this file: no Prefect server configured, as a user first runs
    it. The browsing commands below read the session's procedural warehouse instead."""
    wh = tmp_path / "w.duckdb"
    out = _run("refresh", "--source", "procedural", "--n", "120", "--seed", "4",
               "--warehouse", str(wh))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "completed" in out.stdout and "distillery sql" in out.stdout
    assert f"snapshot: 1  warehouse: {wh}" in out.stdout
    assert Store(wh).counts()["curated"] > 80


@pytest.fixture(scope="module")
def populated(procedural_warehouse) -> Path:
    return procedural_warehouse


def test_sql_and_status(populated):
    out = _run("sql", "select count(*) as n from curated", "--format", "csv",
               "--warehouse", str(populated))
    assert out.returncode == 0, out.stderr
    n = int(out.stdout.splitlines()[1])
    assert n == Store(populated).counts()["curated"] > 80
    st = _run("status", "--warehouse", str(populated))
    assert st.returncode == 0 and "curated" in st.stdout and "refresh" in st.stdout


def test_bad_sql_is_one_line(populated):
    out = _run("sql", "select * from no_such_table", "--warehouse", str(populated))
    assert out.returncode != 0
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "no_such_table" in lines[0]


@pytest.mark.parametrize("content, expected", [
    ('{"question": "ok question here?"}\n{"question": "broken", \n', "bad.jsonl:2: invalid JSON"),
    ('{"question": "ok question here?"}\n\n{"answer": "3"}\n',
     "bad.jsonl:3: missing field 'question'"),
])
def test_malformed_input_is_one_line_and_writes_nothing(populated, tmp_path, content, expected):
    before = Store(populated).counts()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    out = _run("refresh", "--source", f"jsonl:{bad}", "--warehouse", str(populated))
    assert out.returncode == 2
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, out.stderr
    assert expected in lines[0]
    assert Store(populated).counts() == before


def test_missing_file_and_unknown_source(tmp_path):
    wh = tmp_path / "w.duckdb"
    out = _run("refresh", "--source", "gsm8k:/nope/train.jsonl", "--warehouse", str(wh))
    assert out.returncode == 2 and "/nope/train.jsonl: no such file" in out.stderr
    out = _run("refresh", "--source", "csv:x", "--warehouse", str(wh))
    assert out.returncode == 2 and "unknown source" in out.stderr
    assert not wh.exists()  # nothing was created for a run that never started


def test_a_base_model_that_cannot_load_offline_is_one_line(populated, tmp_path):
    """An HF id that is neither cached nor downloadable (HF_HUB_OFFLINE=1): one line before
    anything runs, not a traceback from inside transformers; nothing is recorded."""
    before = Store(populated).counts()
    out = _run("finetune", "--base-model", "no-such-org/no-such-model-xyz", "--max-steps", "1",
               "-w", str(populated), "--output-root", str(tmp_path / "models"))
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    assert out.returncode == 2 and len(lines) == 1, out.stderr[-2000:]
    assert "no-such-org/no-such-model-xyz" in lines[0] and "Hugging Face cache" in lines[0]
    assert Store(populated).counts() == before and not (tmp_path / "models").exists()


@pytest.mark.slow
def test_a_run_whose_teacher_requests_all_fail_exits_non_zero(tmp_path):
    """An endpoint that refuses every request (here: the key) fails the run: exit 1 and one
    line that says why, never 'completed' with nothing kept; the key is not in the output."""
    sys.path.insert(0, str(Path(__file__).parent))
    from fake_openai import FakeOpenAI

    key = "sk-" + "7f3a" * 10
    wh = tmp_path / "w.duckdb"
    with FakeOpenAI({}, api_key="sk-the-right-one") as server:
        out = subprocess.run(
            [str(BIN), "refresh", "--source", "procedural", "--n", "12", "--seed", "3",
             "--teacher", "openai", "--base-url", server.base_url, "--max-retries", "0",
             "--warehouse", str(wh)],
            capture_output=True, text=True, timeout=600,
            env={**{k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"},
                 "HF_HUB_OFFLINE": "1", "OPENAI_API_KEY": key})
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
    [line] = [x for x in out.stdout.splitlines() if x.strip().startswith("failed:")]
    assert "every teacher request failed" in line and "401" in line
    assert key not in out.stdout + out.stderr
    assert Store(wh).query("SELECT status FROM runs")[1] == [("failed",)]
