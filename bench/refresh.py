"""Benchmark of the refresh flow against its two raw costs, measured in the same run.

    .venv/bin/python bench/refresh.py --n 10000

Raw costs: a plain `SentenceTransformer.encode` of the same question texts, and plain
in-process `exec` of the same gold programs (no isolation at all). Goal: the whole flow
takes at most 2x their sum. The embedding model is loaded before timing both sides.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import _env  # noqa: E402, F401 - offline settings, the project on sys.path

from bench._report import markdown_table, report  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = ap.parse_args()

    from flows.refresh import RefreshConfig, refresh
    from tasks.dedup import exact_dedup
    from tasks.embed import DEFAULT_MODEL, load_model
    from tasks.sources import load_questions
    from warehouse import Store

    t0 = time.perf_counter()
    model = load_model(DEFAULT_MODEL)
    load_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        # Warm-up: start Prefect's ephemeral API and import everything, on another file.
        refresh(RefreshConfig(n=20, seed=999_999, warehouse=f"{tmp}/warm.duckdb"))
        t0 = time.perf_counter()
        summary = refresh(RefreshConfig(n=args.n, seed=args.seed, warehouse=f"{tmp}/w.duckdb"))
        total_s = time.perf_counter() - t0
        # The programs the flow executed: those of the questions that reached the teacher.
        _, rows = Store(f"{tmp}/w.duckdb").query("SELECT program FROM samples")
        programs = [r[0] for r in rows]

    # Raw baselines over exactly what the flow had to do: embed the distinct new texts,
    # run the same programs.
    questions, _ = exact_dedup(load_questions("procedural", n=args.n, seed=args.seed))
    texts = list(dict.fromkeys(q.text for q in questions))
    t0 = time.perf_counter()
    model.encode(texts, batch_size=128, normalize_embeddings=True, convert_to_numpy=True)
    encode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for src in programs:
        # The unsafe baseline the issue asks for; only the procedural generator's own
        # programs (source fixed above) ever reach this line.
        exec(src, {})  # noqa: S102
    exec_s = time.perf_counter() - t0

    raw = encode_s + exec_s
    ratio = total_s / raw
    stages = summary.stage_seconds
    rows = [[k, float(v)] for k, v in stages.items()]
    rows += [["**flow total (wall)**", total_s],
             [f"raw: SentenceTransformer.encode of {len(texts)} texts", encode_s],
             [f"raw: in-process exec of {len(programs)} programs", exec_s],
             ["raw sum", raw],
             ["**ratio total / raw sum** (goal <= 2.0)", ratio],
             ["model load (excluded from both)", load_s]]
    table = markdown_table(["stage", "seconds"], rows)
    c = summary.counts
    body = (f"{table}\n\nCounts: input={c['input']}, new={c['new']}, kept={c['kept']}, "
            f"semantic_duplicate={c['semantic_duplicate']}, "
            f"exact_duplicate={c['exact_duplicate']}. One row per stage of the runner "
            "(flows/pipeline.py); `embed` is the encode of the new texts.")
    report("refresh", body, args)


if __name__ == "__main__":
    main()
