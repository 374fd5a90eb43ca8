"""Two processes on one warehouse file: a refresh and a finetune at the same time both
complete (short transactions, lock retry); a second refresh is refused while one runs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.refresh import RefreshConfig, refresh
from tasks.sources import load_questions
from warehouse import Store
from warehouse.refresh_lock import RefreshAlreadyRunning, lock_path, refresh_lock

sys.path.insert(0, str(Path(__file__).parent))
from fake_openai import FakeOpenAI  # noqa: E402

BIN = Path(sys.executable).parent
# Runs one flow in a process of its own and reports its result, its time window and how long
# its warehouse opens waited for the other process.
DRIVER = """
import json, sys, time
from warehouse.connection import lock_waits
kind, cfg = sys.argv[1], json.loads(sys.argv[2])
t0 = time.time()
if kind == "refresh":
    from flows.refresh import RefreshConfig, refresh
    out = refresh(RefreshConfig(**cfg))
else:
    from flows.experiments import FinetuneConfig, finetune_flow
    out = finetune_flow(FinetuneConfig(**cfg))
out = out.model_dump() if hasattr(out, "model_dump") else out
print("RESULT " + json.dumps({"out": out, "start": t0, "end": time.time(),
                              "waits": lock_waits()}, default=str))
"""


def _start(live, *args: str) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "python"), "-c", DRIVER, *args], env=live.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen, timeout: float = 240) -> tuple[dict, str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-4000:]
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):]), err


@pytest.mark.slow
def test_refresh_and_finetune_at_once_on_one_file(prefect_server, procedural_warehouse,
                                                  tmp_path):
    wh = procedural_warehouse  # one refresh run, snapshot 1 (conftest.py)
    store = Store(wh)
    curated_before = store.counts()["curated"]
    assert store.query("SELECT max(snapshot_id) FROM snapshots")[1] == [(1,)]
    assert curated_before > 200

    ft_cfg = {"subset_size": 40, "snapshot_id": 1, "max_steps": 3, "eval_n": 4,
              "max_new_tokens": 32, "batch_size": 2, "warehouse": str(wh),
              "output_root": str(tmp_path / "models")}
    rf = _start(prefect_server, "refresh", json.dumps({"n": 150, "seed": 42,
                                                       "warehouse": str(wh)}))
    ft = _start(prefect_server, "finetune", json.dumps(ft_cfg))
    r, r_err = _result(rf)
    f, f_err = _result(ft)

    # They really ran at the same time, and no lock error reached either.
    assert r["start"] < f["end"] and f["start"] < r["end"]
    for err in (r_err, f_err):
        assert "WarehouseBusy" not in err and "Could not set lock" not in err
    # How long each waited for the other's short transactions is reported, not asserted
    # (timings belong in bench/); the point is that waiting, not failing, happened.
    print(f"\nlock waits: refresh {r['waits']}, finetune {f['waits']}")

    c = r["out"]["counts"]
    assert r["out"]["status"] == "completed" and r["out"]["snapshot_id"] == 2
    assert c["input"] == 150 == c["kept"] + c["rejected"]
    assert store.counts()["curated"] == curated_before + c["kept"]
    [model] = f["out"]["models"]
    assert f["out"]["snapshot_id"] == 1 and model["size"] == 40
    assert model["train"]["steps"] == 3
    _, rows = store.query("SELECT status, snapshot_id, json_extract(metrics, '$.n_examples') "
                          "FROM finetune_runs")
    assert rows == [("completed", 1, "40")] or rows == [("completed", 1, 40)]
    _, runs = store.query("SELECT status, count(*) FROM runs GROUP BY 1")
    assert runs == [("completed", 2)]


def _cli(live, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "distillery"), *args], env=live.env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_second_refresh_is_refused_while_one_runs(prefect_server, tmp_path):
    """The first refresh's teacher is a local OpenAI-compatible server that holds every
    answer until told: the first refresh is certainly still running (holding the lock, in
    its teacher stage) while the second is refused, however slow the machine."""
    wh = tmp_path / "one.duckdb"
    lock = lock_path(wh)
    n, seed = 40, 5
    answers = {(q.text, q.context.strip()): q.gold_program
               for q in load_questions("procedural", n=n, seed=seed)}
    with FakeOpenAI(answers) as teacher:
        teacher.hold()
        first = _cli(prefect_server, "refresh", "--n", str(n), "--seed", str(seed),
                     "--teacher", "openai", "--base-url", teacher.base_url,
                     "--request-timeout-s", "600", "--warehouse", str(wh),
                     OPENAI_API_KEY="sk-test-refresh-lock")
        deadline = time.monotonic() + 180
        while not (lock.exists() and f'"pid": {first.pid}' in lock.read_text()
                   and teacher.stats()["held"] > 0):
            assert first.poll() is None, first.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the first refresh never reached its teacher"
            time.sleep(0.1)

        # The CLI refuses with one line that names the running refresh...
        second = _cli(prefect_server, "refresh", "--n", "20", "--warehouse", str(wh))
        # ...and so does the flow itself (a deployment run, or a race past the CLI's check).
        with prefect_server.settings(), \
                pytest.raises(RefreshAlreadyRunning, match="another refresh"):
            refresh(RefreshConfig(n=20, warehouse=str(wh)))
        out, err = second.communicate(timeout=120)
        assert second.returncode == 3, err[-3000:]
        assert "another refresh is running on this warehouse" in err
        assert f"pid {first.pid}" in err and "Traceback" not in err
        assert first.poll() is None  # held by its teacher: it cannot have finished

        teacher.release()
        out, err = first.communicate(timeout=240)
    assert first.returncode == 0, err[-3000:]
    store = Store(wh)
    _, runs = store.query("SELECT status FROM runs")
    assert runs == [("completed",)]  # the refused ones wrote nothing, not even a run row
    assert store.counts()["curated"] > n // 2
    assert lock.read_text() == ""  # released: the next refresh may start
    with refresh_lock(wh, "next"):
        pass
