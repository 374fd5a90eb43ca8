"""The `outcome real` section, rebuilt from the bench's warehouses alone (evaluations with
their per-question outcomes, runs with curve, group and seed): every table a mean over the
repeats with a 95% interval (bootstrap over questions and runs), every comparison a paired
difference on the same questions with its interval. A difference is called a gain only when
its interval excludes 0."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench._report import markdown_table

ROOT = Path(__file__).resolve().parents[1]


def _rows(out_dir: Path, experiment: str) -> list[dict[str, Any]]:
    from warehouse import Store

    rows = []
    for name in ("w.duckdb", "abstention.duckdb"):
        path = out_dir / name
        if path.exists():
            store = Store(path)
            found = store.experiments.results(experiment)
            outcomes = store.experiments.outcomes([r["eval_id"] for r in found])
            for r in found:
                r["right"] = outcomes.get(r["eval_id"], [])
                r["warehouse"] = name
            rows += found
    return rows


def _kind(eval_set: str) -> str:
    for key in ("tatqa", "unanswerable", "gsm8k"):
        if key in eval_set:
            return key
    return "procedural"


class Groups:
    """Evaluations by (eval kind, curve, examples): the runs of one arm on one eval set."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.by: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            if r["right"]:
                self.by[(_kind(r["eval_set"]), r["curve"], r["examples"])].append(r)

    def get(self, kind: str, curve: str, size: int) -> list[dict[str, Any]]:
        return self.by.get((kind, curve, size), [])

    def cell(self, kind: str, curve: str, size: int) -> str:
        from tasks.experiments.intervals import accuracy_interval

        runs = self.get(kind, curve, size)
        if not runs:
            return "not run"
        ci = accuracy_interval([r["right"] for r in runs])
        return f"{ci.text()} (k={len(runs)})"

    def diff(self, kind: str, a: tuple[str, int], b: tuple[str, int]) -> list[Any] | None:
        from tasks.experiments.intervals import paired_difference

        ra, rb = self.get(kind, *a), self.get(kind, *b)
        if not ra or not rb or len(ra[0]["right"]) != len(rb[0]["right"]):
            return None
        d = paired_difference([r["right"] for r in ra], [r["right"] for r in rb])
        return [f"{a[0]} @{a[1]}", f"{b[0]} @{b[1]}", kind, f"{d.mean:+.3f}",
                f"[{d.low:+.3f}, {d.high:+.3f}]", len(ra), len(rb),
                "yes" if d.excludes_zero and d.mean > 0 else
                ("worse" if d.excludes_zero else "no (inside the noise)")]


def _plot(groups: Groups, kind: str, curves: list[str], sizes: list[int], path: Path,
          title: str) -> Path | None:
    from tasks.experiments.intervals import accuracy_interval
    from tasks.experiments.ladder import plot_learning_curve

    points = []
    base = groups.get(kind, "base", 0)
    if base:
        ci = accuracy_interval([r["right"] for r in base])
        points.append({"curve": "base", "examples": 0, "accuracy": ci.mean, "low": ci.low,
                       "high": ci.high})
    for curve in curves:
        for size in sizes:
            runs = groups.get(kind, curve, size)
            if runs:
                ci = accuracy_interval([r["right"] for r in runs])
                points.append({"curve": curve, "examples": size, "accuracy": ci.mean,
                               "low": ci.low, "high": ci.high})
    if len(points) < 2:
        return None
    return plot_learning_curve(points, path, title=title, ylabel=f"accuracy on {kind} "
                               "(mean, 95% CI)")


def _abstention(groups: Groups, size: int, eval_set: str) -> list[list[Any]]:
    """Per arm: recall and precision of 'I don't know' on the unanswerable questions,
    accuracy on the answerable ones (mean over runs)."""
    from tasks.experiments.evaluate import load_eval_set
    from tasks.experiments.intervals import accuracy_interval

    questions = load_eval_set(eval_set, n=200, seed=0)
    answerable = [i for i, q in enumerate(questions) if not q.meta.get("unanswerable")]
    out = []
    for curve in ("procedural", "with abstention rows"):
        runs = groups.get("unanswerable", curve, size)
        if not runs or len(runs[0]["right"]) != len(questions):
            continue
        recall = sum(r["abstention_recall"] or 0.0 for r in runs) / len(runs)
        precision = sum(r["abstention_precision"] or 0.0 for r in runs) / len(runs)
        ans = accuracy_interval([[r["right"][i] for i in answerable] for r in runs])
        out.append([curve, len(runs), f"{recall:.3f}", f"{precision:.3f}", ans.text(),
                    f"{len(questions) - len(answerable)} / {len(questions)}"])
    return out


def build(args: Any, out_dir: Path, experiment: str, plots: Path = ROOT,
          planned: int = 0) -> tuple[str, dict[str, Any]]:
    rows = _rows(out_dir, experiment)
    g = Groups(rows)
    sizes = args.size_list
    first, last = sizes[0], sizes[-1]
    curves = ["procedural", "tatqa", "mix"]
    parts = []
    head = ["arm", "examples", "TAT-QA test", "procedural-heldout"]
    table = [["base (SmolLM2-135M-Instruct)", 0, g.cell("tatqa", "base", 0),
              g.cell("procedural", "base", 0)]]
    table += [[c, s, g.cell("tatqa", c, s), g.cell("procedural", c, s)]
              for s in sizes for c in curves]
    parts += ["### A. What the student learns, by training data", "",
              f"Accuracy, mean over k runs (seeds) with a 95% interval (bootstrap over "
              f"questions and runs). TAT-QA test: {args.tatqa_n} arithmetic questions drawn "
              f"once by seed 0; procedural-heldout: {args.proc_n} questions, held-out "
              "phrasings.", "", markdown_table(head, table), ""]
    diffs = []
    for kind in ("tatqa", "procedural"):
        for s in sizes:
            for c in curves:
                diffs.append(g.diff(kind, (c, s), ("base", 0)))
            diffs += [g.diff(kind, ("mix", s), ("procedural", s)),
                      g.diff(kind, ("mix", s), ("tatqa", s))]
    dhead = ["arm", "vs", "eval", "difference", "95% CI", "k a", "k b", "gain"]
    found = [d for d in diffs if d]
    if found:
        parts += ["Paired differences (same questions):", "", markdown_table(dhead, found), ""]
    # B. verification
    ver = [g.diff("procedural", (f"unverified, {n} mistakes", first), ("procedural", first))
           for n in ("repeating", "independent")]
    ver = [[*d[:1], "verified (procedural)", *d[2:]] for d in ver if d]
    parts += ["### B. Does verification pay?", "",
              f"At {first} examples: the curve's procedural rung (programs checked against the "
              f"gold answers) vs a noisy teacher's programs for the same questions, "
              f"{args.noise:.0%} wrong and unchecked: repeating mistakes ({args.noise:.0%} of "
              "question types, the same wrong formula or reading on every question of the "
              "type) and independent ones (each question its own error). Negative = the "
              "unverified arm is worse.", "",
              markdown_table(["arm", "examples"] + ["procedural-heldout"],
                             [[f"unverified, {n} mistakes", first,
                               g.cell("procedural", f"unverified, {n} mistakes", first)]
                              for n in ("repeating", "independent")]
                             + [["verified (procedural)", first,
                                 g.cell("procedural", "procedural", first)]]), ""]
    if ver:
        parts += [markdown_table(dhead, ver), ""]
    # C. DPO
    dpo = g.diff("procedural", ("SFT + DPO", first), ("procedural", first))
    parts += ["### C. SFT + DPO vs SFT", "",
              f"DPO (LoRA r=16, beta 0.1, lr 5e-6, 1 epoch, up to 300 outcome pairs from a "
              f"noisy teacher's samples) on top of each procedural {first}-example SFT model; "
              "the reference model is the SFT model with the DPO adapters off.", "",
              markdown_table(["arm", "procedural-heldout"],
                             [["SFT", g.cell("procedural", "procedural", first)],
                              ["SFT + DPO", g.cell("procedural", "SFT + DPO", first)]]), ""]
    if dpo:
        parts += [markdown_table(dhead, [dpo]), ""]
    # D. abstention
    ab = _abstention(g, last, "procedural:heldout:unanswerable=0.2")
    parts += ["### D. Abstention rows", "",
              f"At {last} examples: the curve's procedural rung vs a subset of the same size "
              "from a refresh in which 10% of the questions are made unanswerable (target "
              "\"I don't know\"), both on held-out questions of which 20% are unanswerable.", ""]
    if ab:
        parts += [markdown_table(["arm", "k", "abstention recall", "abstention precision",
                                  "answerable accuracy [95% CI]", "unanswerable"], ab), ""]
    else:
        parts += ["not run", ""]
    # E. GSM8K
    parts += ["### E. GSM8K test", "",
              markdown_table(["model", f"GSM8K test (n={args.gsm8k_n})"],
                             [["base", g.cell("gsm8k", "base", 0)],
                              [f"trained on {last} curated GSM8K train programs",
                               g.cell("gsm8k", "gsm8k train", last)]]), ""]
    # plots and time
    pngs = [p for p in (
        _plot(g, "tatqa", curves, sizes, plots / "outcome_real_tatqa.png",
              "SmolLM2-135M LoRA on TAT-QA test"),
        _plot(g, "procedural", curves, sizes, plots / "outcome_real_procedural.png",
              "SmolLM2-135M LoRA on procedural-heldout")) if p]
    if pngs:
        parts += [" ".join(f"![{p.stem}]({p.name})" for p in pngs), ""]
    parts.append(_timing(out_dir, rows, planned))
    return "\n".join(parts), {"rows": len(rows)}


def _timing(out_dir: Path, rows: list[dict[str, Any]], planned: int) -> str:
    state_path = out_dir / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    started = state.get("_started")
    finished = state.get("_finished")
    jobs = {k: v for k, v in state.items() if not k.startswith("_")}
    done = [v for v in jobs.values() if v.get("status") == "done"]
    failed = [k for k, v in jobs.items() if v.get("status") == "failed"]
    wall = ((finished or time.time()) - started) / 3600 if started else 0.0
    qps = [r["questions_per_s"] for r in rows if r.get("questions_per_s")]
    line = (f"Wall time {'' if finished else 'so far '}{wall:.1f} h for {len(done)} of "
            f"{planned or len(jobs)} jobs ({max(planned, len(jobs)) - len(done) - len(failed)} "
            "not run or running"
            + (f", failed: {', '.join(failed)}" if failed else "") + "); evaluation "
            + (f"{min(qps):.2f}-{max(qps):.2f} questions/s." if qps else "not run yet."))
    return line
