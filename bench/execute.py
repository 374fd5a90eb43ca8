"""Sandbox throughput on trivial programs against a naive subprocess per program, same run.

    .venv/bin/python bench/execute.py --n 5000

Ours: tasks.execute.execute_programs (a small pool of worker processes, one fork per program
with rlimits, audit hook and no network; see its module docstring). Naive: what one would
write first, `python -I -S -c PROGRAM` in a fresh interpreter per program with a timeout,
run with the same number of programs in flight as our workers, reading `ans` back as JSON.
Both run the same programs (`ans = 3*i + 5`) and must return the same values. The naive side
runs a smaller sample (it is slow) and is reported as a rate. Goal: at least 300 programs/s
and 10x naive.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import _env  # noqa: E402, F401 - offline settings, the project on sys.path

from bench._report import markdown_table, report  # noqa: E402


def programs(n: int) -> list[str]:
    return [f"ans = 3 * {i} + 5" for i in range(n)]


def naive_one(program: str, timeout_s: float) -> object:
    code = program + "\nimport json, sys\nsys.stdout.write(json.dumps(ans))"
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                         text=True, timeout=timeout_s)
    return json.loads(out.stdout)


def run_naive(progs: list[str], workers: int, timeout_s: float) -> tuple[float, list[object]]:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        values = list(pool.map(lambda p: naive_one(p, timeout_s), progs))
    return time.perf_counter() - t0, values


def run_ours(progs: list[str], workers: int, timeout_s: float) -> tuple[float, list[object]]:
    from tasks.execute import execute_programs

    t0 = time.perf_counter()
    results = execute_programs(progs, timeout_s=timeout_s, workers=workers)
    seconds = time.perf_counter() - t0
    bad = [r for r in results if r.status != "ok"]
    if bad:
        raise SystemExit(f"{len(bad)} programs did not run: {bad[0]}")
    return seconds, [r.value for r in results]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000, help="programs for the sandbox")
    ap.add_argument("--naive-n", type=int, default=300, help="programs for the naive side")
    ap.add_argument("--workers", type=int, default=2, help="programs in flight, both sides")
    ap.add_argument("--reps", type=int, default=3, help="alternating repetitions")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()

    ours, naive = [], []
    for _ in range(args.reps):  # interleaved, so both sides see the same machine load
        s, values = run_ours(programs(args.n), args.workers, 5.0)
        assert values == [3 * i + 5 for i in range(args.n)]
        ours.append(args.n / s)
        s, values = run_naive(programs(args.naive_n), args.workers, 30.0)
        assert values == [3 * i + 5 for i in range(args.naive_n)]
        naive.append(args.naive_n / s)
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    ratio = med(ours) / med(naive)
    rows = [["execute_programs (sandbox pool, fork per program)", args.n, args.workers,
             round(med(ours)), round(min(ours)), round(max(ours))],
            ["naive: fresh `python -I -S -c` per program", args.naive_n, args.workers,
             round(med(naive)), round(min(naive)), round(max(naive))]]
    table = markdown_table(["side", "programs", "in flight", "programs/s (median)", "min",
                            "max"], rows)
    goal = "met" if med(ours) >= 300 and ratio >= 10 else "NOT met"
    body = (f"{table}\n\nSandbox / naive: **{ratio:.1f}x** (median of {args.reps} interleaved "
            f"repetitions). Goal: at least 300 programs/s and 10x naive: **{goal}**.")
    report("execute", body, args)


if __name__ == "__main__":
    main()
