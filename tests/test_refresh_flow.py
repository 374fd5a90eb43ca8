"""End to end: the real refresh flow on a temporary warehouse under a real Prefect API."""

from __future__ import annotations

import json

import pytest

from flows.refresh import RefreshConfig, refresh
from tasks.dedup import exact_dedup
from tasks.sources import load_questions
from tasks.stage import StageResult
from warehouse import Store

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_refresh_is_idempotent_and_incremental(warehouse_path):
    n = 200
    cfg = RefreshConfig(source="procedural", n=n, seed=11, warehouse=str(warehouse_path))
    first = refresh(cfg)
    store = Store(warehouse_path)
    after_first = store.counts()
    c = first["counts"]
    assert first["status"] == "completed" and first["snapshot_id"] == 1
    assert c["input"] == n
    assert c["kept"] == after_first["curated"] > 0.75 * n
    # Every input is accounted for: kept, or rejected with a reason.
    assert c["input"] == c["kept"] + c["rejected"]
    assert store.unexplained_questions() == 0
    assert c["semantic_duplicate"] > 0  # the generator's paraphrases are caught

    again = refresh(cfg)
    assert again["snapshot_id"] is None
    assert again["counts"]["new"] == 0 and again["counts"]["embedded"] == 0
    after_again = store.counts()
    for table in ("questions", "samples", "curated", "snapshots", "embeddings", "dedup",
                  "rejections"):
        assert after_again[table] == after_first[table], table

    more = refresh(RefreshConfig(source="procedural", n=n, seed=12,
                                 warehouse=str(warehouse_path)))
    after_more = store.counts()
    assert more["snapshot_id"] == 2
    assert after_more["questions"] - after_first["questions"] == more["counts"]["new"] \
        > 0.75 * n
    assert after_more["curated"] == after_first["curated"] + more["counts"]["kept"]
    _, rows = store.query("SELECT count(*) FROM snapshot_items WHERE snapshot_id = 1 AND "
                          "question_id NOT IN (SELECT question_id FROM curated)")
    assert rows == [(0,)]  # nothing published earlier disappears
    _, runs = store.query("SELECT status, json_extract(counts, '$.kept') FROM runs "
                          "ORDER BY started_at")
    assert [r[0] for r in runs] == ["completed"] * 3
    summary_md = _artifact_markdown(more["run_id"], "refresh-summary")
    assert f"| kept | {more['counts']['kept']} |" in summary_md


def _artifact_markdown(run_id: str, key: str) -> str:
    """The run's artifact as the Prefect API serves it (what the UI shows)."""
    import uuid

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[key]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(run_id)])))
    assert arts, f"no {key} artifact for run {run_id}"
    return str(arts[0].data)


def test_interrupted_run_is_resumed(warehouse_path):
    """A run that died after the dedup write leaves pending questions; the next run
    finishes them instead of skipping them."""
    store = Store(warehouse_path)
    qs, _ = exact_dedup(load_questions("procedural", n=60, seed=21))
    store.start_run("dead", "refresh", {})
    store.save_stage("dead", StageResult(records={
        "questions": qs[:30],
        "dedup": [(q.question_id, q.question_id, 1.0, "representative") for q in qs[:30]]}))
    assert store.question_states([q.question_id for q in qs[:30]]) == {
        q.question_id: "pending" for q in qs[:30]}
    out = refresh(RefreshConfig(source="procedural", n=60, seed=21,
                                warehouse=str(warehouse_path)))
    assert out["counts"]["resumed"] == 30
    _, runs = store.query("SELECT run_id, status FROM runs ORDER BY started_at")
    assert runs[0] == ("dead", "interrupted") and runs[1][1] == "completed"
    assert store.unexplained_questions() == 0
    states = store.question_states([q.question_id for q in qs])
    assert set(states.values()) == {"done"}


def test_gsm8k_and_jsonl_sources(warehouse_path, shared_data, tmp_path):
    out = refresh(RefreshConfig(source=f"gsm8k:{shared_data / 'gsm8k' / 'train.jsonl'}",
                                n=150, warehouse=str(warehouse_path)))
    assert out["counts"]["kept"] >= 140
    jl = tmp_path / "mine.jsonl"
    rows = [
        {"question": "A shop sells 3 pens for 2 dollars each. Total cost?", "answer": "6",
         "program": "ans = 3 * 2"},
        {"question": "Half of 10 apples are eaten. How many are left?", "answer": "4",
         "program": "ans = 10 / 2"},                       # wrong: gold says 4
        {"question": "What is seven squared, computed in Python?", "program": "ans = 7 ** 2"},
        {"question": "Loop forever, what happens here then?", "answer": "1",
         "program": "while True:\n    pass"},
        {"question": "A question that comes with no program at all?", "answer": "3"},
    ]
    jl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = refresh(RefreshConfig(source=f"jsonl:{jl}", warehouse=str(warehouse_path),
                                exec_timeout_s=1.0))
    store = Store(warehouse_path)
    _, rej = store.query("SELECT stage, reason, detail FROM rejections WHERE run_id = ? "
                         "ORDER BY reason", [out["run_id"]])
    by_reason = {r[1]: r for r in rej}
    assert by_reason["wrong_answer"][0] == "check"
    assert "predicted=5" in by_reason["wrong_answer"][2]
    assert "gold=4" in by_reason["wrong_answer"][2]
    assert by_reason["timeout"][0] == "execute"
    assert by_reason["no_program"][0] == "teacher"
    _, cur = store.query("SELECT question, answer, correct FROM curated WHERE source = 'jsonl' "
                         "ORDER BY question")
    assert cur == [("A shop sells 3 pens for 2 dollars each. Total cost?", "6", True),
                   ("What is seven squared, computed in Python?", "49", None)]
    assert store.unexplained_questions() == 0


def test_tatqa_spans_are_rejected_not_dropped(warehouse_path, shared_data):
    out = refresh(RefreshConfig(
        source=f"tatqa:{shared_data / 'tatqa' / 'tatqa_dataset_dev.json'}", n=120,
        warehouse=str(warehouse_path)))
    store = Store(warehouse_path)
    assert out["counts"]["kept"] > 20
    _, rows = store.query("SELECT count(*) FROM rejections WHERE reason = 'non_arithmetic'")
    assert rows[0][0] > 20
    assert store.unexplained_questions() == 0


def test_benchmark_questions_never_reach_the_teacher(warehouse_path, shared_data, tmp_path):
    # The benchmark: the first 200 questions of the real GSM8K test set (the whole set only
    # makes the refresh embed 1,319 questions instead of 200).
    test_file = tmp_path / "gsm8k-test-head.jsonl"
    lines = (shared_data / "gsm8k" / "test.jsonl").read_text().splitlines(keepends=True)
    test_file.write_text("".join(lines[:200]))
    bench = load_questions(f"gsm8k:{test_file}", n=50)
    rows = [{"question": q.text, "answer": q.gold_answer, "program": f"ans = {q.gold_answer}"}
            for q in bench[:3]]
    rows += [{"question": "A baker makes 12 trays of 7 rolls. How many rolls in all?",
              "answer": "84", "program": "ans = 12 * 7"}]
    jl = tmp_path / "mixed.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = refresh(RefreshConfig(source=f"jsonl:{jl}", warehouse=str(warehouse_path),
                                decontaminate=[f"gsm8k:{test_file}"]))
    assert out["counts"]["decontaminate_rejected"] == 3 and out["counts"]["kept"] == 1
    store = Store(warehouse_path)
    _, rows_ = store.query("SELECT signal, benchmark, question FROM contamination "
                           "ORDER BY question")
    assert len(rows_) == 3
    assert {r[0] for r in rows_} == {"benchmark_overlap"}
    assert rows_[0][1] == f"gsm8k:{test_file}"
    _, n_samples = store.query("SELECT count(*) FROM samples s JOIN contamination c "
                               "USING (question_id)")
    assert n_samples == [(0,)]  # nobody was paid to solve them
    assert store.unexplained_questions() == 0


def test_failed_gate_holds_the_whole_batch_back_and_says_why(warehouse_path, tmp_path):
    rows = [{"question": f"Which word is number {i} in the story we read?",
             "program": f"ans = 'word{i}'"} for i in range(3)]
    rows.append({"question": "What is six times seven, as a number?", "program": "ans = 6 * 7"})
    jl = tmp_path / "strings.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    cfg = RefreshConfig(source=f"jsonl:{jl}", warehouse=str(warehouse_path))
    out = refresh(cfg)
    c = out["counts"]
    assert out["status"] == "gate_failed" and out["snapshot_id"] is None
    assert c["quality_rejected"] == 3 and c["gate_held"] == 1 and c["kept"] == 0
    assert c["input"] == c["kept"] + c["rejected"]
    store = Store(warehouse_path)
    _, rows_ = store.query("SELECT reason FROM rejections WHERE stage = 'quality_gate'")
    assert rows_ == [("batch_gate_failed",)]
    assert store.unexplained_questions() == 0
    # The good row does not sneak through on a rerun.
    again = refresh(cfg)
    assert again["snapshot_id"] is None and store.counts()["curated"] == 0


def test_noisy_teacher_errors_are_caught_by_verification(warehouse_path):
    """`--teacher noisy`: every program made wrong leaves as wrong_answer, with the kind of
    error it was given stored in samples.meta; the right ones are published."""
    out = refresh(RefreshConfig(source="procedural", n=150, seed=13, teacher="noisy",
                                error_rate=0.5, warehouse=str(warehouse_path)))
    store = Store(warehouse_path)
    _, rows = store.query(
        "SELECT s.meta ->> 'error_kind', s.correct, r.reason FROM samples s "
        "LEFT JOIN rejections r ON r.item_id = s.question_id AND r.stage = 'check' "
        "WHERE s.teacher = 'noisy'")
    wrong = [r for r in rows if r[0] is not None]
    assert len(wrong) > 30 and len({r[0] for r in wrong}) >= 4
    assert all(correct is False and reason == "wrong_answer" for _, correct, reason in wrong)
    assert all(correct is True and reason is None for kind, correct, reason in rows
               if kind is None)
    assert out.counts["wrong_answer"] == len(wrong)
    assert out.counts["kept"] == store.counts()["curated"] == len(rows) - len(wrong)
    assert store.unexplained_questions() == 0
