"""Same answers: a refresh by the code before a change and by this code give the same tables.

    .venv/bin/python bench/identity.py --base /tmp/base --n 100000
    .venv/bin/python bench/identity.py --n 1000000 --shards 1 --shards 16 --dask 3
    .venv/bin/python bench/identity.py --n 1000000 --reference W --shards 1 --shards 16 --dask 3

Each side runs `refresh` (procedural source) in a process of its own, with its code first on
PYTHONPATH, into a fresh warehouse; the tables are then compared by content digest
(warehouse/digest.py: questions, dedup, rejections, samples, snapshot items, snapshots,
embeddings, validations; run ids and timestamps left out). `--base`: a checkout of the code
before the change (e.g. `git archive 4da45ea | tar -x -C /tmp/base`). `--shards S` (repeat)
and `--dask W` add runs of this code with S shards / on a LocalCluster of W workers.
`--reference W`: a warehouse that this code already refreshed with the same --n and --seed
(e.g. by `bench/refresh.py --warehouse W`) stands in for the run of this code with default
settings, so a 1M comparison costs one refresh less.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _env  # noqa: E402, F401 - offline settings, the project on sys.path

from bench._report import markdown_table, report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DRIVER = """
import json, sys, time
from flows.refresh import RefreshConfig, refresh
cfg = json.loads(sys.argv[1])
t0 = time.perf_counter()
out = refresh(RefreshConfig(**cfg))
print("RESULT " + json.dumps({"seconds": time.perf_counter() - t0, "status": out.status,
                              "snapshot": out.snapshot_id}))
"""


def _run(code: Path, cfg: dict, log: Path) -> dict:
    env = {**__import__("os").environ, "PYTHONPATH": str(code)}
    with open(log, "w") as err:
        out = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(cfg)], cwd=code,
                             env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    if out.returncode:
        raise SystemExit(f"{code}: refresh failed, see {log}")
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--base", help="checkout of the code before the change")
    ap.add_argument("--base-config", default="{}", help="JSON of extra refresh settings for "
                    "the base side only, e.g. '{\"exec_timeout_s\": 30}': the code before "
                    "issue 22 ran hundreds of sandbox processes at once at 100k and timed out "
                    "programs that run in milliseconds")
    ap.add_argument("--shards", type=int, action="append", default=[])
    ap.add_argument("--dask", type=int, help="also a run on a LocalCluster of W workers")
    ap.add_argument("--reference", help="a warehouse this code refreshed with the same --n "
                    "and --seed, used instead of running this code with default settings")
    ap.add_argument("--keep", help="keep the warehouses in this folder")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    from warehouse.digest import table_digests

    folder = Path(args.keep or tempfile.mkdtemp(prefix="identity-"))
    folder.mkdir(parents=True, exist_ok=True)
    base_cfg = {"n": args.n, "seed": args.seed}
    sides: list[tuple[str, Path, dict]] = []
    if args.base:
        sides.append(("before (base)", Path(args.base), json.loads(args.base_config)))
    if not args.reference:
        sides.append(("this code", ROOT, {}))
    sides += [(f"this code, {s} shards", ROOT, {"shards": s}) for s in args.shards]
    if args.dask:
        sides.append((f"this code, Dask LocalCluster({args.dask})", ROOT,
                      {"task_runner": "dask", "dask_workers": args.dask}))
    digests, rows = [], []
    if args.reference:
        digests.append(table_digests(Path(args.reference)))
        rows.append([f"this code, refreshed before ({args.reference})", "given", "", ""])
    for k, (name, code, extra) in enumerate(sides):
        wh = folder / f"w{k}.duckdb"
        t0 = time.perf_counter()
        res = _run(code, {**base_cfg, **extra, "warehouse": str(wh)}, folder / f"w{k}.log")
        digests.append(table_digests(wh))
        rows.append([name, res["status"], round(res["seconds"], 1),
                     round(time.perf_counter() - t0, 1)])
    tables = list(digests[0])
    same = {t: all(d[t] == digests[0][t] for d in digests) for t in tables}
    table = markdown_table(["run", "status", "flow s", "process s"], rows)
    cmp = markdown_table(["table", "rows", "equal in every run"],
                         [[t, digests[0][t].split(":")[0], "yes" if same[t] else "**NO**"]
                          for t in tables])
    report(f"refresh identity n={args.n}", f"{table}\n\n{cmp}", args)
    if not all(same.values()):
        raise SystemExit("tables differ: " + ", ".join(t for t, ok in same.items() if not ok))


if __name__ == "__main__":
    main()
