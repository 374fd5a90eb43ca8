"""Benchmark of fine-tuning on CPU: (a) the tiny student's learning curve on procedural
data, (b) our finetune's training throughput against a plain transformers/torch loop.

    .venv/bin/python bench/finetune.py

(a) runs the real ladder flow: nested random subsets of one procedural snapshot, the same
fixed step budget for every size, the untrained base as the zero point, greedy decoding on
procedural-heldout, programs executed in the sandbox. Besides accuracy it reports the
partial-credit signals that move first (a program was emitted; it ran without error).

(b) trains the same initial model on exactly the same batches with our `make_trainer`
(TRL SFTTrainer) and with a plain loop. The batches are the ones SFTTrainer's dataloader
drew (recorded at its collator: same examples, order, lengths, completion-only labels); the
plain loop pads them itself the same way (checked tensor for tensor against the collator's
output) and calls `model(..., labels=...)` with the optimizer and schedule Trainer builds
(fused AdamW, linear warmup/decay, clip 1.0). The two sides alternate (ours, plain, ours,
...) because other processes share the two cores; the primary figure is tokens per CPU
second of this process (`time.process_time`, torch threads fixed), with wall tokens/s
beside it, median of the repetitions.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import _env  # noqa: E402, F401 - offline settings, the project on sys.path

from bench._report import markdown_table, write_section  # noqa: E402

IGNORE = -100


# --------------------------------------------------------------------------- (b) throughput
def pad_batch(examples: list[dict[str, list[int]]], pad_id: int) -> dict[str, Any]:
    """Right padding, -100 labels on padding, attention mask: what TRL's collator does."""
    import torch

    width = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for j, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[j, :n] = torch.tensor(e["input_ids"])
        labels[j, :n] = torch.tensor(e["labels"])
        mask[j, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def plain_loop(model: Any, batches: list[list[dict[str, list[int]]]], pad_id: int,
               optimizer_cls: Any, optimizer_kwargs: dict[str, Any], warmup: int,
               max_grad_norm: float) -> dict[str, Any]:
    """The baseline: a hand-written loop over the given batches (one per step)."""
    import torch

    steps = len(batches)
    t0, c0 = time.perf_counter(), time.process_time()
    opt = optimizer_cls(model.parameters(), **optimizer_kwargs)

    def lr_lambda(s: int) -> float:  # transformers' get_linear_schedule_with_warmup
        if s < warmup:
            return s / max(1, warmup)
        return max(0.0, (steps - s) / max(1, steps - warmup))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    model.train()
    tokens, losses = 0, []
    for examples in batches:
        batch = pad_batch(examples, pad_id)
        out = model(**batch)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        tokens += int(batch["attention_mask"].sum())
        losses.append(out.loss.detach().item())
    return {"tokens": tokens, "wall": time.perf_counter() - t0,
            "cpu": time.process_time() - c0, "losses": losses}


class _RecordingCollator:
    """Wraps the trainer's collator; keeps the examples of every batch it collates."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.batches: list[list[dict[str, list[int]]]] = []
        self.first_output: dict[str, Any] | None = None

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        self.batches.append([{"input_ids": list(e["input_ids"]), "labels": list(e["labels"])}
                             for e in examples])
        out = self.inner(examples)
        if self.first_output is None:
            self.first_output = {k: v.clone() for k, v in out.items() if hasattr(v, "clone")}
        return out


def ours_run(rows: list[dict[str, Any]], model: Any, tok: Any, params: Any,
             out_dir: str) -> tuple[dict[str, Any], _RecordingCollator, Any]:
    from datasets import Dataset

    from tasks.experiments.finetune import make_trainer

    trainer = make_trainer(Dataset.from_list(rows), out_dir, params, model=model, tokenizer=tok)
    rec = _RecordingCollator(trainer.data_collator)
    trainer.data_collator = rec
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.train()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    logged = [(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h]
    # accelerate's dataloader fetches one batch ahead (to know which batch is the last):
    # keep the batches that were trained on.
    del rec.batches[trainer.state.global_step:]
    tokens = sum(len(e["input_ids"]) for b in rec.batches for e in b)
    return ({"tokens": tokens, "wall": wall, "cpu": cpu, "logged": logged,
             "window": trainer.args.logging_steps}, rec, trainer)


def throughput(n_examples: int, steps: int, batch: int, reps: int, lr: float) -> dict:
    import torch
    from transformers import Trainer

    from tasks.experiments.params import SFTParams
    from tasks.experiments.student import build_tiny_student, conversation_texts, example_messages
    from tasks.sources import load_questions

    qs = load_questions("procedural", n=n_examples, seed=42)
    rows = [{"messages": example_messages(q.text, q.context, q.gold_program)} for q in qs]
    model0, tok = build_tiny_student(conversation_texts(rows))
    params = SFTParams(max_steps=steps, batch_size=batch, learning_rate=lr, epochs=1.0,
                         group_by_length=False)
    ours, plain, batches = [], [], None
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(reps):
            res, rec, trainer = ours_run(rows, copy.deepcopy(model0), tok, params,
                                         f"{tmp}/trl{rep}")
            if batches is None:
                batches = rec.batches
                mine = pad_batch(batches[0], tok.pad_token_id)
                for k, v in rec.first_output.items():
                    if not torch.equal(mine[k], v):
                        raise AssertionError(f"plain padding differs from TRL's in {k!r}")
                opt_cls, opt_kwargs = Trainer.get_optimizer_cls_and_kwargs(trainer.args)
                warmup = trainer.args.get_warmup_steps(steps)
                max_grad_norm = trainer.args.max_grad_norm
            elif rec.batches != batches:
                raise AssertionError("SFTTrainer drew different batches across repetitions")
            ours.append(res)
            plain.append(plain_loop(copy.deepcopy(model0), batches, tok.pad_token_id,
                                    opt_cls, opt_kwargs, warmup, max_grad_norm))
            # Trainer logs the loss of step 1, then the mean over each logging window:
            # the same figures of the plain loop's per-step losses.
            step, last = res["logged"][-1]
            window = plain[-1]["losses"][max(1, step - res["window"]):step]
            res["first_loss"], res["last_loss"] = res["logged"][0][1], last
            plain[-1]["first_loss"] = plain[-1]["losses"][0]
            plain[-1]["last_loss"] = statistics.fmean(window)
            if plain[-1]["tokens"] != res["tokens"]:
                raise AssertionError("the two sides trained on different token counts")
            print(f"rep {rep}: ours {res['tokens'] / res['cpu']:.0f} tok/cpu-s "
                  f"({res['tokens'] / res['wall']:.0f} wall), plain "
                  f"{plain[-1]['tokens'] / plain[-1]['cpu']:.0f} tok/cpu-s "
                  f"({plain[-1]['tokens'] / plain[-1]['wall']:.0f} wall)", flush=True)
    labelled = sum(x != IGNORE for b in batches for e in b for x in e["labels"])
    return {"ours": ours, "plain": plain, "n_params": sum(p.numel() for p in model0.parameters()),
            "tokens": ours[0]["tokens"], "labelled": labelled,
            "optimizer": f"{opt_cls.__module__}.{opt_cls.__name__}({opt_kwargs})"}


def throughput_section(tp: dict, args: argparse.Namespace) -> str:
    import torch

    rows = []
    for side, name in (("ours", "ours (make_trainer / SFTTrainer)"), ("plain", "plain loop")):
        for i, r in enumerate(tp[side]):
            rows.append([f"{name}, rep {i}", r["tokens"], round(r["cpu"], 2), round(r["wall"], 2),
                         round(r["tokens"] / r["cpu"]), round(r["tokens"] / r["wall"]),
                         round(r["first_loss"], 4), round(r["last_loss"], 4)])
    table = markdown_table(["run", "tokens", "CPU s", "wall s", "tokens/CPU-s", "tokens/s wall",
                            "loss step 1", "loss last window"], rows)

    def med(side: str, key: str) -> float:
        return statistics.median(r["tokens"] / r[key] for r in tp[side])

    cpu_ratio = med("plain", "cpu") / med("ours", "cpu")
    wall_ratio = med("plain", "wall") / med("ours", "wall")
    verdict = "meets" if cpu_ratio <= 1.1 else "misses"
    return (f"### (b) Throughput: our finetune vs a plain loop\n\n"
            f"Tiny student ({tp['n_params'] / 1e6:.2f}M parameters, 4 layers x 256), "
            f"{args.tp_steps} steps of batch {args.batch} from {args.tp_examples} procedural "
            f"examples, {args.tp_reps} interleaved repetitions per side, "
            f"{torch.get_num_threads()} torch threads. Both sides train on the identical "
            f"batches each repetition ({tp['tokens']} tokens, {tp['labelled']} of them "
            f"labelled), with {tp['optimizer']}, linear schedule, clip 1.0. Times cover "
            f"`trainer.train()` (ours, including its setup) and the whole loop (plain); "
            f"tokenization is outside both. Losses: step 1, and the mean over the last "
            f"logging window (what Trainer logs), from each side's own per-step losses."
            f"\n\n{table}\n\n"
            f"Medians: ours {med('ours', 'cpu'):.0f} tokens/CPU-s "
            f"({med('ours', 'wall'):.0f} tokens/s wall), plain {med('plain', 'cpu'):.0f} "
            f"tokens/CPU-s ({med('plain', 'wall'):.0f} wall). **plain / ours = "
            f"{cpu_ratio:.2f}x per CPU second** ({wall_ratio:.2f}x wall); {verdict} the "
            f"goal of <= 1.1x.")


# --------------------------------------------------------------------------- (a) curve
def learning_curve(args: argparse.Namespace, sizes: list[int]) -> tuple[dict, float]:
    from flows.experiments import LadderConfig, ladder_flow
    from flows.refresh import RefreshConfig, refresh

    tmp = tempfile.mkdtemp(prefix="bench-ft-")
    wh = f"{tmp}/w.duckdb"
    t0 = time.perf_counter()
    refresh(RefreshConfig(n=args.n, seed=7, warehouse=wh))
    refresh_s = time.perf_counter() - t0
    out = ladder_flow(LadderConfig(sizes=sizes, max_steps=args.steps, batch_size=args.batch,
                                   learning_rate=args.lr, eval_n=args.eval_n,
                                   max_new_tokens=args.max_new_tokens, warehouse=wh,
                                   output_root=f"{tmp}/models")).model_dump()
    return out, refresh_s


def curve_section(out: dict, refresh_s: float, wall_s: float,
                  args: argparse.Namespace) -> str:
    evals = {0: out["base_eval"], **{m["size"]: m["eval"] for m in out["models"]}}
    train = {m["size"]: m["train"] for m in out["models"]}
    rows = []
    for r in out["points"]:
        n = r["examples"]
        ev = evals.get(n)
        no_prog = ev["no_program_rate"] if ev else None
        runs_ok = None if no_prog is None else 1.0 - no_prog - r["exec_error_rate"]
        t = train.get(n)
        rows.append([n, r["accuracy"], "" if runs_ok is None else round(runs_ok, 3),
                     r["exec_error_rate"], "" if no_prog is None else round(no_prog, 3),
                     r["train_seconds"], "" if t is None else round(t["first_loss"], 3),
                     "" if r["final_loss"] is None else r["final_loss"],
                     "" if t is None else round(t["tokens_per_s"])])
    table = markdown_table(["examples", "accuracy", "program runs", "exec error",
                            "no program", "train s (wall)", "first loss", "final loss",
                            "tokens/s"], rows)
    return (f"### (a) Learning curve of the tiny student\n\n"
            f"Ladder flow: nested random subsets of a {args.n}-item procedural snapshot "
            f"(refresh {refresh_s:.0f}s), the same budget of {args.steps} steps of batch "
            f"{args.batch} for every size (lr {args.lr:g}, 5% warmup, linear decay), greedy "
            f"decoding stopped at the end-of-turn token (max {args.max_new_tokens} new tokens; "
            f"the longest training completion is {out.get('max_completion', '?')} tokens), "
            f"scored on procedural-heldout n={args.eval_n} by executing the generated "
            f"programs. examples=0 is the untrained base. \"program runs\": a program was "
            f"found and executed without error (right or wrong answer); \"exec error\": it "
            f"raised or timed out; \"no program\": nothing runnable was emitted.\n\n{table}\n\n"
            f"Ladder wall time {wall_s:.0f}s (training, evaluation and bookkeeping). "
            f"Curve: `{out['curve_png']}`.")


def zero_eval(out: dict, args: argparse.Namespace) -> dict[str, Any]:
    """The untrained base scored again (the flow's rows keep no no-program rate for it)."""
    from tasks.experiments.evaluate import evaluate_path, load_eval_set

    questions = load_eval_set("procedural-heldout", n=args.eval_n, seed=0)
    return evaluate_path(str(Path(out["output_dir"]) / "base"), questions,
                         max_new_tokens=args.max_new_tokens).as_dict()


def completion_stats(out: dict) -> int:
    """Longest completion (tokens, end-of-turn included) among the largest rung's examples."""
    from datasets import load_from_disk

    from tasks.experiments.finetune import completion_label_mask
    from tasks.experiments.student import load_student

    run = max(out["runs"], key=lambda r: r["size"])
    _, tok = load_student(run["output_dir"])
    data = load_from_disk(str(Path(run["output_dir"]) / "data" / "hf"))
    return max(sum(x != IGNORE for x in completion_label_mask(tok, row)[1]) for row in data)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,400,1600")
    ap.add_argument("--steps", type=int, default=300, help="fixed step budget per size")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--eval-n", type=int, default=40)
    ap.add_argument("--max-new-tokens", type=int, default=150)
    ap.add_argument("--n", type=int, default=2000, help="procedural items refreshed")
    ap.add_argument("--tp-examples", type=int, default=200)
    ap.add_argument("--tp-steps", type=int, default=20, help="steps per throughput run")
    ap.add_argument("--tp-reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (fixed)")
    ap.add_argument("--skip-curve", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    t_all = time.perf_counter()
    body = []
    if not args.skip_curve:
        t0 = time.perf_counter()
        out, refresh_s = learning_curve(args, [int(s) for s in args.sizes.split(",")])
        wall_s = time.perf_counter() - t0 - refresh_s
        out["max_completion"] = completion_stats(out)
        out["zero_eval"] = zero_eval(out, args)
        body.append(curve_section(out, refresh_s, wall_s, args))
        print(body[-1], flush=True)
    if not args.skip_throughput:
        tp = throughput(args.tp_examples, args.tp_steps, args.batch, args.tp_reps, args.lr)
        body.append(throughput_section(tp, args))
        print(body[-1], flush=True)
    body.append(f"Whole bench: {time.perf_counter() - t_all:.0f}s wall.")
    text = "\n\n".join(body)
    print(body[-1])
    if not args.no_write:
        write_section("finetune", "python bench/finetune.py", text)


if __name__ == "__main__":
    main()
