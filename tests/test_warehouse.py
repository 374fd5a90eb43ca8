from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import duckdb
import numpy as np
import pytest

from tasks.stage import StageResult
from tasks.types import Question, Rejection, Sample, text_key
from warehouse import Store, WarehouseBusy, connect
from warehouse.connection import MIGRATIONS_DIR
from warehouse.records import RECORD_WRITERS, UnknownRecordKind


def test_migrations_apply_once_in_order(warehouse_path):
    with connect(warehouse_path) as con:
        versions = [r[0] for r in con.execute(
            "SELECT version FROM schema_migrations ORDER BY version").fetchall()]
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables").fetchall()}
    expected = sorted(p.stem for p in MIGRATIONS_DIR.glob("[0-9][0-9][0-9]_*.sql"))
    assert versions == expected
    for name in ("runs", "questions", "samples", "rejections", "embeddings", "dedup",
                 "validations", "snapshots", "snapshot_items", "llm_cache", "curated",
                 "run_summary", "duplicates"):
        assert name in tables, name


def _q(i: int) -> Question:
    return Question(text=f"What is {i} plus {i}?", source="jsonl", gold_answer=str(2 * i),
                    source_id=f"t:{i}")


def test_writes_are_idempotent_and_snapshots_only_change_with_content(warehouse_path):
    store = Store(warehouse_path)
    qs = [_q(i) for i in range(5)]
    emb = {text_key(q.text): np.full(4, i, dtype=np.float32) for i, q in enumerate(qs)}
    rows = [(q.question_id, q.question_id, 1.0, "representative") for q in qs]
    stage = StageResult(rejections=[Rejection("x", "dedup", "exact")],
                        records={"questions": qs, "dedup": rows,
                                 "embeddings": [(k, "m", v) for k, v in emb.items()]})
    for _ in range(2):
        store.save_stage("r1", stage)
    samples = [Sample(q.question_id, "reference", "gold", "v1", 0, f"ans = {2 * i}",
                      exec_status="ok", predicted=str(2 * i), correct=True)
               for i, q in enumerate(qs)]
    store.save_stage("r1", StageResult(records={"samples": samples}))
    store.save_stage("r1", StageResult(records={"samples": samples}))
    counts = store.counts()
    assert (counts["questions"], counts["embeddings"], counts["samples"],
            counts["rejections"]) == (5, 5, 5, 1)

    kept = {s.question_id: s.sample_id for s in samples[:3]}
    first = store.publish_snapshot("r1", kept)
    assert first == 1
    assert store.publish_snapshot("r2", kept) is None  # same content: nothing new
    second = store.publish_snapshot("r3", {s.question_id: s.sample_id for s in samples[3:]})
    assert second == 2
    _, rows_ = store.query("SELECT count(*), min(snapshot_id) FROM curated")
    assert rows_ == [(5, 2)]  # the latest snapshot carries the earlier items forward
    got = store.load_embeddings([text_key(qs[2].text)], "m")
    assert np.allclose(got[text_key(qs[2].text)], 2.0)


def test_save_stage_refuses_an_unknown_record_kind_and_writes_nothing(warehouse_path):
    store = Store(warehouse_path)
    with pytest.raises(UnknownRecordKind, match="'typo'"):
        store.save_stage("r1", StageResult(records={"typo": [_q(1)]}))
    # Alongside valid kinds and rejections: refused before the transaction, nothing lands.
    with pytest.raises(UnknownRecordKind, match="'questoins'"):
        store.save_stage("r1", StageResult(
            rejections=[Rejection("x", "dedup", "exact")],
            records={"questions": [_q(2)], "questoins": [_q(3)]}))
    counts = store.counts()
    assert (counts["questions"], counts["rejections"]) == (0, 0)


def test_every_record_kind_a_stage_emits_has_a_writer():
    # The kinds the stages of tasks/ and quality/ put in `records`, read from the source:
    # each must be declared in warehouse/records.py, or save_stage would refuse it.
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    emitted: set[str] = set()
    for path in [*(root / "tasks").rglob("*.py"), *(root / "quality").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "records" and isinstance(
                    node.value, ast.Dict):
                emitted |= {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
            if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute)
                    and node.value.attr == "records" and isinstance(node.slice, ast.Constant)):
                emitted.add(node.slice.value)
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "setdefault"
                    and isinstance(node.func.value, ast.Attribute)
                    and node.func.value.attr == "records"):
                emitted.add(node.args[0].value)
    assert {"questions", "embeddings", "dedup", "samples", "validation"} <= emitted
    assert emitted <= set(RECORD_WRITERS), emitted - set(RECORD_WRITERS)


def test_questions_load_in_the_order_asked(warehouse_path):
    # Training sets are built from this list: the same ids must give the same order every run.
    store = Store(warehouse_path)
    qs = [_q(i) for i in range(200)]
    store.save_stage("r1", StageResult(records={"questions": qs}))
    asked = [q.question_id for q in reversed(qs)][::3] + ["no-such-id", qs[0].question_id]
    got = store.load_questions(asked)
    assert [q.question_id for q in got] == [i for i in asked if i != "no-such-id"]
    assert got[-1].text == qs[0].text and got[-1].meta == qs[0].meta


def test_failed_write_transaction_leaves_nothing(warehouse_path):
    store = Store(warehouse_path)
    with pytest.raises(RuntimeError), store.write() as con:
        con.execute("INSERT INTO runs (run_id, flow) VALUES ('a', 'refresh')")
        raise RuntimeError("boom")
    assert store.counts()["runs"] == 0


def test_waits_for_a_writer_in_another_process(warehouse_path):
    Store(warehouse_path).counts()  # create + migrate
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import duckdb, time, sys
        con = duckdb.connect({str(warehouse_path)!r},
                             config={{'storage_compatibility_version': 'v1.5.0'}})
        con.execute("INSERT INTO runs (run_id, flow) VALUES ('other', 'x')")
        print('locked', flush=True)
        time.sleep(1.5)
        con.close()
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    t0 = time.monotonic()
    # Fresh Store in this process: the open itself must wait for the other process.
    assert Store(warehouse_path).counts()["runs"] == 1
    assert time.monotonic() - t0 > 0.3
    holder.wait(timeout=10)


def test_busy_error_is_clear(warehouse_path):
    Store(warehouse_path).counts()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import duckdb, time
        con = duckdb.connect({str(warehouse_path)!r},
                             config={{'storage_compatibility_version': 'v1.5.0'}})
        print('locked', flush=True)
        time.sleep(5)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(WarehouseBusy, match="locked by another process"), \
                connect(warehouse_path, timeout_s=0.5):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_duckdb_cli_reads_the_file(warehouse_path, tmp_path):
    store = Store(warehouse_path)
    store.save_stage("r", StageResult(records={"questions": [_q(1)]}))
    cli = __import__("shutil").which("duckdb", path=str(__import__("pathlib").Path(
        sys.executable).parent))
    assert cli, "duckdb CLI (PyPI duckdb-cli) is installed with the dev extras"
    out = subprocess.run([cli, "-csv", "-noheader", str(warehouse_path), "-c",
                          "SELECT count(*) FROM questions"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
    assert duckdb.__version__ != ""


def test_evaluations_keep_the_abstention_scores(warehouse_path):
    from tasks.experiments.evaluate import EvalResult

    result = EvalResult(eval_set="procedural-heldout", n=10, accuracy=0.5, exec_error_rate=0.1,
                        no_program_rate=0.0, correct=5, seconds=1.0, generate_seconds=0.8,
                        abstention_score=0.3, abstained=2, unanswerable=3,
                        abstention_precision=1.0, abstention_recall=2 / 3)
    store = Store(warehouse_path)
    eval_id = store.experiments.save_evaluation(result, model_ref="m", params={"k": 1})
    _, rows = store.query("SELECT accuracy, abstention_score, abstained, unanswerable, "
                          "abstention_precision, round(abstention_recall, 4) FROM evaluations "
                          "WHERE eval_id = ?", [eval_id])
    assert rows == [(0.5, 0.3, 2, 3, 1.0, 0.6667)]
