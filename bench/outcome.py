"""Does the data teach? A real pretrained student (SmolLM2-135M-Instruct, LoRA, CPU) trained
on Distillery's procedural data: a learning curve, what curation buys, what selection buys.

    .venv/bin/python bench/outcome.py            # about an hour or more on 2 CPU cores

On fresh warehouses under bench/out/outcome/, with the same training settings for every
rung (the real flows: refresh, ladder, finetune, evaluate; everything lands in the
warehouse's experiment tables too):
- learning curve: the base model (0 examples) and random subsets of --sizes, accuracy,
  execution-error and no-program rates on procedural-heldout (held-out phrasings);
- curation ablation at the middle size: verified (the curve's rung) vs unverified (the noisy
  teacher's programs for the same questions, --noise of them wrong, not checked) vs verified
  without semantic dedup (a second warehouse refreshed with the threshold at 1.0);
- selection at the middle size: random vs diversity vs difficulty;
- GSM8K test (first --gsm8k-n) for the base and the top rung.
Writes the `outcome` section of BENCHMARKS.md and the curve beside it (outcome_curve.png).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import _env  # noqa: E402, F401 - offline settings, the project on sys.path
from _env import ROOT  # noqa: E402

from bench._report import BENCHMARKS, command, markdown_table, write_section  # noqa: E402

GSM8K = ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl"


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _train_fields(args: argparse.Namespace) -> dict:
    return dict(base_model="smollm2-135m", lora=True, lora_r=args.lora_r,
                lora_alpha=2 * args.lora_r, trainable_layers=args.layers, epochs=args.epochs,
                learning_rate=args.lr, batch_size=args.batch, grad_accum=args.grad_accum,
                threads=args.threads,
                eval_n=args.eval_n, max_new_tokens=args.max_new_tokens, eval_batch_size=64)


def _ev_row(curve: str, examples: int, ev: dict, train_s: float) -> dict:
    return {"curve": curve, "examples": examples, "accuracy": round(ev["accuracy"], 4),
            "exec_error_rate": round(ev["exec_error_rate"], 4),
            "no_program_rate": round(ev["no_program_rate"], 4), "train_seconds": train_s,
            "questions_per_s": ev.get("questions_per_s"), "run_id": ev.get("run_id", "")}


class Bench:
    """The stages in order of importance; after each one the section is rewritten, so a run
    cut short by --deadline still reports everything it finished."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        # The two parts may run side by side (one core each), each on its own warehouse.
        self.out = ROOT / "bench" / "out" / ("outcome-arms" if args.part == "arms" else "outcome")
        self.verified = self.out / "verified.duckdb"
        self.sizes = [int(s) for s in args.sizes.split(",")]
        self.mid = self.sizes[1] if len(self.sizes) > 1 else self.sizes[0]
        self.rows: list[dict] = []  # curve rows (base + random sizes)
        self.arms: list[dict] = []  # ablation and selection rows at the middle size
        self.gsm: dict[str, dict] = {}
        self.times: dict[str, float] = {}
        self.skipped: list[str] = []
        self.t0 = time.perf_counter()
        self.curve_png: Path | None = None

    def _time_left(self) -> bool:
        return time.time() < self.args.deadline_epoch

    def stage(self, name: str, fn: object) -> None:
        if not self._time_left():
            self.skipped.append(name)
            _log(f"skipped (deadline): {name}")
            return
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        self.times[name] = time.perf_counter() - t
        _log(f"done {name} in {self.times[name] / 60:.1f} min")
        self.save()
        self.write()

    def save(self) -> None:
        """This part's rows, for the other part's report (the arms compare with the curve's
        random rung at the middle size)."""
        (self.out / "results.json").write_text(json.dumps(
            {"rows": self.rows, "arms": self.arms, "gsm": self.gsm, "times": self.times}))

    def other(self) -> dict:
        other = ROOT / "bench" / "out" / ("outcome" if self.args.part == "arms"
                                          else "outcome-arms") / "results.json"
        return json.loads(other.read_text()) if other.exists() else {}

    def refresh(self) -> None:
        from flows.refresh import RefreshConfig, refresh

        shutil.rmtree(self.out, ignore_errors=True)
        self.out.mkdir(parents=True)
        refresh(RefreshConfig(source="procedural", n=self.args.n, seed=7,
                              warehouse=str(self.verified)))

    def ladder(self, sizes: list[int], eval_base: bool) -> None:
        from flows.experiments import LadderConfig, ladder_flow

        out = ladder_flow(LadderConfig(
            sizes=sizes, strategies=["random"], eval_base=eval_base,
            warehouse=str(self.verified), output_root=str(self.out / "models"),
            **_train_fields(self.args)))
        points = [p.model_dump(exclude={"run_ids"}) for p in out.points]
        self.rows = sorted([*self.rows, *points], key=lambda r: r["examples"])
        top = max(out.models, key=lambda m: m.size)
        self.top = (top.size, top.output_dir)
        self._plot()

    def finetune(self, curve: str, warehouse: Path, **fields: object) -> None:
        from flows.experiments import FinetuneConfig, finetune_flow

        [out] = finetune_flow(FinetuneConfig(subset_size=self.mid, warehouse=str(warehouse),
                                             output_root=str(self.out / "models"),
                                             **_train_fields(self.args), **fields)).models
        self.arms.append(_ev_row(curve, self.mid, {**out.eval.as_dict(), "run_id": out.run_id},
                                 out.train.train_seconds))

    def nodedup(self) -> None:
        from flows.refresh import RefreshConfig, refresh

        wh = self.out / "nodedup.duckdb"
        refresh(RefreshConfig(source="procedural", n=self.args.n, seed=7,
                              semantic_threshold=1.0, warehouse=str(wh)))
        self.finetune("verified, no semantic dedup", wh)

    def gsm8k(self) -> None:
        from flows.experiments import EvaluateConfig, evaluate_flow

        for name, ref in (("base", "smollm2-135m"), (f"random-{self.top[0]}", self.top[1])):
            self.gsm[name] = evaluate_flow(EvaluateConfig(
                model=ref, eval_set=f"gsm8k:{GSM8K}", eval_n=self.args.gsm8k_n,
                max_new_tokens=self.args.max_new_tokens, eval_batch_size=64,
                threads=self.args.threads, warehouse=str(self.verified))).result.as_dict()

    def _plot(self) -> None:
        from tasks.experiments.ladder import plot_learning_curve

        self.curve_png = plot_learning_curve(
            [*self.rows, *self.arms], self.out / "curve.png",
            title=f"smollm2-135m LoRA, {self.args.epochs:g} epochs per size",
            ylabel="accuracy on procedural-heldout")

    def write(self) -> None:
        if self.args.part == "arms":
            # The curve's random rung at the middle size is this part's reference row.
            self.rows = [r for r in self.other().get("rows", []) if r["examples"] == self.mid]
        elif self.args.part == "curve":
            self.arms = self.other().get("arms", [])
        self._plot()
        text = section(self)
        print(text, flush=True)
        if not self.args.no_write:
            name = "outcome arms" if self.args.part == "arms" else "outcome"
            if self.args.part != "arms":
                shutil.copyfile(self.curve_png, BENCHMARKS.parent / "outcome_curve.png")
            write_section(name, command(), text)


def _row(r: dict) -> list[object]:
    return [r["curve"], r["examples"], r["accuracy"], r["exec_error_rate"],
            r["no_program_rate"], r["train_seconds"],
            "" if r.get("questions_per_s") is None else r["questions_per_s"]]


def section(b: Bench) -> str:
    args = b.args
    head = ["curve", "examples", "accuracy", "exec errors", "no program", "train s",
            "eval questions/s"]
    lines = [
        f"SmolLM2-135M-Instruct (`smollm2-135m`), LoRA r={args.lora_r} alpha={2 * args.lora_r}"
        f" on {f'the top {args.layers}' if args.layers else 'all'} layers (attention + MLP "
        "projections), "
        f"{args.epochs:g} epochs, learning rate {args.lr:g}, batch {args.batch} x "
        f"{args.grad_accum} accumulated, tables shown as rows, "
        f"{args.threads} torch thread(s); the same settings for every rung. Procedural "
        f"refresh n={args.n} seed 7; evaluation on procedural-heldout n={args.eval_n} "
        f"(held-out phrasings; greedy, programs run in the sandbox). Each row is one "
        "training run and one evaluation (no repeats: differences of a few points are "
        "within noise at this n).", "",
        "![learning curve](outcome_curve.png)", ""]
    if b.rows and args.part != "arms":
        base = b.rows[0]
        top = max(b.rows, key=lambda r: r["examples"])
        lines += ["**Learning curve** (random subsets):", "",
                  markdown_table(head, [_row(r) for r in b.rows]), "",
                  f"Largest rung vs base: {100 * (top['accuracy'] - base['accuracy']):+.1f} "
                  "points.", ""]
    mid = [r for r in b.rows if r["examples"] == b.mid]
    if b.arms:
        verified = [{**r, "curve": "verified (random)"} for r in mid]
        lines += [f"**Curation and selection at {b.mid} examples** (unverified: the noisy "
                  f"teacher's programs for the same questions, {args.noise:.0%} wrong, not "
                  "executed or checked; no semantic dedup: a second warehouse refreshed with "
                  "the semantic threshold at 1.0):", "",
                  markdown_table(head, [_row(r) for r in [*verified, *b.arms]]), ""]
    if b.gsm:
        lines += [f"**GSM8K test** (first {args.gsm8k_n}):", "",
                  markdown_table(["model", "accuracy", "exec errors", "no program",
                                  "questions/s"],
                                 [[k, round(v["accuracy"], 4), round(v["exec_error_rate"], 4),
                                   round(v["no_program_rate"], 4), v["questions_per_s"]]
                                  for k, v in b.gsm.items()]), ""]
    lines.append("Wall time: " + ", ".join(f"{k} {v / 60:.1f} min"
                                            for k, v in b.times.items())
                 + f"; whole bench so far {(time.perf_counter() - b.t0) / 60:.1f} min.")
    if b.skipped:
        lines.append(f"Not run (past the --deadline): {', '.join(b.skipped)}.")
    return "\n".join(lines)


def levers(args: argparse.Namespace) -> str:
    """Training throughput of smollm2-135m LoRA with and without each CPU lever, on the same
    16 procedural examples (4 steps of 4), and one generation step with 1 and 2 threads.
    Tokens per CPU second of this process is the figure that other jobs on the machine
    disturb least; wall tokens/s beside it."""
    import torch
    from datasets import Dataset

    from tasks.experiments.finetune import make_trainer, train
    from tasks.experiments.params import SFTParams
    from tasks.experiments.student import example_messages, load_student
    from tasks.sources import load_questions

    qs = load_questions("procedural", n=16, seed=11)
    data = Dataset.from_list([{"messages": example_messages(q.text, q.context, q.gold_program)}
                              for q in qs])
    # Each lever on its own against the recipe (all 30 layers, 2 threads, length-grouped
    # batches, TRL's fused LM head on the labelled positions only). "every position" puts
    # back TRL's own CPU choice for the fused head (tasks/experiments/finetune.py).
    arms = [("recipe, but the LM head scores every position (TRL's CPU path)",
             dict(threads=2), True),
            ("recipe: LM head on labelled positions only", dict(threads=2), False),
            ("recipe, random batches", dict(threads=2, group_by_length=False), False),
            ("recipe, 1 thread", dict(threads=1), False),
            ("recipe, top 8 layers only (learns less: table format)",
             dict(threads=2, trainable_layers=8), False)]
    rows = []
    import trl.trainer.utils as trl_utils

    for name, kw, every_position in arms:
        params = SFTParams(base_model="smollm2-135m", lora=True, max_steps=4, batch_size=4,
                             logging_steps=1, **kw)
        out = ROOT / "bench" / "out" / "levers"
        trainer = make_trainer(data, out, params)
        compact = trl_utils._use_triton
        if every_position:
            trl_utils._use_triton = compact.__wrapped__  # TRL's own rule, read at each step
        try:
            c0 = time.process_time()
            res = train(trainer, out)
            cpu = time.process_time() - c0
        finally:
            trl_utils._use_triton = compact
        rows.append([name, res.train_tokens, round(res.tokens_per_s, 1),
                     round(res.train_tokens / cpu, 1), res.n_trainable])
        _log(f"lever {name}: {rows[-1]}")
    # One decoding step with 450 prompt tokens in the cache, 2 threads: transformers'
    # DynamicCache (grows by concatenation) vs ours (written in place), at two batch sizes.
    from transformers import DynamicCache

    from tasks.experiments.generate import _growing_cache

    model, _ = load_student("smollm2-135m")
    model.eval()
    torch.set_num_threads(2)
    gen = []
    for batch in (16, 64):
        for cache_name, make in (("DynamicCache", DynamicCache), ("ours", _growing_cache)):
            cache, steps = make(), 20
            with torch.inference_mode():
                model(input_ids=torch.randint(100, 1000, (batch, 450)), use_cache=True,
                      cache=cache, logits_to_keep=1)
                t = time.perf_counter()
                for i in range(steps):
                    model(input_ids=torch.randint(100, 1000, (batch, 1)), use_cache=True,
                          position_ids=torch.full((batch, 1), 450 + i), cache=cache,
                          logits_to_keep=1)
            step = (time.perf_counter() - t) / steps
            gen.append([batch, cache_name, round(step * 1000, 1), round(batch / step, 1)])
    return "\n".join([
        "Training throughput, smollm2-135m LoRA, 16 procedural examples (4 steps of 4, "
        f"about {rows[0][1] // len(qs)} tokens each); each row changes one thing from the "
        "recipe (all 30 layers, "
        "2 threads, length-grouped batches, LM head on the labelled positions only):", "",
        markdown_table(["setting", "tokens", "tokens/s (wall)", "tokens per CPU second",
                        "trainable parameters"], rows), "",
        "One decoding step (450 prompt tokens in the KV cache, 2 threads, 20 steps):", "",
        markdown_table(["batch", "KV cache", "ms per step", "tokens/s"], gen)])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--levers", action="store_true", help="only the CPU-lever throughput "
                    "comparison (section 'outcome levers')")
    ap.add_argument("--sizes", default="50,150,450", help="curve sizes; the second is where "
                    "the ablation and selection arms train")
    ap.add_argument("--selection", default="diversity,difficulty",
                    help="strategies compared with random at the middle size")
    ap.add_argument("--noise", type=float, default=0.3, help="unverified arm: share wrong")
    ap.add_argument("--n", type=int, default=700, help="procedural items refreshed")
    ap.add_argument("--eval-n", type=int, default=100)
    ap.add_argument("--gsm8k-n", type=int, default=100)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lora-r", type=int, default=16)
    # All layers: on the top 8 only, 450 examples reached 0.030; on all 30, 200 reached 0.230
    # with markdown tables and 0.520 with row tables (BENCHMARKS.md, "table format").
    ap.add_argument("--layers", type=int, default=0, help="LoRA on the top N layers; 0: all")
    # Batch 4 x 2: the same step as batch 8 at half the activation memory (batch 8 on all
    # layers peaked near 16 GB; two such runs side by side do not fit in 24 GB).
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--grad-accum", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-new-tokens", type=int, default=150)
    ap.add_argument("--part", choices=("all", "curve", "arms"), default="all",
                    help="curve: refresh, base, the sizes and GSM8K; arms: the curation and "
                    "selection arms at the middle size (own warehouse); run the two side by "
                    "side on a 2-core machine, one torch thread each")
    ap.add_argument("--deadline", default="", help="HH:MM (UTC): start no stage after it")
    ap.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = ap.parse_args()
    args.deadline_epoch = float("inf")
    if args.deadline:
        import datetime as dt

        now = dt.datetime.now(dt.UTC)
        hh, mm = (int(x) for x in args.deadline.split(":"))
        at = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
        # A deadline earlier in the day than now means tomorrow (a run started before midnight).
        args.deadline_epoch = (at if at > now else at + dt.timedelta(days=1)).timestamp()
    if args.levers:
        text = levers(args)
        print(text, flush=True)
        if not args.no_write:
            write_section("outcome levers", command(), text)
        return
    b = Bench(args)
    sizes = b.sizes
    curve, arms = args.part in ("all", "curve"), args.part in ("all", "arms")
    b.stage("refresh", b.refresh)
    # One rung per stage, so that a run cut short still reports every rung it finished.
    if curve:
        b.stage(f"curve {sizes[0]}", lambda: b.ladder(sizes[:1], True))
        if len(sizes) > 1:
            b.stage(f"curve {sizes[1]}", lambda: b.ladder(sizes[1:2], False))
    if arms:
        b.stage(f"unverified {b.mid}", lambda: b.finetune(
            f"unverified ({args.noise:.0%} wrong)", b.verified, unverified_rate=args.noise))
        b.stage(f"no semantic dedup {b.mid}", b.nodedup)
        for strategy in [s for s in args.selection.split(",") if s]:
            b.stage(f"{strategy} {b.mid}", lambda s=strategy: b.finetune(s, b.verified,
                                                                        strategy=s))
    if curve:
        for size in sizes[2:]:
            b.stage(f"curve {size}", lambda size=size: b.ladder([size], False))
        if args.gsm8k_n:
            b.stage("gsm8k", b.gsm8k)
    b.write()


if __name__ == "__main__":
    main()
