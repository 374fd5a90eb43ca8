"""What an experiment returns, typed all the way: every trained model, every point of the
curve (the mean of its repeats with a 95% interval), every paired difference between arms,
and the artifacts a run leaves in the Prefect UI."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import BaseModel

from tasks.experiments.evaluate import EvalResult
from tasks.experiments.finetune import FinetuneResult
from tasks.experiments.intervals import Interval, accuracy_interval, paired_difference
from tasks.experiments.params import TrainingParams
from tasks.experiments.plan import Rung

BASE = "base"


class TrainedModel(BaseModel):
    """One rung, trained (and evaluated when the experiment evaluates)."""

    rung: Rung
    run_id: str
    output_dir: str
    subset_id: str | None
    snapshot_id: int | None
    size: int
    train: FinetuneResult
    eval: EvalResult | None = None


class Evaluation(BaseModel):
    """One stored evaluation of a model."""

    eval_id: str
    model: str
    finetune_run_id: str | None
    result: EvalResult

    def markdown(self) -> str:
        ev = self.result
        lines = [f"# Evaluation of `{self.model}`", "",
                 f"{ev.eval_set}, n={ev.n}: accuracy **{ev.accuracy:.3f}**, exec errors "
                 f"{ev.exec_error_rate:.3f}, no program {ev.no_program_rate:.3f} "
                 f"({ev.seconds:.1f}s).", "", "| status | gold | predicted | question |",
                 "|---|---|---|---|"]
        lines += [f"| {f['status']} | {f['gold']} | {f['predicted']} | "
                  f"{f['question'][:80].replace('|', '/')} |" for f in ev.failures[:10]]
        return "\n".join(lines)


class CurvePoint(BaseModel):
    """A curve at one size: the mean over its repeats, with a 95% interval (bootstrap over
    questions and runs). The base model is the point `base` at 0 examples."""

    curve: str
    examples: int
    runs: int
    accuracy: float
    low: float
    high: float
    exec_error_rate: float
    no_program_rate: float
    train_seconds: float
    final_loss: float | None
    run_ids: list[str]


class ArmDifference(BaseModel):
    """Accuracy of one arm minus another on the same questions, with its paired 95%
    interval; `gain` only when the interval excludes 0."""

    arm: str
    versus: str
    examples: int
    difference: float
    low: float
    high: float
    gain: bool

    @classmethod
    def of(cls, arm: str, versus: str, examples: int, d: Interval) -> ArmDifference:
        return cls(arm=arm, versus=versus, examples=examples, difference=round(d.mean, 4),
                   low=round(d.low, 4), high=round(d.high, 4), gain=d.excludes_zero)


def _point(curve: str, examples: int, evals: Sequence[EvalResult],
           models: Sequence[TrainedModel]) -> CurvePoint:
    ci = accuracy_interval([e.right for e in evals])
    mean = lambda xs: round(sum(xs) / len(xs), 4) if xs else 0.0  # noqa: E731
    losses = [m.train.final_loss for m in models if m.train.final_loss is not None]
    return CurvePoint(curve=curve, examples=examples, runs=len(evals),
                      accuracy=round(ci.mean, 4), low=round(ci.low, 4), high=round(ci.high, 4),
                      exec_error_rate=mean([e.exec_error_rate for e in evals]),
                      no_program_rate=mean([e.no_program_rate for e in evals]),
                      train_seconds=mean([m.train.train_seconds for m in models]),
                      final_loss=mean(losses) if losses else None,
                      run_ids=[m.run_id for m in models])


class Experiment(BaseModel):
    """A finetune, a DPO run or a ladder: its models, its curve points, its comparisons."""

    experiment_id: str
    method: str
    base_model: str
    snapshot_id: int | None
    eval_set: str
    budget: str  # "2 epochs per size" / "300 steps per size"
    output_dir: str
    models: list[TrainedModel]
    base_eval: EvalResult | None = None
    points: list[CurvePoint] = []
    differences: list[ArmDifference] = []
    curve_png: str | None = None

    @classmethod
    def of(cls, experiment_id: str, training: TrainingParams, spec: Any,
           models: list[TrainedModel], base_eval: EvalResult | None, *,
           snapshot_id: int | None, output_dir: str) -> Experiment:
        budget = (f"{training.max_steps} steps" if training.max_steps
                  else f"{training.epochs:g} epochs") + " per size"
        out = cls(experiment_id=experiment_id, method=training.method,
                  base_model=training.base_model, snapshot_id=snapshot_id,
                  eval_set=spec.eval_set, budget=budget, output_dir=output_dir,
                  models=models, base_eval=base_eval)
        out.points, out.differences = out._summary()
        if len(out.points) > 1:
            from tasks.experiments.ladder import plot_learning_curve

            out.curve_png = str(plot_learning_curve(
                [p.model_dump() for p in out.points], Path(output_dir) / "curve.png",
                ylabel=f"accuracy on {spec.eval_set}", title=f"{training.base_model}: {budget}"))
        return out

    def _summary(self) -> tuple[list[CurvePoint], list[ArmDifference]]:
        groups: dict[tuple[str, int], list[TrainedModel]] = {}
        for m in self.models:
            groups.setdefault((m.rung.curve, m.size), []).append(m)
        points = [_point(BASE, 0, [self.base_eval], [])] if self.base_eval else []
        outcomes: dict[tuple[str, int], list[list[bool]]] = {}
        for (curve, size), ms in groups.items():
            evals = [m.eval for m in ms if m.eval is not None]
            if evals:
                points.append(_point(curve, size, evals, ms))
                outcomes[(curve, size)] = [e.right for e in evals]
        diffs = []
        base = [self.base_eval.right] if self.base_eval else None
        first = next(iter(groups), (None, 0))[0]
        for (curve, size), rows in outcomes.items():
            if base:
                diffs.append(ArmDifference.of(curve, BASE, size, paired_difference(rows, base)))
            if curve != first and (first, size) in outcomes:
                diffs.append(ArmDifference.of(curve, first, size,
                                              paired_difference(rows, outcomes[(first, size)])))
        return points, diffs

    # --------------------------------------------------------------------- reports
    def markdown(self) -> str:
        head = ["curve", "examples", "runs", "accuracy [95% CI]", "exec errors", "train s"]
        lines = [f"# {self.method.upper()} experiment `{self.experiment_id}`", "",
                 f"Base model `{self.base_model}`, {self.budget}, snapshot "
                 f"{self.snapshot_id}, evaluated on {self.eval_set}.", ""]
        if self.curve_png:
            png = base64.b64encode(Path(self.curve_png).read_bytes()).decode()
            lines += [f"![learning curve](data:image/png;base64,{png})", ""]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += [f"| {p.curve} | {p.examples} | {p.runs} | {p.accuracy:.3f} [{p.low:.3f}, "
                  f"{p.high:.3f}] | {p.exec_error_rate:.3f} | {p.train_seconds:.0f} |"
                  for p in self.points]
        if self.differences:
            lines += ["", "| arm | vs | examples | difference [95% CI] | gain |",
                      "|---|---|---|---|---|"]
            lines += [f"| {d.arm} | {d.versus} | {d.examples} | {d.difference:+.3f} "
                      f"[{d.low:+.3f}, {d.high:+.3f}] | {'yes' if d.gain else 'no'} |"
                      for d in self.differences]
        return "\n".join(lines)

    def publish(self) -> None:
        """The run's artifacts: the table (with the curve) as markdown, the points as a
        table, and each trained model's loss and score."""
        create_markdown_artifact(markdown=self.markdown(), key=f"{self.method}-experiment",
                                 description="Accuracy with 95% intervals, paired "
                                             "differences, the learning curve")
        if self.points:
            create_table_artifact(table=[p.model_dump(exclude={"run_ids"}) for p in self.points],
                                  key=f"{self.method}-points",
                                  description="One row per curve and size; base = 0 examples")
        create_table_artifact(table=[{
            "run_id": m.run_id, "curve": m.rung.curve, "examples": m.size,
            "seed": m.rung.train_seed, "steps": m.train.steps,
            "final_loss": m.train.final_loss, "train_seconds": m.train.train_seconds,
            "accuracy": m.eval.accuracy if m.eval else None} for m in self.models],
            key=f"{self.method}-models", description="Every trained model")
