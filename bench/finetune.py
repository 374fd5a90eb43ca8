"""Benchmark of fine-tuning on CPU: (a) the tiny student's learning curve on procedural
data, (b) our TRL finetune's tokens/s against a hand-written torch training loop.

    .venv/bin/python bench/finetune.py

(a) runs the real ladder flow (nested random subsets of one snapshot, the same fixed step
budget for every size, the untrained base as the zero point, procedural-heldout accuracy).
(b) trains the same initial model on the same tokenized examples (what SFTTrainer prepared:
input_ids + completion-only labels), same batch size, same padding, same number of steps,
with SFTTrainer and with a plain loop (AdamW, linear schedule, model(..., labels=...)).
Both count non-padding tokens. The two are interleaved and repeated, and each side's best
run is compared, because other processes share this machine's two cores.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._report import markdown_table, write_section  # noqa: E402


def plain_loop(model, rows, batch_size: int, steps: int, lr: float, pad_id: int,
               seed: int) -> tuple[int, float, list[float]]:
    """The baseline: a hand-written loop over the same tokenized rows."""
    import torch

    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / steps))
    gen = torch.Generator().manual_seed(seed)
    order: list[int] = []
    tokens, losses = 0, []
    model.train()
    t0 = time.perf_counter()
    for _ in range(steps):
        if len(order) < batch_size:
            order += torch.randperm(len(rows), generator=gen).tolist()
        batch = [rows[i] for i in order[:batch_size]]
        del order[:batch_size]
        width = max(len(r["input_ids"]) for r in batch)
        ids = torch.full((len(batch), width), pad_id)
        labels = torch.full((len(batch), width), -100)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for j, r in enumerate(batch):
            n = len(r["input_ids"])
            ids[j, :n] = torch.tensor(r["input_ids"])
            labels[j, :n] = torch.tensor(r["labels"])
            mask[j, :n] = 1
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        tokens += int(mask.sum())
        losses.append(float(out.loss))
    return tokens, time.perf_counter() - t0, losses


def throughput(n_examples: int, steps: int, batch: int, reps: int) -> dict:
    from datasets import Dataset

    from tasks.finetune import FinetuneParams, make_trainer, train
    from tasks.sources import load_questions
    from tasks.student import build_tiny_student, conversation_texts, example_messages

    qs = load_questions("procedural", n=n_examples, seed=42)
    rows = [{"messages": example_messages(q.text, q.context, q.gold_program)} for q in qs]
    model0, tok = build_tiny_student(conversation_texts(rows))
    params = FinetuneParams(max_steps=steps, batch_size=batch, learning_rate=1e-3,
                            warmup_ratio=0.0, logging_steps=10)
    ours, plain = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(reps):
            trainer = make_trainer(Dataset.from_list(rows), f"{tmp}/trl{rep}", params,
                                   model=copy.deepcopy(model0), tokenizer=tok)
            prepared = [{"input_ids": r["input_ids"], "labels": r["labels"]}
                        for r in trainer.train_dataset]
            res = train(trainer, f"{tmp}/trl{rep}")
            ours.append((res.train_tokens, res.train_seconds, res.tokens_per_s))
            tokens, secs, _ = plain_loop(copy.deepcopy(model0), prepared, batch, steps, 1e-3,
                                         tok.pad_token_id, seed=rep)
            plain.append((tokens, secs, tokens / secs))
            print(f"rep {rep}: SFTTrainer {ours[-1][2]:.0f} tok/s, plain loop "
                  f"{plain[-1][2]:.0f} tok/s", flush=True)
    n_params = sum(p.numel() for p in model0.parameters())
    mean_len = statistics.mean(len(r["input_ids"]) for r in prepared)
    return {"ours": ours, "plain": plain, "n_params": n_params, "mean_len": mean_len}


def learning_curve(sizes: list[int], steps: int, batch: int, eval_n: int, n: int,
                   max_new_tokens: int) -> tuple[dict, float]:
    from flows.finetune import LadderConfig, ladder_flow
    from flows.refresh import RefreshConfig, refresh

    tmp = tempfile.mkdtemp(prefix="bench-ft-")
    wh = f"{tmp}/w.duckdb"
    t0 = time.perf_counter()
    refresh(RefreshConfig(n=n, seed=7, warehouse=wh))
    refresh_s = time.perf_counter() - t0
    out = ladder_flow(LadderConfig(sizes=sizes, max_steps=steps, batch_size=batch,
                                   eval_n=eval_n, max_new_tokens=max_new_tokens,
                                   warehouse=wh, output_root=f"{tmp}/models"))
    return out, refresh_s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,400,1600")
    ap.add_argument("--steps", type=int, default=150, help="fixed step budget per size")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--eval-n", type=int, default=100)
    ap.add_argument("--max-new-tokens", type=int, default=160)
    ap.add_argument("--n", type=int, default=2000, help="procedural items refreshed")
    ap.add_argument("--tp-steps", type=int, default=30, help="steps per throughput run")
    ap.add_argument("--tp-reps", type=int, default=2)
    ap.add_argument("--skip-curve", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = ap.parse_args()
    import torch

    t_all = time.perf_counter()
    tp = throughput(200, args.tp_steps, args.batch, args.tp_reps)
    best_ours = max(r[2] for r in tp["ours"])
    best_plain = max(r[2] for r in tp["plain"])
    tp_rows = [[f"SFTTrainer (ours), rep {i}", r[0], r[1], r[2]]
               for i, r in enumerate(tp["ours"])]
    tp_rows += [[f"plain torch loop, rep {i}", r[0], r[1], r[2]]
                for i, r in enumerate(tp["plain"])]
    tp_table = markdown_table(["run", "tokens", "seconds", "tokens/s"], tp_rows)
    ratio = best_plain / best_ours
    body = [f"### (b) Throughput: SFTTrainer vs a plain loop\n\n"
            f"Tiny student ({tp['n_params'] / 1e6:.2f}M parameters, 4 layers x 256), "
            f"{args.tp_steps} steps of batch {args.batch}, 200 procedural examples "
            f"(mean {tp['mean_len']:.0f} tokens), completion-only labels, "
            f"{torch.get_num_threads()} torch threads.\n\n{tp_table}\n\n"
            f"Best of each: ours {best_ours:.0f} tokens/s, plain {best_plain:.0f} tokens/s: "
            f"**plain / ours = {ratio:.2f}x** (goal <= 1.1x)."]

    if not args.skip_curve:
        sizes = [int(s) for s in args.sizes.split(",")]
        out, refresh_s = learning_curve(sizes, args.steps, args.batch, args.eval_n, args.n,
                                        args.max_new_tokens)
        rows = [[r["examples"], r["accuracy"], r["exec_error_rate"],
                 r["train_seconds"], "" if r["final_loss"] is None else r["final_loss"],
                 "" if r["tokens_per_s"] is None else r["tokens_per_s"]] for r in out["rows"]]
        evals = {r["size"]: r["eval"] for r in out["runs"]}
        no_prog = [f"{s}: {e['no_program_rate']:.2f}" for s, e in evals.items() if e]
        table = markdown_table(["examples", "accuracy", "exec_error_rate", "train seconds",
                                "final loss", "tokens/s"], rows)
        body.insert(0, f"### (a) Learning curve of the tiny student\n\n"
                    f"Ladder flow: nested random subsets of a {args.n}-item procedural "
                    f"snapshot (refresh took {refresh_s:.0f}s), {args.steps} steps of batch "
                    f"{args.batch} per size (lr 1e-3, linear decay), greedy decoding "
                    f"(max {args.max_new_tokens} new tokens), accuracy on "
                    f"procedural-heldout n={args.eval_n} by executing the generated "
                    f"programs. examples=0 is the untrained base.\n\n{table}\n\n"
                    f"No-program rate by size: {', '.join(no_prog)}. Curve: "
                    f"`{out['curve_png']}`.")
    body.append(f"Whole bench: {time.perf_counter() - t_all:.0f}s wall.")
    text = "\n\n".join(body)
    print(text)
    if not args.no_write:
        write_section("finetune", "python bench/finetune.py", text)


if __name__ == "__main__":
    main()
