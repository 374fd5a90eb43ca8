"""The fast tier against the sandbox on every program of a procedural refresh of size n.

    .venv/bin/python bench/fast_tier.py --n 1000000

Every program the reference teacher writes for the first n procedural questions (seed 7,
the bench's refresh input) goes through `run_fast`; each one it accepts also runs in the
sandbox, and (status, value, error) must be equal, as JSON (so -0.0 != 0.0, 1 != 1.0). Also
reported: the share sent to the sandbox, and both tiers' programs per second.
"""

from __future__ import annotations

import argparse
import json
import time

import _env  # noqa: E402, F401 - offline settings, the project on sys.path

from bench._report import markdown_table, report  # noqa: E402


def _key(r) -> str:  # noqa: ANN001
    return json.dumps([r.status, r.value, r.error], allow_nan=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    from tasks.execute.fast import run_fast
    from tasks.execute.sandbox import execute_programs, shared_pool
    from tasks.sources import question_batches
    from tasks.teachers.reference import reference_samples

    pool = shared_pool(2.0, 512)
    total = accepted = differ = 0
    fast_s = sandbox_s = 0.0
    first_diff = ""
    for batch in question_batches("procedural", n=args.n, seed=args.seed, batch_size=20_000):
        samples, _ = reference_samples(batch)
        programs = [s.program for s in samples if s.program]
        total += len(programs)
        t0 = time.perf_counter()
        fast = [(p, r) for p in programs if (r := run_fast(p)) is not None]
        fast_s += time.perf_counter() - t0
        accepted += len(fast)
        t0 = time.perf_counter()
        slow = execute_programs([p for p, _ in fast], pool=pool)
        sandbox_s += time.perf_counter() - t0
        for (program, a), b in zip(fast, slow, strict=True):
            if _key(a) != _key(b):
                differ += 1
                first_diff = first_diff or f"{program!r}: fast {_key(a)} sandbox {_key(b)}"
    rows = [["programs", total], ["accepted by the fast tier", accepted],
            ["sent to the sandbox", total - accepted],
            ["share sent to the sandbox", f"{100 * (total - accepted) / max(total, 1):.3f}%"],
            ["accepted programs whose sandbox result differs", differ],
            ["fast tier programs/s", round(accepted / max(fast_s, 1e-9))],
            ["sandbox programs/s (same programs)", round(accepted / max(sandbox_s, 1e-9))]]
    body = markdown_table(["", "value"], rows)
    if first_diff:
        body += f"\n\nFirst difference: {first_diff}"
    report(f"fast tier n={args.n}", body, args)
    if differ:
        raise SystemExit(f"{differ} programs differ")


if __name__ == "__main__":
    main()
