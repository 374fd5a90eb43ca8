"""Beyond plain SFT with the real student (SmolLM2-135M-Instruct, CPU): does training on
abstention rows teach the student to say "I don't know", and what does DPO on outcome pairs
add to SFT on verified data?

    .venv/bin/python bench/beyond_sft.py      # about an hour on one CPU core

On fresh warehouses under bench/out/beyond_sft/, the real flows (refresh, finetune,
preferences, finetune --method dpo), the same LoRA settings as bench/outcome.py:
- abstention: two procedural refreshes with the same seed, one with --unanswerable of the
  items unanswerable (target "I don't know"), one without; a random subset of --size from
  each, one student each; both evaluated on held-out questions of which --eval-unanswerable
  are unanswerable, scored with the abstention metric (+1 right, 0 abstain, -1 wrong) and
  abstention precision/recall beside accuracy;
- dpo: the student trained without abstention rows (SFT on verified data) is trained further
  with DPO on --pairs outcome pairs from a noisy-teacher refresh, and evaluated the same way.
Writes the `beyond SFT` section of BENCHMARKS.md after each part.
"""

from __future__ import annotations

import argparse
import shutil
import time
from typing import Any

import _env  # noqa: E402, F401 - offline settings, the project on sys.path
from _env import ROOT  # noqa: E402

from bench._report import command, markdown_table, write_section  # noqa: E402

OUT = ROOT / "bench" / "out" / "beyond_sft"


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rows: list[list[Any]] = []
        self.times: dict[str, float] = {}
        self.t0 = time.perf_counter()
        self.eval_set = f"procedural:heldout:unanswerable={args.eval_unanswerable}"

    def common(self) -> dict[str, Any]:
        a = self.args
        return dict(base_model="smollm2-135m", lora=True, lora_r=16, lora_alpha=32,
                    trainable_layers=8, epochs=a.epochs, learning_rate=a.lr, batch_size=8,
                    threads=1, eval_set=self.eval_set, eval_n=a.eval_n,
                    max_new_tokens=150, eval_batch_size=16,
                    output_root=str(OUT / "models"))

    def row(self, arm: str, trained_on: str, ev: Any, train_s: float) -> None:
        e = ev.as_dict()
        self.rows.append([arm, trained_on, round(e["accuracy"], 3),
                          round(e["abstention_score"], 3), e["abstained"], e["unanswerable"],
                          e["abstention_precision"], e["abstention_recall"],
                          round(e["exec_error_rate"], 3), round(train_s)])
        self.write()

    def abstention(self) -> None:
        from flows.experiments import FinetuneConfig, finetune_flow
        from flows.refresh import RefreshConfig, refresh
        from tasks.experiments.abstention import ABSTAIN
        from warehouse import Store

        a = self.args
        for arm, source in (("without abstention rows", "procedural"),
                            ("with abstention rows",
                             f"procedural:train:unanswerable={a.unanswerable}")):
            wh = OUT / f"{'with' if 'with ' in arm else 'without'}.duckdb"
            refresh(RefreshConfig(source=source, n=a.n, seed=7, warehouse=str(wh)))
            [out] = finetune_flow(FinetuneConfig(subset_size=a.size, warehouse=str(wh),
                                                 **self.common())).models
            n_idk = Store(wh).query("SELECT count(*) FROM subset_examples WHERE subset_id = ? "
                                    "AND answer = ?", [out.subset_id, ABSTAIN])[1][0][0]
            self.row(arm, f"SFT, {a.size} examples ({n_idk} unanswerable)", out.eval,
                     out.train.train_seconds)
            if arm.startswith("without"):
                self.sft_dir = out.output_dir
            _log(f"{arm}: {out.eval.as_dict()}")

    def dpo(self) -> None:
        from flows.experiments import DPOConfig, dpo_flow
        from flows.preferences import PreferencesConfig, preferences
        from flows.refresh import RefreshConfig, refresh

        a = self.args
        wh = OUT / "noisy.duckdb"
        refresh(RefreshConfig(source="procedural", n=a.n, seed=11, teacher="noisy",
                              error_rate=0.3, warehouse=str(wh)))
        preferences(PreferencesConfig(warehouse=str(wh)))
        common = {k: v for k, v in self.common().items()
                  if k not in ("epochs", "learning_rate", "batch_size", "grad_accum")}
        [out] = dpo_flow(DPOConfig(
            pair_type="outcome", max_pairs=a.pairs, warehouse=str(wh), **common,
            base_model=self.sft_dir, learning_rate=a.dpo_lr, epochs=1, batch_size=4,
            beta=0.1, max_length=768, logging_steps=2)).models
        r, n = out.train, out.train.n_examples
        self.dpo_note = (f"DPO: {n} outcome pairs, {r.steps} steps, loss "
                         f"{r.first_loss:.3f} -> {r.final_loss:.3f}, reward accuracy "
                         f"{r.metrics['reward_accuracy']:.2f}, margin "
                         f"{r.metrics['reward_margin']:.3f}.")
        self.row("SFT + DPO", f"the SFT model above + DPO on {n} outcome pairs",
                 out.eval, r.train_seconds)

    def write(self) -> None:
        a = self.args
        head = ["arm", "trained on", "accuracy", "abstention score", "abstained",
                "unanswerable", "abstention precision", "abstention recall", "exec errors",
                "train s"]
        text = "\n".join([
            f"SmolLM2-135M-Instruct (`smollm2-135m`), LoRA r=16 on the top 8 layers, "
            f"{a.epochs:g} epochs, learning rate {a.lr:g}, batch 8, 1 torch thread (as "
            f"bench/outcome.py). Evaluation: `{self.eval_set}`, n={a.eval_n} (held-out "
            "phrasings; an unanswerable question is right when the student abstains); "
            "abstention score +1 right, 0 \"I don't know\", -1 wrong. One run per row.", "",
            markdown_table(head, self.rows), "", getattr(self, "dpo_note", ""), "",
            "Wall time: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in self.times.items())
            + f"; whole bench so far {(time.perf_counter() - self.t0) / 60:.1f} min."])
        print(text, flush=True)
        if not a.no_write:
            write_section("beyond SFT", command(), text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400, help="procedural items per refresh")
    ap.add_argument("--size", type=int, default=100, help="SFT examples per student")
    ap.add_argument("--unanswerable", type=float, default=0.2,
                    help="share of unanswerable items in the 'with' refresh")
    ap.add_argument("--eval-unanswerable", type=float, default=0.3)
    ap.add_argument("--eval-n", type=int, default=80)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--pairs", type=int, default=64, help="DPO outcome pairs")
    ap.add_argument("--dpo-lr", type=float, default=5e-6)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)  # one core: the DPO trainer has no threads setting of its own
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    b = Bench(args)
    for name, fn in (("abstention", b.abstention), ("dpo", b.dpo)):
        t = time.perf_counter()
        fn()
        b.times[name] = time.perf_counter() - t
        _log(f"done {name} in {b.times[name] / 60:.1f} min")
        b.write()


if __name__ == "__main__":
    main()
