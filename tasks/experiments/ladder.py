"""The work of a data-size ladder that is not training itself: the shared starting model, the
unverified arm's training data and the learning-curve plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def save_tiny_base(examples: Sequence[Any], out: str | Path, seed: int) -> Path:
    """Build the tiny student (tokenizer trained on these examples' rendered texts) and save
    it: every rung of a ladder starts from this same model, and it is the curve's zero."""
    from tasks.experiments.export import example_rows
    from tasks.experiments.student import build_tiny_student, conversation_texts

    rows = example_rows(list(examples), "prompt_completion")
    model, tokenizer = build_tiny_student(conversation_texts(rows), seed=seed)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return Path(out)


def unverified_rows(questions: Sequence[Any], error_rate: float, seed: int,
                    noise: str = "independent") -> tuple[list[dict[str, Any]], int]:
    """(prompt/completion rows, how many are wrong): the noisy teacher's programs for these
    questions, taken as they come (no execution, no check), as the unverified arm trains."""
    from tasks.experiments.student import example_messages
    from tasks.teachers.noisy import NoisyTeacher

    made = NoisyTeacher(error_rate=error_rate, seed=seed, noise=noise).run(list(questions))
    by_id = {q.question_id: q for q in questions}
    rows = []
    for s in made.kept:
        q = by_id[s.question_id]
        turns = example_messages(q.text, q.context, s.program or "")
        rows.append({"prompt": turns[:2], "completion": turns[2:]})
    return rows, sum(1 for s in made.kept if s.meta.get("error_kind"))


def write_rows(rows: Sequence[dict[str, Any]], out: str | Path) -> Path:
    """Rows saved as an HF dataset (what the trainer loads)."""
    from datasets import Dataset

    Dataset.from_list(list(rows)).save_to_disk(str(out))
    return Path(out)


def plot_learning_curve(rows: Sequence[dict[str, Any]], path: Path, *, title: str,
                        ylabel: str) -> Path:
    """Accuracy against training examples as a PNG, one line per `curve` (strategy or arm);
    the `base` row (examples=0) is every line's starting point; a curve with one size is
    drawn as a lone marker; rows with `low`/`high` get their interval as an error bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    base = [r for r in rows if r.get("curve") == "base" or r["examples"] == 0][:1]
    curves: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r not in base:
            curves.setdefault(r.get("curve") or "random", []).append(r)
    xs_all = [r["examples"] for r in rows]
    ys_all = [r.get("high", r["accuracy"]) for r in rows if r["accuracy"] == r["accuracy"]]
    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=100)
    for name, points in curves.items():
        # An arm trained at one size only (--arm-sizes) is a point, not a curve: a line from
        # the base would draw a slope that was never measured.
        alone = len(points) == 1
        points = (base if not alone else []) + sorted(points, key=lambda r: r["examples"])
        xs, ys = [r["examples"] for r in points], [r["accuracy"] for r in points]
        line = ax.plot(xs, ys, marker="D" if alone else "o", linestyle="none" if alone else "-",
                       label=name)[0]
        if all("low" in r and "high" in r for r in points):  # the 95% interval of each point
            ax.errorbar(xs, ys, yerr=[[y - r["low"] for y, r in zip(ys, points, strict=True)],
                                      [r["high"] - y for y, r in zip(ys, points, strict=True)]],
                        fmt="none", ecolor=line.get_color(), capsize=3, alpha=0.7)
    if not curves and base:
        ax.plot([0], [base[0]["accuracy"]], marker="o", label="base")
    # symlog keeps the base model's zero point on a log-scaled size axis.
    ax.set_xscale("symlog", linthresh=max(1, min([x for x in xs_all if x] or [1])))
    ax.set_xlabel("training examples")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, max(1e-3, max(ys_all) * 1.15 if ys_all else 1))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
