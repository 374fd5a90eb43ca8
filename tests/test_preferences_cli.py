"""`distillery preferences` as a user runs it (subprocess), against the session's Prefect
server as after `make serve` (ephemeral mode, a server started by every command, is
test_cli.py's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from warehouse import Store

BIN = Path(sys.executable).parent / "distillery"


@pytest.fixture(scope="module")
def api_url(prefect_server) -> str:
    return prefect_server.api_url


def _run(*args: str, api_url: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("PREFECT_API_URL", None)
    if api_url:  # the commands that run a flow report to the session's server
        env["PREFECT_API_URL"] = api_url
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.mark.slow
def test_preferences_command(tmp_path, api_url):
    wh = tmp_path / "w.duckdb"
    out = _run("refresh", "--source", "procedural", "--n", "40", "--seed", "5",
               "--teacher", "noisy", "--error-rate", "0.5", "-w", str(wh), api_url=api_url)
    assert out.returncode == 0, out.stderr[-2000:]
    out = _run("preferences", "-w", str(wh), "--out", str(tmp_path / "ex"),
               "--balanced-verifier", "--solutions-per-question", "2", api_url=api_url)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "pairs.outcome=" in out.stdout and "pairs.step=" in out.stdout
    manifest = json.loads((tmp_path / "ex" / "verifier" / "manifest.json").read_text())
    assert manifest["metadata"]["balanced"] is True
    rows = [json.loads(x) for x in
            (tmp_path / "ex" / "verifier" / "data.jsonl").read_text().splitlines()]
    assert sum(r["label"] for r in rows) * 2 == len(rows)

    # DPO on the stored pairs (outcome pairs only), then the evaluation every finetune gets.
    out = _run("dpo", "--base-model", "tiny", "--pair-type", "outcome", "--max-pairs", "6",
               "--max-steps", "2", "--batch-size", "3", "--learning-rate", "1e-3",
               "--logging-steps", "1", "--eval-n", "3", "--max-new-tokens", "16",
               "--output-root", str(tmp_path / "models"), "-w", str(wh), api_url=api_url)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "6 preference pairs, 2 steps" in out.stdout
    assert "procedural-heldout (n=3)" in out.stdout
    _, runs = Store(wh).query(
        "SELECT f.status, f.params ->> 'pair_type', f.params ->> 'pairs', e.n, f.output_dir "
        "FROM finetune_runs f JOIN evaluations e ON e.finetune_run_id = f.run_id "
        "WHERE f.params ->> 'method' = 'dpo'")
    assert [r[:4] for r in runs] == [("completed", "outcome", "6", 3)]
    assert (Path(runs[0][4]) / "config.json").is_file()
    trained_on = [json.loads(x) for x in
                  (Path(runs[0][4]) / "data" / "data.jsonl").read_text().splitlines()]
    assert len(trained_on) == 6 and {r["pair_type"] for r in trained_on} == {"outcome"}


@pytest.mark.slow
def test_bad_options_are_one_line(tmp_path, api_url):
    # The input is refused inside the flow: a flow run starts, on the session's server.
    out = _run("preferences", "-w", str(tmp_path / "none.duckdb"), api_url=api_url)
    assert out.returncode == 2 and "no such file" in out.stderr
    assert len([x for x in out.stderr.splitlines() if x.strip()]) == 1
    assert not (tmp_path / "none.duckdb").exists()
    out = _run("preferences", "-w", str(tmp_path / "none.duckdb"), "--min-distance", "2")
    assert out.returncode == 2 and "--min-distance" in out.stderr
    # DPO on a warehouse without preference pairs: one line, nothing trained.
    wh = tmp_path / "w.duckdb"
    assert _run("refresh", "--source", "procedural", "--n", "20", "-w", str(wh),
                api_url=api_url).returncode == 0
    out = _run("dpo", "--max-steps", "1", "--eval-n", "0", "-w", str(wh), api_url=api_url)
    assert out.returncode == 2
    assert "no preference pairs; run `distillery preferences` first" in out.stderr
    assert len([x for x in out.stderr.splitlines() if x.strip()]) == 1
    assert Store(wh).query("SELECT count(*) FROM finetune_runs")[1] == [(0,)]
