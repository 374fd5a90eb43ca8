"""The quality stage inside a real refresh (real Prefect, real DuckDB): a batch that fails a
blocking expectation is not published, the previous snapshot stays `curated`, and the run
names the expectation that refused it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.refresh import RefreshConfig, refresh
from warehouse import Store

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
    before = store.quality.curated_reference()
    assert before is not None and len(before) == 8

    # 4 of 10 questions are too short for the questions suite: 40% of the batch is
    # rejected, over the 20% the gate allows, so nothing of it is published.
    short = [(f"{i} + {i}?", f"{i} + {i}") for i in range(1, 5)]
    bad = _jsonl(tmp_path / "b.jsonl", _good(6, 50) + short)
    second = refresh(RefreshConfig(source=f"jsonl:{bad}", warehouse=str(warehouse_path),
                                   max_rejected_fraction=0.2))
    assert second["status"] == "gate_failed" and second["snapshot_id"] is None
    after = store.quality.curated_reference()
    assert sorted(after["question_id"]) == sorted(before["question_id"])
    _, snaps = store.query("SELECT count(*) FROM snapshots")
    assert snaps == [(1,)]

    # The run's validation names the blocking expectation, and the short questions are
    # rejected under the name of the row-level one.
    by_suite = {v["suite"]: v for v in store.quality.run_validations(second["run_id"])}
    assert by_suite["curated_batch"]["success"] is False
    assert "expect_column_mean_to_be_between(row_rejected)" in second.quality.reason
    _, rows = store.query("SELECT results FROM validations WHERE run_id = ? AND suite = "
                          "'curated_batch'", [second["run_id"]])
    results = json.loads(rows[0][0])
    refused = [r for r in results if not r["success"] and r.get("blocking")]
    assert [r["expectation"] for r in refused] == [
        "expect_column_mean_to_be_between(row_rejected)"]
    reasons = dict((r, n) for _, r, n in store.rejection_reasons(second["run_id"]))
    assert reasons["expect_column_value_lengths_to_be_between(question)"] == 4
    assert store.unexplained_questions() == 0


def _kinds_jsonl(path: Path, n: int, kind: str) -> Path:
    path.write_text("".join(json.dumps({
        "question": f"A depot ships {i} boxes on Monday and {2 * i + 3} boxes on Tuesday. How "
                    "many boxes did it ship?", "program": f"ans = {i} + {2 * i + 3}",
        "answer": str(3 * i + 3), "kind": kind}) + "\n" for i in range(1, n + 1)))
    return path


@pytest.mark.usefixtures("data_docs")
def test_drift_warns_by_default_and_refuses_when_blocking(warehouse_path, tmp_path):
    from quality.context import docs_dir_for

    first = refresh(RefreshConfig(source="procedural", n=80, seed=3,
                                  warehouse=str(warehouse_path)))
    assert first["snapshot_id"] == 1
    store = Store(warehouse_path)
    before = sorted(store.quality.curated_reference()["question_id"])

    one_kind = _kinds_jsonl(tmp_path / "k.jsonl", 30, "growth")
    refused = refresh(RefreshConfig(source=f"jsonl:{one_kind}", warehouse=str(warehouse_path),
                                    drift_blocking=True))
    assert refused["status"] == "gate_failed" and refused["snapshot_id"] is None
    assert sorted(store.quality.curated_reference()["question_id"]) == before
    reason = refused.quality.reason
    assert "\n" not in reason
    assert "expect_column_kl_divergence_from_reference_to_be_less_than(kind)" in reason
    # GE's suite success counts warnings too: curated_batch warns that one kind is the
    # whole batch; only the drift suite refused it.
    suites = {v["suite"]: v["success"] for v in store.quality.run_validations(refused["run_id"])}
    assert suites == {"questions": True, "samples": True, "abstentions": True,
                      "curated_batch": False, "curated_drift": False}
    assert "curated_batch:" not in reason
    _, held = store.query("SELECT DISTINCT detail FROM rejections WHERE run_id = ? AND "
                          "stage = 'quality_gate'", [refused["run_id"]])
    assert len(held) == 1 and reason in held[0][0]
    index = docs_dir_for(warehouse_path) / "index.html"
    assert refused.quality.data_docs == str(index) and index.is_file()

    # The same batch under the default setting: drift is a warning, the batch is published.
    store_rej = "DELETE FROM rejections WHERE stage = 'quality_gate'"
    with store.write() as con:
        con.execute(store_rej)
    warned = refresh(RefreshConfig(source=f"jsonl:{one_kind}", warehouse=str(warehouse_path)))
    assert warned["status"] == "completed" and warned["snapshot_id"] == 2
    assert any("(kind)" in w for w in warned.quality.warnings)
    assert warned.quality.reason is None
