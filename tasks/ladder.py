"""The work of a data-size ladder that is not training itself: the shared starting model and
the learning-curve plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def save_tiny_base(examples: Sequence[Any], out: str | Path, seed: int) -> Path:
    """Build the tiny student (tokenizer trained on these examples' rendered texts) and save
    it: every rung of a ladder starts from this same model, and it is the curve's zero."""
    from tasks.export import example_rows
    from tasks.student import build_tiny_student, conversation_texts

    rows = example_rows(list(examples), "prompt_completion")
    model, tokenizer = build_tiny_student(conversation_texts(rows), seed=seed)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return Path(out)


def plot_learning_curve(rows: Sequence[dict[str, Any]], path: Path, *, title: str,
                        ylabel: str) -> Path:
    """Accuracy against training examples (rows with `examples` and `accuracy`) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    xs = [r["examples"] for r in rows]
    ys = [r["accuracy"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    # symlog keeps the base model's zero point on a log-scaled size axis.
    ax.plot(xs, ys, marker="o")
    ax.set_xscale("symlog", linthresh=max(1, min([x for x in xs if x] or [1])))
    ax.set_xlabel("training examples")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, max(1e-3, max(ys) * 1.15 if ys else 1))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
