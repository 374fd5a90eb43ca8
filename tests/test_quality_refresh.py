"""The quality stage inside a real refresh (real Prefect, real DuckDB): a batch that fails a
blocking expectation is not published, the previous snapshot stays `curated`, and the run
names the expectation that refused it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.refresh import RefreshConfig, refresh
from warehouse import Store
from warehouse.quality import curated_reference, run_validations

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _jsonl(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"question": q, "program": f"ans = {expr}",
                                        "answer": str(eval(expr))}) + "\n"  # noqa: S307
                            for q, expr in rows))
    return path


def _good(n: int, offset: int) -> list[tuple[str, str]]:
    return [(f"A crate holds {i} apples and {i + 7} pears. How many fruits are there?",
             f"{i} + {i + 7}") for i in range(offset, offset + n)]


def test_a_refused_batch_keeps_the_previous_snapshot(warehouse_path, tmp_path):
    first = refresh(RefreshConfig(source=f"jsonl:{_jsonl(tmp_path / 'a.jsonl', _good(8, 10))}",
                                  warehouse=str(warehouse_path)))
    assert first["status"] == "completed" and first["snapshot_id"] == 1
    store = Store(warehouse_path)
    before = curated_reference(store)
    assert before is not None and len(before) == 8

    # 4 of 10 questions are too short for the questions suite: 40% of the batch is
    # rejected, over the 20% the gate allows, so nothing of it is published.
    short = [(f"{i} + {i}?", f"{i} + {i}") for i in range(1, 5)]
    bad = _jsonl(tmp_path / "b.jsonl", _good(6, 50) + short)
    second = refresh(RefreshConfig(source=f"jsonl:{bad}", warehouse=str(warehouse_path),
                                   max_rejected_fraction=0.2))
    assert second["status"] == "gate_failed" and second["snapshot_id"] is None
    after = curated_reference(store)
    assert sorted(after["question_id"]) == sorted(before["question_id"])
    _, snaps = store.query("SELECT count(*) FROM snapshots")
    assert snaps == [(1,)]

    # The run's validation names the blocking expectation, and the short questions are
    # rejected under the name of the row-level one.
    by_suite = {v["suite"]: v for v in run_validations(second["run_id"], store)}
    assert by_suite["curated_batch"]["success"] is False
    assert second.refused and "expect_column_mean_to_be_between(row_rejected)" in second.refused
    _, rows = store.query("SELECT results FROM validations WHERE run_id = ? AND suite = "
                          "'curated_batch'", [second["run_id"]])
    results = json.loads(rows[0][0])
    refused = [r for r in results if not r["success"] and r.get("blocking")]
    assert [r["expectation"] for r in refused] == [
        "expect_column_mean_to_be_between(row_rejected)"]
    reasons = dict((r, n) for _, r, n in store.rejection_reasons(second["run_id"]))
    assert reasons["expect_column_value_lengths_to_be_between(question)"] == 4
    assert store.unexplained_questions() == 0
