"""Proof on data nobody here wrote: a real student (SmolLM2-135M-Instruct, LoRA on all
layers, CPU) trained on curated procedural data, on TAT-QA dev, or on a 50/50 mix, scored on
TAT-QA test and on procedural-heldout, every arm repeated with its own seeds, every number a
mean with a 95% interval and every comparison a paired difference with its interval.

    .venv/bin/python bench/outcome_real.py --workers 2 --deadline 09:00   # many hours

Jobs run in priority order on `--workers` processes (one torch thread each), so a run cut by
--deadline has its most important parts. Every model and evaluation lands in the bench's
warehouse as the job ends (bench/out/outcome_real/w.duckdb: finetune_runs with curve, group
and seed in params, evaluations with their per-question outcomes in evaluation_items), and the
report is rebuilt from the warehouse alone after each job: SQL can rebuild every table.

Sections (BENCHMARKS.md): `outcome real` (tables, intervals, paired differences, wall time)
with `outcome_real_tatqa.png` and `outcome_real_procedural.png`.

- A. curve: the base model, then `--sizes` (150, 450) of procedural only, TAT-QA dev only and
  a 50/50 mix (nested subsets of one snapshot, `--mix`), `--repeats` seeds each; evaluated on
  `--tatqa-n` TAT-QA test arithmetic questions (drawn once by seed) and `--proc-n`
  procedural-heldout questions.
- B. verification at the first size: the curve's procedural rung (gold-checked programs) vs
  the same questions with a noisy teacher's programs, unchecked: repeating mistakes (30% of
  question types always wrong the same way) and independent ones (30% of questions).
- C. SFT vs SFT + DPO (LoRA; outcome pairs from a noisy teacher's samples) at the first size.
- D. abstention rows in a `--sizes[-1]` mix: recall and precision of "I don't know" on
  unanswerable held-out questions, accuracy on the answerable ones, vs the curve's rung.
- E. GSM8K test (`--gsm8k-n`) for the base and a rung trained on curated GSM8K train programs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _env  # noqa: F401 - offline settings, the project on sys.path
from _env import ROOT

from bench._report import write_section

DATA = ROOT.parent / "shared" / "data"
TATQA_DEV = DATA / "tatqa" / "tatqa_dataset_dev.json"
TATQA_TEST = DATA / "tatqa" / "tatqa_dataset_test_gold.json"
GSM8K_TRAIN, GSM8K_TEST = DATA / "gsm8k" / "train.jsonl", DATA / "gsm8k" / "test.jsonl"
OUT = ROOT / "bench" / "out" / "outcome_real"
EXPERIMENT = "outcome-real"
ARMS = {"procedural": "procedural=1", "tatqa": "tatqa=1", "mix": "procedural=0.5,tatqa=0.5"}


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} w{os.environ.get('BENCH_WORKER', '-')}] {msg}",
          flush=True)


# --------------------------------------------------------------------------- settings
def _args(argv: list[str] | None = None) -> argparse.Namespace:
    global OUT
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--deadline", default="", help="HH:MM (local): no job starts after it "
                    "(a time earlier than now means tomorrow)")
    ap.add_argument("--sizes", default="150,450")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tatqa-n", type=int, default=300)
    ap.add_argument("--proc-n", type=int, default=200)
    ap.add_argument("--gsm8k-n", type=int, default=200)
    ap.add_argument("--procedural-n", type=int, default=1400, help="procedural refresh size")
    ap.add_argument("--noise", type=float, default=0.3)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--grad-accum", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=150)
    ap.add_argument("--max-steps", type=int, default=0, help="> 0: a fixed step budget "
                    "instead of --epochs (smoke runs)")
    ap.add_argument("--out", default=str(OUT), help="folder of the warehouses and models")
    ap.add_argument("--only", default="", help="comma-separated job name prefixes")
    ap.add_argument("--report", action="store_true", help="only rebuild the report")
    ap.add_argument("--no-write", action="store_true", help="print the report; leave "
                    "BENCHMARKS.md and the plots at the repository root alone")
    ap.add_argument("--fresh", action="store_true", help="start over (delete the state)")
    ap.add_argument("--retry-failed", action="store_true", help="run failed jobs again")
    ap.add_argument("--worker", type=int, default=-1, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.size_list = [int(s) for s in args.sizes.split(",")]
    args.deadline_epoch = _deadline(args.deadline)
    OUT = Path(args.out)
    return args


def _deadline(text: str) -> float:
    if not text:
        return float("inf")
    now = dt.datetime.now()
    hh, mm = (int(x) for x in text.split(":"))
    at = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
    if at <= now:
        at += dt.timedelta(days=1)
    return at.timestamp()


def _training(args: argparse.Namespace, **kw: Any) -> Any:
    from tasks.experiments.params import SFTParams

    # One recipe for every SFT run: tables as rows (the student prompt), LoRA r=16 on all
    # layers, 2 epochs, lr 1e-3, batch 2 x 4 accumulated (at 4 x 2 a worker training on
    # TAT-QA held ~9 GB, and two workers beside the tests were killed for memory), one thread
    # per worker, and room for TAT-QA's long contexts (the model's 2,048 tokens; longer
    # examples are left out and counted).
    return SFTParams(base_model="smollm2-135m", lora=True, lora_r=16, lora_alpha=32,
                     epochs=args.epochs, learning_rate=args.lr, batch_size=args.batch,
                     grad_accum=args.grad_accum, max_steps=args.max_steps, max_length=2048,
                     threads=1, **kw)


def _spec(args: argparse.Namespace, which: str) -> Any:
    from flows.rungs import EvalSpec

    sets = {"tatqa": (f"tatqa:{TATQA_TEST}", args.tatqa_n),
            "procedural": ("procedural-heldout", args.proc_n),
            "unanswerable": ("procedural:heldout:unanswerable=0.2", args.proc_n),
            "gsm8k": (f"gsm8k:{GSM8K_TEST}", args.gsm8k_n)}
    eval_set, n = sets[which]
    # 32 rows at once: two workers side by side hold TAT-QA's long prompts in memory.
    return EvalSpec(eval_set=eval_set, eval_n=n, eval_seed=0, eval_batch_size=32,
                    max_new_tokens=args.max_new_tokens)


# --------------------------------------------------------------------------- jobs
@dataclass
class Job:
    name: str
    run: Callable[[Bench], None]
    deps: tuple[str, ...] = ()


@dataclass
class Bench:
    args: argparse.Namespace
    jobs: list[Job] = field(default_factory=list)

    @property
    def wh(self) -> Path:
        return OUT / "w.duckdb"

    def store(self, path: Path | None = None) -> Any:
        from warehouse import Store

        return Store(path or self.wh)

    # ---- setup
    def setup(self) -> None:
        from flows.preferences import PreferencesConfig, preferences
        from flows.refresh import RefreshConfig, refresh

        a = self.args
        refresh(RefreshConfig(source=f"tatqa:{TATQA_DEV}", warehouse=str(self.wh)))
        refresh(RefreshConfig(source="procedural", n=a.procedural_n, seed=7,
                              warehouse=str(self.wh)))
        refresh(RefreshConfig(source=f"gsm8k:{GSM8K_TRAIN}", n=1500, warehouse=str(self.wh)))
        # Abstention rows: the same generator and seed with a share made unanswerable.
        refresh(RefreshConfig(source="procedural:train:unanswerable=0.1", n=a.procedural_n,
                              seed=7, warehouse=str(OUT / "abstention.duckdb")))
        # Preference pairs for DPO: a noisy teacher's right and wrong samples of other
        # procedural questions (its right programs are the reference ones, so what it adds
        # to the snapshot is as clean as the rest).
        refresh(RefreshConfig(source="procedural", n=a.procedural_n // 2, seed=11,
                              teacher="noisy", error_rate=a.noise, warehouse=str(self.wh)))
        preferences(PreferencesConfig(warehouse=str(self.wh)))

    # ---- the steps of every job
    def subset(self, mix: str, size: int, wh: Path | None = None) -> str:
        from flows.subsets import SubsetConfig, create_subsets

        made = create_subsets(SubsetConfig(sizes=self.args.size_list if wh is None else [size],
                                           mix=mix, warehouse=str(wh or self.wh)))
        return next(s.subset_id for s in made.subsets if s.size == size)

    def train(self, name: str, curve: str, arm: str, size: int, repeat: int, training: Any,
              *, subset_id: str | None = None, wh: Path | None = None, evals: tuple = (),
              **rung_kw: Any) -> None:
        from flows.rungs import OutputSpec, evaluate_and_record, train_and_record
        from tasks.experiments.plan import Rung

        store = self.store(wh)
        rung = Rung(name=name, curve=curve, arm=arm, size=size, subset_id=subset_id,
                    repeat=repeat, train_seed=repeat, group=f"{curve}@{size}", **rung_kw)
        pairs = None
        if arm == "dpo":
            from flows.experiments import PairData

            pairs = PairData(pair_type="outcome", max_pairs=300)
        model = train_and_record(store, EXPERIMENT, rung, training,
                                 OutputSpec(output_root=str(OUT / "models")), seed=repeat,
                                 pairs=pairs)
        for which in evals:
            evaluate_and_record(store, model.output_dir, _spec(self.args, which), threads=1,
                                run_id=model.run_id)

    def evaluate(self, model: str, which: str, run_id: str | None = None,
                 wh: Path | None = None, **extra: Any) -> None:
        from flows.rungs import evaluate_and_record

        evaluate_and_record(self.store(wh), model, _spec(self.args, which), threads=1,
                            run_id=run_id, extra={"experiment_id": EXPERIMENT, **extra})

    def model_dir(self, name: str) -> str:
        return str((OUT / "models" / EXPERIMENT / name).resolve())

    # ---- the plan, most important first
    def plan(self) -> list[Job]:
        a, first, last = self.args, self.args.size_list[0], self.args.size_list[-1]
        jobs = [Job("setup", lambda b: b.setup())]
        base = "smollm2-135m"
        jobs += [Job(f"base-{w}", lambda b, w=w: b.evaluate(base, w, size=0), ("setup",))
                 for w in ("tatqa", "procedural")]

        def curve(arm: str, size: int, r: int) -> Job:
            name = f"{arm}-n{size}-s{r}"
            return Job(f"A-{name}", lambda b: b.train(
                name, arm, "verified", size, r, _training(a),
                subset_id=b.subset(ARMS[arm], size), evals=("tatqa", "procedural")),
                ("setup",))

        def unverified(noise: str, r: int) -> Job:
            name = f"unverified-{noise}-n{first}-s{r}"
            label = f"unverified, {noise} mistakes"
            return Job(f"B-{name}", lambda b: b.train(
                name, label, "unverified", first, r, _training(a),
                subset_id=b.subset(ARMS["procedural"], first), evals=("procedural",),
                error_rate=a.noise, noise=noise), ("setup",))

        def dpo(r: int) -> Job:
            from tasks.experiments.params import DPOParams

            sft = f"procedural-n{first}-s{r}"
            name = f"dpo-n{first}-s{r}"
            return Job(f"C-{name}", lambda b: b.train(
                name, "SFT + DPO", "dpo", first, r, DPOParams(
                    base_model=b.model_dir(sft), lora=True, lora_r=16, lora_alpha=32,
                    learning_rate=5e-6, epochs=1, max_steps=a.max_steps, batch_size=4,
                    beta=0.1, max_length=768, threads=1), evals=("procedural",)),
                (f"A-{sft}",))

        def abstention(r: int) -> list[Job]:
            name = f"abstention-n{last}-s{r}"
            wh = OUT / "abstention.duckdb"
            return [Job(f"D-{name}", lambda b: b.train(
                name, "with abstention rows", "verified", last, r, _training(a),
                subset_id=b.subset("", last, wh), wh=wh, evals=("unanswerable",)),
                ("setup",)),
                Job(f"D-procedural-n{last}-s{r}-unanswerable", lambda b: b.evaluate(
                    b.model_dir(f"procedural-n{last}-s{r}"), "unanswerable",
                    run_id=f"{EXPERIMENT}-procedural-n{last}-s{r}"),
                    (f"A-procedural-n{last}-s{r}",))]

        for r in range(a.repeats):
            jobs += [curve(arm, first, r) for arm in ARMS]
            jobs += [unverified(noise, r) for noise in ("repeating", "independent")]
            jobs.append(dpo(r))
        for r in range(a.repeats):
            for size in a.size_list[1:]:
                jobs += [curve(arm, size, r) for arm in ARMS]
            jobs += abstention(r)
        gsm = f"gsm8k-n{last}-s0"
        jobs += [Job("E-base-gsm8k", lambda b: b.evaluate(base, "gsm8k", size=0), ("setup",)),
                 Job(f"E-{gsm}", lambda b: b.train(
                     gsm, "gsm8k train", "verified", last, 0, _training(a),
                     subset_id=b.subset("gsm8k=1", last), evals=("gsm8k",)), ("setup",))]
        only = [p for p in a.only.split(",") if p]
        return [j for j in jobs if not only or j.name == "setup" or
                any(j.name.startswith(p) for p in only)]


# --------------------------------------------------------------------------- scheduling
@contextlib.contextmanager
def _state() -> Iterator[dict[str, Any]]:
    """The shared job table (status per job name), under an exclusive lock."""
    path = OUT / "state.json"
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "state.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = json.loads(path.read_text()) if path.exists() else {}
        yield state
        path.write_text(json.dumps(state, indent=1))


def _claim(jobs: list[Job], worker: int) -> Job | None | str:
    """The next job this worker may run, None when none is ready yet, 'done' when none is
    left to start."""
    with _state() as state:
        pending = [j for j in jobs if state.get(j.name, {}).get("status") not in
                   ("running", "done", "failed")]
        for j in pending:
            if all(state.get(d, {}).get("status") == "done" for d in j.deps):
                state[j.name] = {"status": "running", "worker": worker, "start": time.time()}
                return j
        blocked = all(any(state.get(d, {}).get("status") == "failed" for d in j.deps)
                      for j in pending)
        return "done" if not pending or blocked else None


def _finish(job: Job, status: str, error: str = "") -> None:
    with _state() as state:
        state[job.name].update(status=status, end=time.time(), error=error[-2000:])


def work(args: argparse.Namespace) -> None:
    bench = Bench(args)
    jobs = bench.plan()
    while time.time() < args.deadline_epoch:
        job = _claim(jobs, args.worker)
        if job == "done":
            break
        if job is None:
            time.sleep(20)
            continue
        assert isinstance(job, Job)
        _log(f"start {job.name}")
        t0 = time.time()
        try:
            job.run(bench)
        except Exception as exc:  # a failed job is reported; the others go on
            import traceback

            _finish(job, "failed", traceback.format_exc())
            _log(f"FAILED {job.name}: {exc}")
            continue
        _finish(job, "done")
        _log(f"done {job.name} in {(time.time() - t0) / 60:.1f} min")
        with contextlib.suppress(Exception):  # the report never stops the bench
            report(args)


def _spawn(argv: list[str], worker: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, *argv, "--worker", str(worker)])


def _orphaned(worker: int, code: int) -> None:
    """The job a dead worker was running is failed, with the reason."""
    with _state() as state:
        for v in state.values():
            if isinstance(v, dict) and v.get("worker") == worker and v["status"] == "running":
                v.update(status="failed", end=time.time(),
                         error=f"worker died (exit code {code}; -9: killed, e.g. out of memory)")
    _log(f"worker {worker} died (exit code {code}); started again")


def main() -> None:
    args = _args()
    if args.worker >= 0:
        os.environ["BENCH_WORKER"] = str(args.worker)
        work(args)
        return
    if args.report:
        report(args)
        return
    if args.fresh and OUT.exists():
        import shutil

        shutil.rmtree(OUT)
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with _state() as state:
        state.setdefault("_started", t0)
        state.pop("_finished", None)
        # A job left 'running' by a bench that was stopped goes back to the queue.
        for name in [k for k, v in state.items() if not k.startswith("_") and (
                v["status"] == "running" or (args.retry_failed and v["status"] == "failed"))]:
            del state[name]
    argv = [a for a in sys.argv[1:] if a not in ("--fresh", "--retry-failed")]
    procs = {i: _spawn(argv, i) for i in range(args.workers)}
    while procs:
        time.sleep(10)
        for i, p in list(procs.items()):
            if p.poll() is None:
                continue
            del procs[i]
            if p.returncode != 0:  # killed (out of memory, a signal): its job failed
                _orphaned(i, p.returncode)
                procs[i] = _spawn(argv, i)
    with _state() as state:
        state["_finished"] = time.time()
    report(args)
    _log(f"bench finished in {(time.time() - t0) / 3600:.2f} h")


# --------------------------------------------------------------------------- report
def report(args: argparse.Namespace) -> None:
    from bench.outcome_real_report import build

    body, _ = build(args, OUT, EXPERIMENT, plots=OUT if args.no_write else ROOT,
                    planned=len(Bench(args).plan()))
    if args.no_write:
        print(body, flush=True)
    else:
        write_section("outcome real", _command(args), body)


def _command(args: argparse.Namespace) -> str:
    """The bench's command line as a user would rerun it: without a worker's `--worker N`
    and the flags that only act once (report only, start over, retry)."""
    argv: list[str] = []
    skip = False
    for a in sys.argv[1:]:
        if skip or a in ("--report", "--no-write", "--fresh", "--retry-failed") or \
                a.startswith("--worker="):
            skip = False
            continue
        if a == "--worker":
            skip = True
            continue
        argv.append(a)
    return " ".join(["python", "bench/outcome_real.py", *argv])


if __name__ == "__main__":
    main()
