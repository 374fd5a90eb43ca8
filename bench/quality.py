"""The quality suites over a large batch: every checkpoint of quality/gx/ (row suites, batch
suite, drift suite against a reference snapshot, Data Docs updates) as the refresh runs them.

    .venv/bin/python bench/quality.py --rows 100000

Rows are the procedural generator's questions with their gold programs and answers (what a
reference-teacher refresh validates), 1% of them broken in ways the row suites catch. The
reference is a snapshot of other rows from the same generator. Reported: seconds and rows/s
for the whole call, the first call in a process (GE import and context load included), the
file context's load time alone, and a refresh-sized batch of 100 rows. Goal: 100,000 rows
under 30 s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _env  # noqa: E402, F401 - offline settings, the project on sys.path
import pandas as pd  # noqa: E402

from bench._report import markdown_table, report  # noqa: E402


def candidate_rows(n: int, seed: int) -> pd.DataFrame:
    from tasks.sources import load_questions

    frame = pd.DataFrame([{
        "question_id": q.question_id, "question": q.text, "context": q.context,
        "program": q.gold_program, "answer": q.gold_answer, "source": q.source,
        "kind": q.meta.get("kind"), "difficulty": q.difficulty, "exec_status": "ok"}
        for q in load_questions("procedural", n=int(n * 1.05) + 10, seed=seed)])
    return frame.drop_duplicates("question_id").head(n).reset_index(drop=True)


def break_some(frame: pd.DataFrame, share: float = 0.01) -> pd.DataFrame:
    out = frame.copy()
    step = max(int(1 / share), 1)
    for k, i in enumerate(range(0, len(out), step)):
        column, value = [("program", "ans = (1 +"), ("answer", "inf"),
                         ("question", "short"), ("exec_status", "timeout")][k % 4]
        out.at[i, column] = value
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--reference", type=int, default=20_000)
    ap.add_argument("--history", type=int, default=60, help="earlier runs in the docs folder")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()

    t0 = time.perf_counter()
    batch = break_some(candidate_rows(args.rows, seed=1))
    reference = candidate_rows(args.reference, seed=2)
    gen_s = time.perf_counter() - t0
    small = candidate_rows(100, seed=3)

    with tempfile.TemporaryDirectory() as tmp:
        from quality.validate import validate_candidates

        docs = Path(tmp) / "docs"
        t0 = time.perf_counter()
        validate_candidates(small, reference=reference.head(1000), docs_dir=docs)
        cold_s = time.perf_counter() - t0

        from quality.context import _open

        t0 = time.perf_counter()
        _open.__wrapped__((Path(tmp) / "other" / "docs").resolve())
        load_s = time.perf_counter() - t0

        small_s = []
        for _ in range(3):
            t0 = time.perf_counter()
            validate_candidates(small, reference=reference.head(1000), docs_dir=docs)
            small_s.append(time.perf_counter() - t0)

        # A long-lived warehouse: the docs folder already holds many runs' results.
        for k in range(args.history):
            validate_candidates(small, reference=reference.head(1000), docs_dir=docs,
                                run_id=f"history-{k}")
        t0 = time.perf_counter()
        validate_candidates(small, reference=reference.head(1000), docs_dir=docs)
        late_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        out = validate_candidates(batch, reference=reference, docs_dir=docs, run_id="bench")
        big_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        validate_candidates(batch, docs_dir=docs, run_id="bench-no-reference")
        big_noref_s = time.perf_counter() - t0

    rows = [
        ["file context load (per docs folder, cached)", 1, round(load_s, 3), ""],
        ["first call in a process (GE import + load)", len(small), round(cold_s, 2), ""],
        ["refresh-sized batch, warm (median of 3)", len(small),
         round(sorted(small_s)[1], 2), round(len(small) / sorted(small_s)[1])],
        [f"refresh-sized batch after {args.history} earlier runs", len(small),
         round(late_s, 2), round(len(small) / late_s)],
        [f"large batch + drift vs {len(reference):,}-row reference", len(batch),
         round(big_s, 2), round(len(batch) / big_s)],
        ["large batch, first run (no reference)", len(batch), round(big_noref_s, 2),
         round(len(batch) / big_noref_s)],
    ]
    table = markdown_table(["case", "rows", "seconds", "rows/s"], rows)
    checks = (f"Large batch: {out.statistics['rejected']:,} rows rejected by the row suites "
              f"(1% broken on purpose), batch success {out.success}, "
              f"{len(out.drift)} drift expectations, warnings: {out.warnings or 'none'}.")
    goal = "met" if big_s < 30 else "NOT met"
    body = (f"{table}\n\n{checks}\n\nGoal: {args.rows:,} rows under 30 s: **{goal}** "
            f"({big_s:.1f} s with the drift suite and three Data Docs updates). Generating "
            f"the rows took {gen_s:.0f} s (not counted).")
    report("quality", body, args)


if __name__ == "__main__":
    main()
