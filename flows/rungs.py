"""The steps every experiment runs, written once: draw the data, train one rung and record
it, evaluate one model and record it, and the sequence over a plan.

The warehouse is read before training and written in short transactions after it: no
connection is held while a model trains (DESIGN.md, "Writes").
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from flows.experiment_results import Evaluation, Experiment, TrainedModel
from flows.subsets import ExportConfig, SubsetConfig, create_subsets, export_subset
from tasks.errors import InputError
from tasks.experiments.evaluate import EVAL_SETS_HELP, EvalResult, evaluate_path, load_eval_set
from tasks.experiments.finetune import FinetuneResult
from tasks.experiments.params import SFTParams, TrainingParams
from tasks.experiments.plan import Rung
from tasks.experiments.student import TINY
from tasks.experiments.trainers import train_on_disk
from tasks.settings import Settings
from warehouse import Store
from warehouse.subsets import SubsetInfo


class EvalSpec(Settings):
    """How a model is evaluated."""

    eval_set: str = Field("procedural-heldout", description=EVAL_SETS_HELP)
    eval_n: int = Field(200, ge=0, description="questions evaluated (0: skip evaluation); "
                        "a file's questions are drawn by eval_seed")
    eval_seed: int = Field(0, description="seed of the procedural held-out questions, and "
                           "of the draw from an eval file")
    eval_batch_size: int = Field(64, ge=1, le=1024, description="questions generated at "
                                 "once (on a CPU 64 rows decode 2x the tokens/s of 16)")
    max_new_tokens: int = Field(256, ge=8, le=4096, description="longest answer in tokens "
                                "(generation stops earlier at the end of the program)")


class OutputSpec(Settings):
    """Where models go, and what the terminal shows."""

    output_root: str = Field("data/models", description="folder of the models: one "
                             "subfolder per experiment")
    progress: bool = Field(False, description="progress bars on the terminal")


def new_experiment_id(prefix: str) -> str:
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


# --------------------------------------------------------------------------- data
def draw_subset(store: Store, data: Any) -> SubsetInfo:
    """The stored subset a finetune names, or one drawn (and stored) for it."""
    subset_id = data.subset_id or create_subsets(SubsetConfig(
        size=data.subset_size, strategy=data.strategy, seed=data.seed, mix=data.mix,
        snapshot_id=data.snapshot_id or None, warehouse=str(store.path))).subsets[-1].subset_id
    return store.subsets.load_subset(subset_id)


def draw_ladder(store: Store, data: Any) -> tuple[int, dict[str, dict[int, str]]]:
    """(snapshot id, strategy -> size -> subset id): the first strategy at every size, the
    others at the arm sizes."""
    made = {strategy: create_subsets(SubsetConfig(
        sizes=data.sizes if i == 0 else (data.arm_sizes or data.sizes), strategy=strategy,
        seed=data.seed, mix=data.mix, snapshot_id=data.snapshot_id or None,
        warehouse=str(store.path))) for i, strategy in enumerate(data.strategies)}
    first = made[data.strategies[0]]
    return first.snapshot_id, {s: {m.size: m.subset_id for m in r.subsets}
                               for s, r in made.items()}


def shared_tiny_base(store: Store, subset_id: str, training: SFTParams,
                     root: Path) -> SFTParams:
    """Every rung of a ladder starts from one model. For the tiny student that model is
    built here (tokenizer from the largest subset, which contains the others; one init
    seed) and saved, so each rung and the zero point load the same one."""
    if training.base_model != TINY:
        return training
    from tasks.experiments.ladder import save_tiny_base

    base = (root / "base").resolve()
    save_tiny_base(store.subsets.subset_examples(subset_id), base, training.train_seed)
    return training.model_copy(update={"base_model": str(base),
                                       "learning_rate": training.resolved_lr()})


def _training_data(store: Store, rung: Rung, out: Path, seed: int,
                   pairs: Any) -> tuple[str, dict[str, Any]]:
    """(HF dataset folder, what it was, for the run's params) of one rung's data."""
    if rung.arm == "dpo":
        return _pair_data(store, out, pairs)
    if rung.arm == "unverified":
        from tasks.experiments.ladder import unverified_rows, write_rows

        ids = [e.question_id for e in store.subsets.subset_examples(rung.subset_id or "")]
        rows, wrong = unverified_rows(store.load_questions(ids), rung.error_rate, seed,
                                      rung.noise)
        return str(write_rows(rows, out)), {"wrong_examples": wrong}
    export = export_subset(ExportConfig(subset_id=rung.subset_id or "",
                                        format="prompt_completion", out=str(out),
                                        warehouse=str(store.path)))
    return export.hf, {}


def _pair_data(store: Store, out: Path, pairs: Any) -> tuple[str, dict[str, Any]]:
    """The stored preference pairs as TRL preference rows, kept in the run's folder."""
    from tasks.experiments.export import write_dataset
    from tasks.preferences import export as pair_export

    rows = store.preferences.pairs(None if pairs.pair_type == "all" else pairs.pair_type)
    rows = rows[:pairs.max_pairs] if pairs.max_pairs else rows
    if not rows:
        kind = "" if pairs.pair_type == "all" else f"{pairs.pair_type} "
        raise InputError(f"{store.path}: no {kind}preference pairs; run "
                         "`distillery preferences` first")
    write_dataset(pair_export.pair_rows(rows, "preference"), out,
                  pair_export.features("preference"), "preference",
                  metadata={"warehouse": str(store.path), "pair_type": pairs.pair_type})
    return str(out / "hf"), {"pair_type": pairs.pair_type, "max_pairs": pairs.max_pairs,
                             "pairs": len(rows)}


# --------------------------------------------------------------------------- train, evaluate
# log_prints off: Prefect's print capture breaks dill's stdout capture inside datasets'
# fingerprinting (it would log whole bytecode disassemblies and cost the trainer CPU).
@task(cache_policy=NO_CACHE, name="train", log_prints=False)
def train_task(data_dir: str, output_dir: str, params: TrainingParams,
               progress: bool) -> FinetuneResult:
    return train_on_disk(data_dir, output_dir, params, progress=progress)


@task(cache_policy=NO_CACHE, name="evaluate-model", log_prints=False)
def evaluate_task(model_ref: str, spec: EvalSpec, threads: int, progress: bool) -> EvalResult:
    questions = load_eval_set(spec.eval_set, n=spec.eval_n, seed=spec.eval_seed)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(questions), desc=f"eval {Path(model_ref).name}", unit="q")
    try:
        return evaluate_path(model_ref, questions, threads=threads, eval_set=spec.eval_set,
                             batch_size=spec.eval_batch_size,
                             max_new_tokens=spec.max_new_tokens,
                             progress=bar.update if bar else None)
    finally:
        if bar:
            bar.close()


def train_and_record(store: Store, experiment_id: str, rung: Rung, training: TrainingParams,
                     output: OutputSpec, *, seed: int = 0, snapshot_id: int | None = None,
                     pairs: Any = None, extra: dict[str, Any] | None = None) -> TrainedModel:
    """Data -> finetune_runs row (running) -> train -> the row completed (or failed)."""
    run_id = f"{experiment_id}-{rung.name}" if rung.name != "model" else experiment_id
    out_dir = (Path(output.output_root) / experiment_id / rung.name).resolve() \
        if rung.name != "model" else (Path(output.output_root) / experiment_id).resolve()
    params = training.model_copy(update={"train_seed": rung.train_seed})
    data, about = _training_data(store, rung, out_dir / "data", seed, pairs)
    exp = store.experiments
    exp.start_finetune_run(run_id, subset_id=rung.subset_id, snapshot_id=snapshot_id,
                           base_model=training.base_model, output_dir=str(out_dir), params={
                               **params.stored(), **rung.model_dump(exclude={"name"}),
                               "experiment_id": experiment_id, **about, **(extra or {})})
    try:
        # No warehouse connection is open from here until training returns.
        result = train_task(data, str(out_dir), params, output.progress)
    except BaseException:
        exp.finish_finetune_run(run_id, status="failed")
        raise
    exp.finish_finetune_run(
        run_id, status="completed", loss_curve=result.loss_curve, metrics={
            "first_loss": result.first_loss, "final_loss": result.final_loss,
            "steps": result.steps, "n_examples": result.n_examples,
            "n_parameters": result.n_parameters, "n_trainable": result.n_trainable,
            **result.metrics},
        train_seconds=result.train_seconds, train_tokens=result.train_tokens,
        tokens_per_s=result.tokens_per_s, device=result.device)
    return TrainedModel(rung=rung, run_id=run_id, output_dir=str(out_dir),
                        subset_id=rung.subset_id, snapshot_id=snapshot_id,
                        size=rung.size or result.n_examples, train=result)


def evaluate_and_record(store: Store, model_ref: str, spec: EvalSpec, *, threads: int = 0,
                        run_id: str | None = None, progress: bool = False,
                        extra: dict[str, Any] | None = None) -> Evaluation:
    """Evaluate a model, store the evaluation (with its per-question outcomes), and put its
    score on the run that trained the model."""
    ev = evaluate_task(model_ref, spec, threads, progress)
    eval_id = store.experiments.save_evaluation(
        ev, model_ref=model_ref, finetune_run_id=run_id, params={
            "eval_seed": spec.eval_seed, "max_new_tokens": spec.max_new_tokens,
            "batch_size": spec.eval_batch_size, "decoding": "greedy",
            "questions_per_s": ev.questions_per_s, "new_tokens": ev.new_tokens,
            **(extra or {})})
    if run_id:
        store.experiments.update_finetune_metrics(run_id, {
            "eval_set": ev.eval_set, "accuracy": ev.accuracy,
            "exec_error_rate": ev.exec_error_rate})
    return Evaluation(eval_id=eval_id, model=model_ref, finetune_run_id=run_id, result=ev)


# --------------------------------------------------------------------------- the sequence
def run_experiment(store: Store, experiment_id: str, plan: Sequence[Rung],
                   training: TrainingParams, spec: EvalSpec, output: OutputSpec, *,
                   seed: int = 0, snapshot_id: int | None = None, pairs: Any = None,
                   eval_base: bool = False) -> Experiment:
    """The zero point (when asked), then every rung: train_and_record, evaluate_and_record;
    then the table with intervals, the curve and the artifacts."""
    threads = training.threads
    base = evaluate_and_record(
        store, training.base_model, spec, threads=threads, progress=output.progress,
        extra={"experiment_id": experiment_id, "size": 0}) if eval_base and spec.eval_n else None
    models = []
    for rung in plan:
        model = train_and_record(store, experiment_id, rung, training, output, seed=seed,
                                 snapshot_id=snapshot_id, pairs=pairs,
                                 extra={"eval_set": spec.eval_set, "eval_n": spec.eval_n})
        if spec.eval_n > 0:
            model.eval = evaluate_and_record(store, model.output_dir, spec, threads=threads,
                                             run_id=model.run_id,
                                             progress=output.progress).result
        models.append(model)
    result = Experiment.of(experiment_id, training, spec, models, base.result if base else None,
                           snapshot_id=snapshot_id,
                           output_dir=str((Path(output.output_root) / experiment_id).resolve()))
    result.publish()
    return result
