"""Finetune, evaluate and ladder flows: subset -> export -> train -> evaluate -> record.

Only the order of stages, parameters and artifacts live here: training and evaluation are
in tasks/experiments/ (finetune.py, evaluate.py), subsets/export in flows/subsets.py (plain
functions), the SQL in warehouse/. The warehouse is read once before training and written
in short transactions after it: no connection is held while a model trains.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any, Literal

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flows.preferences import DPORun, run_dpo
from flows.subsets import ExportConfig, SubsetConfig, create_subsets, export_subset
from tasks.errors import InputError
from tasks.experiments.evaluate import EVAL_SETS_HELP, EvalResult, evaluate_path, load_eval_set
from tasks.experiments.export import write_dataset
from tasks.experiments.finetune import FinetuneResult, TrainParams, finetune
from tasks.experiments.ladder import plot_learning_curve, save_tiny_base
from tasks.experiments.student import TINY
from tasks.preferences.dpo import DPOParams
from warehouse import Store
from warehouse.subsets import SubsetInfo

Strategy = Literal["random", "stratified", "diversity", "difficulty"]

# The config models are built from parts in the order a user fills the form: what to train
# on, which model and how to train it (TrainParams, the one training declaration), how to
# evaluate, where things go. Pydantic orders inherited fields from the last base to the
# first, hence the reversed base lists below. Empty string / 0 stand for "not set" so the
# Prefect UI form shows plain inputs instead of a type chooser.


class _Subset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subset_id: str = Field("", description="a stored subset id; empty: draw a subset of "
                           "subset_size first")
    subset_size: int = Field(0, ge=0, description="examples to draw from the snapshot "
                             "(when no subset_id is given)")
    strategy: Strategy = Field("random", description="how the subset is drawn")
    seed: int = Field(0, description="subset selection seed")
    snapshot_id: int = Field(0, ge=0, description="snapshot to draw from; 0: the latest")


class _Method(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The form's first field: which trainer, and so which of the sections below apply.
    method: Literal["sft", "dpo"] = Field("sft", description=(
        "sft: supervised fine-tuning on a subset of the snapshot; dpo: TRL's DPOTrainer on "
        "the warehouse's preference pairs (`distillery preferences` makes them), starting "
        "from base_model, usually an SFT run's model folder"))


class _Pairs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pair_type: Literal["all", "outcome", "step"] = Field("all", description="dpo: which "
                                                         "preference pairs to train on")
    max_pairs: int = Field(0, ge=0, description="dpo: at most this many pairs (pair id "
                           "order); 0: all")
    dpo: DPOParams = Field(default_factory=DPOParams, description="dpo: the DPO settings "
                           "(the training fields above are sft's; base_model is shared)")


class _Eval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    eval_set: str = Field("procedural-heldout", description=EVAL_SETS_HELP)
    eval_n: int = Field(200, ge=0, description="questions evaluated (0: skip evaluation)")
    eval_seed: int = Field(0, description="seed of the procedural held-out questions")
    eval_batch_size: int = Field(64, ge=1, le=1024, description="questions generated at "
                                 "once (on a CPU 64 rows decode 2x the tokens/s of 16)")
    max_new_tokens: int = Field(256, ge=8, le=4096, description="longest answer in tokens "
                                "(generation stops earlier at the end of the program)")


class _Output(BaseModel):
    model_config = ConfigDict(extra="forbid")

    output_root: str = Field("data/models",
                             description="folder of the models: one subfolder per run id")
    warehouse: str = Field("", description="DuckDB file; empty: $DISTILLERY_WAREHOUSE or "
                           "data/warehouse.duckdb")
    progress: bool = Field(False, description="progress bars on the terminal")


def training_params(config: BaseModel) -> TrainParams:
    """The TrainParams part of a flow config, as its own model."""
    return TrainParams.model_validate(config.model_dump(include=set(TrainParams.model_fields)))


class FinetuneConfig(_Output, _Eval, _Pairs, TrainParams, _Subset, _Method):
    """One fine-tune. sft: give subset_id, or subset_size (+ strategy, seed) to draw the
    subset from the snapshot first. dpo: the stored preference pairs, no subset."""

    unverified_rate: float = Field(0.0, ge=0, le=1, description="> 0: train instead on a "
                                   "noisy teacher's programs for the subset's questions, "
                                   "this share wrong, unchecked (the curation ablation)")

    @model_validator(mode="after")
    def _one_subset(self) -> FinetuneConfig:
        if self.method == "sft" and bool(self.subset_id) == bool(self.subset_size):
            raise ValueError("give exactly one of subset_id and subset_size")
        return self


class EvaluateConfig(_Output, _Eval):
    """Evaluate a saved model (a run's directory, a local path, an alias or an HF id)."""

    model: str = Field(description="model directory (data/models/<run>), local path, alias "
                       "(smollm2-135m) or HF id")
    finetune_run_id: str = Field("", description="the run that wrote this model; empty: "
                                 "looked up from the model directory")
    threads: int = Field(0, ge=0, description="CPU threads for torch; 0: torch's default")


class _LadderData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sizes: list[int] = Field(default_factory=lambda: [50, 150, 450],
                             description="subset sizes; nested: each contains the smaller")
    strategies: list[Strategy] = Field(default_factory=lambda: ["random"],
                                       description="one curve per selection strategy")
    seed: int = Field(0, description="subset selection seed")
    snapshot_id: int = Field(0, ge=0, description="snapshot to draw from; 0: the latest")
    unverified_rate: float = Field(0.0, ge=0, le=1, description="> 0: also an unverified "
                                   "arm, trained on a noisy teacher's programs for the same "
                                   "questions as the first strategy's subsets, with this "
                                   "share wrong, unchecked")
    arm_sizes: list[int] = Field(default_factory=list, description="sizes at which the "
                                 "other strategies and the unverified arm train (ablations "
                                 "at one size); empty: every size")
    eval_base: bool = Field(True, description="evaluate the base model as the zero point")

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, v: list[int]) -> list[int]:
        if not v or any(s < 1 for s in v):
            raise ValueError("sizes must be positive")
        return sorted(set(v))

    @field_validator("strategies")
    @classmethod
    def _strategies(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("give at least one strategy")
        return list(dict.fromkeys(v))


class LadderConfig(_Output, _Eval, TrainParams, _LadderData):
    """One model per subset size and strategy, every rung with the same training settings
    (max_steps > 0: the same step budget; else the same number of epochs), the base model
    as the zero point, a learning curve per strategy."""

    @model_validator(mode="after")
    def _arms_in_sizes(self) -> LadderConfig:
        if set(self.arm_sizes) - set(self.sizes):
            raise ValueError(f"arm_sizes {self.arm_sizes} must be among sizes {self.sizes}")
        return self


# --------------------------------------------------------------------------- tasks
# log_prints off: Prefect's print capture breaks dill's stdout capture inside datasets'
# fingerprinting (it would log whole bytecode disassemblies and cost the trainer CPU).
@task(cache_policy=NO_CACHE, name="train", log_prints=False)
def train_task(data_dir: str, output_dir: str, params: TrainParams,
               progress: bool) -> FinetuneResult:
    from datasets import load_from_disk

    return finetune(load_from_disk(data_dir), output_dir, params, progress=progress)


@task(cache_policy=NO_CACHE, name="evaluate-model", log_prints=False)
def evaluate_task(model_ref: str, eval_set: str, eval_n: int, eval_seed: int,
                  batch_size: int, max_new_tokens: int, progress: bool,
                  threads: int = 0) -> EvalResult:
    questions = load_eval_set(eval_set, n=eval_n, seed=eval_seed)
    bar = _bar(len(questions), f"eval {Path(model_ref).name}") if progress else None
    try:
        return evaluate_path(model_ref, questions, threads=threads, eval_set=eval_set,
                             batch_size=batch_size,
                             max_new_tokens=max_new_tokens,
                             progress=bar.update if bar else None)
    finally:
        if bar:
            bar.close()


def _bar(total: int, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="q")


def _eval_params(config: _Eval, result: EvalResult) -> dict[str, Any]:
    return {"eval_seed": config.eval_seed, "max_new_tokens": config.max_new_tokens,
            "batch_size": config.eval_batch_size, "decoding": "greedy",
            "questions_per_s": result.questions_per_s, "new_tokens": result.new_tokens}


def _record_eval(store: Store, result: EvalResult, model_ref: str, config: _Eval,
                 run_id: str | None, extra: dict[str, Any] | None = None) -> str:
    return store.experiments.save_evaluation(
        result, model_ref=model_ref, finetune_run_id=run_id,
        params={**_eval_params(config, result), **(extra or {})})


class Rung(BaseModel):
    """One trained model: what it was trained on, how training went, how it scored."""

    run_id: str
    subset_id: str
    size: int
    snapshot_id: int
    output_dir: str
    arm: str  # verified | unverified
    curve: str  # the strategy (or arm) this model is a point of
    train: FinetuneResult
    eval: EvalResult | None = None


class Evaluation(BaseModel):
    """One stored evaluation of a model."""

    eval_id: str
    model: str
    finetune_run_id: str | None
    result: EvalResult


class LadderResult(BaseModel):
    """A ladder run: the zero point, every rung, the table and the curve."""

    ladder_id: str
    snapshot_id: int
    base_model: str
    rows: list[dict[str, Any]]  # one per curve and size (examples=0: the base model)
    curve_png: str
    output_dir: str
    runs: list[Rung]
    base_eval: EvalResult | None = None


def _run_one(store: Store, config: FinetuneConfig | LadderConfig, subset: SubsetInfo,
             run_id: str, output_dir: Path, params: TrainParams, curve: str,
             arm: dict[str, Any] | None = None) -> Rung:
    """Export -> train -> record -> evaluate -> record, for one stored subset.

    `arm` (the unverified arm) replaces the exported subset by other training data for the
    same questions: {"data": hf dataset dir, "arm": name, ...} stored with the params."""
    if arm is None:
        export = export_subset(ExportConfig(subset_id=subset.subset_id,
                                            format="prompt_completion",
                                            out=str(output_dir / "data"),
                                            warehouse=str(store.path)))
        data, extra = export.hf, {"arm": "verified"}
    else:
        data, extra = arm["data"], {k: v for k, v in arm.items() if k != "data"}
    store.experiments.start_finetune_run(
        run_id, subset_id=subset.subset_id, snapshot_id=subset.snapshot_id,
        base_model=config.base_model, output_dir=str(output_dir),
        params={**params.stored(), "eval_set": config.eval_set, "eval_n": config.eval_n,
                **extra})
    try:
        # No warehouse connection is open from here until training returns.
        result = train_task(data, str(output_dir), params, config.progress)
    except BaseException:
        store.experiments.finish_finetune_run(run_id, status="failed")
        raise
    metrics = {"first_loss": result.first_loss, "final_loss": result.final_loss,
               "steps": result.steps, "n_examples": result.n_examples,
               "n_parameters": result.n_parameters, "n_trainable": result.n_trainable,
               **result.metrics}
    store.experiments.finish_finetune_run(
        run_id, status="completed", loss_curve=result.loss_curve, metrics=metrics,
        train_seconds=result.train_seconds, train_tokens=result.train_tokens,
        tokens_per_s=result.tokens_per_s, device=result.device)
    rung = Rung(run_id=run_id, subset_id=subset.subset_id, size=subset.size,
                snapshot_id=subset.snapshot_id, output_dir=str(output_dir), arm=extra["arm"],
                curve=curve, train=result)
    if config.eval_n > 0:
        ev = evaluate_task(str(output_dir), config.eval_set, config.eval_n, config.eval_seed,
                           config.eval_batch_size, config.max_new_tokens, config.progress,
                           getattr(config, "threads", 0))
        _record_eval(store, ev, str(output_dir), config, run_id)
        store.experiments.update_finetune_metrics(
            run_id, {"eval_set": ev.eval_set, "accuracy": ev.accuracy,
                     "exec_error_rate": ev.exec_error_rate})
        rung.eval = ev
    return rung


def _new_run_id(prefix: str) -> str:
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


# --------------------------------------------------------------------------- flows
@flow(name="finetune")
def finetune_flow(config: FinetuneConfig) -> Rung | DPORun:
    """Fine-tune a student on a subset (drawn first when only a size is given) and
    evaluate it; the run, its loss curve and its score land in the warehouse."""
    store = Store(config.warehouse or None)
    if config.method == "dpo":
        return _dpo(store, config)
    subset_id = config.subset_id or create_subsets(SubsetConfig(
        size=config.subset_size, strategy=config.strategy, seed=config.seed,
        snapshot_id=config.snapshot_id or None, warehouse=str(store.path))).subsets[-1].subset_id
    subset = store.subsets.load_subset(subset_id)
    run_id = _new_run_id("ft")
    output_dir = (Path(config.output_root) / run_id).resolve()
    arm = None
    if config.unverified_rate > 0:
        arm = _unverified_data(store, subset.subset_id, output_dir / "data",
                               config.unverified_rate, config.seed)
    out = _run_one(store, config, subset, run_id, output_dir, training_params(config),
                   curve=config.strategy, arm=arm)
    _finetune_artifact(out)
    return out


def _dpo(store: Store, config: FinetuneConfig) -> DPORun:
    """DPO on the warehouse's preference pairs (exported into the run's folder, so the run
    keeps what it trained on), then the same evaluation as an SFT run."""
    from tasks.preferences import export as pair_export
    from tasks.preferences.dpo import load_pairs

    rows = store.preferences.pairs(None if config.pair_type == "all" else config.pair_type)
    if config.max_pairs:
        rows = rows[:config.max_pairs]
    if not rows:
        raise InputError(f"{store.path}: no {config.pair_type} preference pairs; run "
                         "`distillery preferences` first")
    run_id = _new_run_id("dpo")
    output_dir = (Path(config.output_root) / run_id).resolve()
    write_dataset(pair_export.pair_rows(rows, "preference"), output_dir / "data",
                  pair_export.features("preference"), "preference",
                  metadata={"warehouse": str(store.path), "pair_type": config.pair_type})
    out = run_dpo(store, load_pairs(output_dir / "data"), config.base_model, config.dpo,
                  output_dir, run_id, {"method": "dpo", "pair_type": config.pair_type,
                                       "max_pairs": config.max_pairs,
                                       **config.dpo.model_dump(), "eval_set": config.eval_set,
                                       "eval_n": config.eval_n})
    if config.eval_n > 0:
        out.eval = evaluate_task(str(output_dir), config.eval_set, config.eval_n,
                                 config.eval_seed, config.eval_batch_size,
                                 config.max_new_tokens, config.progress, config.threads)
        _record_eval(store, out.eval, str(output_dir), config, run_id)
        store.experiments.update_finetune_metrics(
            run_id, {"eval_set": out.eval.eval_set, "accuracy": out.eval.accuracy,
                     "exec_error_rate": out.eval.exec_error_rate})
    return out


@flow(name="evaluate")
def evaluate_flow(config: EvaluateConfig) -> Evaluation:
    """Evaluate a model: it writes programs, the sandbox runs them, answers are compared."""
    if config.eval_n < 1:
        raise InputError("eval_n: an evaluation needs at least 1 question")
    store = Store(config.warehouse or None)
    ref = config.model
    if Path(ref).exists():
        ref = str(Path(ref).resolve())
    run_id = config.finetune_run_id or store.experiments.finetune_run_for_output(ref)
    ev = evaluate_task(ref, config.eval_set, config.eval_n, config.eval_seed,
                       config.eval_batch_size, config.max_new_tokens, config.progress,
                       config.threads)
    eval_id = _record_eval(store, ev, ref, config, run_id)
    create_markdown_artifact(markdown=_eval_markdown(ref, ev), key="evaluation",
                             description="Accuracy, execution errors and failures")
    return Evaluation(eval_id=eval_id, model=ref, finetune_run_id=run_id, result=ev)


@flow(name="ladder")
def ladder_flow(config: LadderConfig) -> LadderResult:
    """How much data does the student need, and which data: nested subsets per selection
    strategy, one model per size with the same training settings, optionally an unverified
    arm of the same sizes, the base model as the zero point, one curve per strategy/arm."""
    store = Store(config.warehouse or None)
    ladders = {strategy: create_subsets(SubsetConfig(
        sizes=config.sizes if strategy == config.strategies[0] else
        (config.arm_sizes or config.sizes), strategy=strategy, seed=config.seed,
        snapshot_id=config.snapshot_id or None, warehouse=str(store.path)))
        for strategy in config.strategies}
    first = ladders[config.strategies[0]]
    ladder_id = _new_run_id("ladder")
    root = (Path(config.output_root) / ladder_id).resolve()
    params = training_params(config)
    base_ref = config.base_model
    if config.base_model == TINY:
        # One base for every rung (tokenizer from the largest subset, which contains the
        # others; one init seed), saved so each rung and the zero point load the same model.
        base_ref = str(root / "base")
        _save_tiny_base(store, first.subsets[-1].subset_id, base_ref, config.train_seed)
        params = params.model_copy(update={"base_model": base_ref,
                                           "learning_rate": params.resolved_lr()})
    zero: EvalResult | None = None
    if config.eval_n > 0 and config.eval_base:
        zero = evaluate_task(base_ref, config.eval_set, config.eval_n, config.eval_seed,
                             config.eval_batch_size, config.max_new_tokens, config.progress,
                             getattr(config, "threads", 0))
        _record_eval(store, zero, base_ref, config, None, {"ladder_id": ladder_id, "size": 0})
    rungs: list[Rung] = []
    for strategy, made in ladders.items():
        for made_subset in made.subsets:
            if strategy != config.strategies[0] and not _at_arm_size(config, made_subset.size):
                continue
            name = f"{strategy}-n{made_subset.size}"
            subset = store.subsets.load_subset(made_subset.subset_id)
            rungs.append(_run_one(store, config, subset, f"{ladder_id}-{name}", root / name,
                                  params, curve=strategy))
    if config.unverified_rate > 0:
        for made_subset in first.subsets:
            if not _at_arm_size(config, made_subset.size):
                continue
            name = f"unverified-n{made_subset.size}"
            arm = _unverified_data(store, made_subset.subset_id, root / name / "data",
                                   config.unverified_rate, config.seed)
            rungs.append(_run_one(
                store, config, store.subsets.load_subset(made_subset.subset_id),
                f"{ladder_id}-{name}", root / name, params, arm=arm,
                curve=f"unverified ({config.unverified_rate:.0%} wrong)"))
    rows = _ladder_rows(zero, rungs)
    result = LadderResult(ladder_id=ladder_id, snapshot_id=first.snapshot_id,
                          base_model=config.base_model, rows=rows,
                          curve_png=str(_plot_curve(rows, root / "curve.png", config)),
                          output_dir=str(root), runs=rungs, base_eval=zero)
    _ladder_artifacts(result, config)
    return result


def _at_arm_size(config: LadderConfig, size: int) -> bool:
    return not config.arm_sizes or size in config.arm_sizes


def _unverified_data(store: Store, subset_id: str, out: Path, rate: float,
                     seed: int) -> dict[str, Any]:
    """The subset's questions answered by the noisy teacher, unchecked, as an HF dataset:
    what training on unverified teacher output of the same size looks like."""
    from tasks.experiments.ladder import unverified_rows, write_rows

    ids = [e.question_id for e in store.subsets.subset_examples(subset_id)]
    rows, errors = unverified_rows(store.load_questions(ids), rate, seed)
    return {"data": str(write_rows(rows, out)), "arm": "unverified", "error_rate": rate,
            "wrong_examples": errors}


def _save_tiny_base(store: Store, subset_id: str, out: str, seed: int) -> None:
    save_tiny_base(store.subsets.subset_examples(subset_id), out, seed)


def _ladder_rows(zero: EvalResult | None, rungs: list[Rung]) -> list[dict[str, Any]]:
    rows = []
    if zero is not None:
        rows.append({"curve": "base", "examples": 0, "run_id": "base",
                     "accuracy": round(zero.accuracy, 4),
                     "exec_error_rate": round(zero.exec_error_rate, 4),
                     "no_program_rate": round(zero.no_program_rate, 4), "train_seconds": 0.0,
                     "final_loss": None, "tokens_per_s": None,
                     "questions_per_s": zero.questions_per_s})
    nan = float("nan")
    for r in rungs:
        ev, t = r.eval, r.train
        rows.append({"curve": r.curve, "examples": r.size, "run_id": r.run_id,
                     "accuracy": round(ev.accuracy, 4) if ev else nan,
                     "exec_error_rate": round(ev.exec_error_rate, 4) if ev else nan,
                     "no_program_rate": round(ev.no_program_rate, 4) if ev else nan,
                     "train_seconds": t.train_seconds,
                     "final_loss": None if t.final_loss is None else round(t.final_loss, 4),
                     "tokens_per_s": t.tokens_per_s,
                     "questions_per_s": ev.questions_per_s if ev else None})
    return rows


def _budget(config: LadderConfig) -> str:
    return (f"{config.max_steps} steps per size" if config.max_steps
            else f"{config.epochs:g} epochs per size")


def _plot_curve(rows: list[dict[str, Any]], path: Path, config: LadderConfig) -> Path:
    return plot_learning_curve(
        rows, path, ylabel=f"accuracy on {config.eval_set}",
        title=f"{config.base_model}: {_budget(config)}")


def _finetune_artifact(out: Rung) -> None:
    t = out.train
    lines = [f"# Finetune `{out.run_id}`", "",
             f"Subset `{out.subset_id}` ({out.size} examples, snapshot "
             f"{out.snapshot_id}), model in `{out.output_dir}`.", "",
             "| metric | value |", "|---|---|",
             f"| steps | {t.steps} |", f"| first loss | {t.first_loss} |",
             f"| final loss | {t.final_loss} |",
             f"| train seconds | {t.train_seconds} |",
             f"| tokens/s | {t.tokens_per_s} |", f"| device | {t.device} |"]
    if out.eval:
        e = out.eval
        lines += [f"| accuracy ({e.eval_set}, n={e.n}) | {e.accuracy:.3f} |",
                  f"| exec error rate | {e.exec_error_rate:.3f} |"]
    create_markdown_artifact(markdown="\n".join(lines), key="finetune-summary",
                             description="Training and evaluation of this run")


def _eval_markdown(ref: str, ev: EvalResult) -> str:
    lines = [f"# Evaluation of `{ref}`", "",
             f"{ev.eval_set}, n={ev.n}: accuracy **{ev.accuracy:.3f}**, exec errors "
             f"{ev.exec_error_rate:.3f}, no program {ev.no_program_rate:.3f} "
             f"({ev.seconds:.1f}s).", "", "| status | gold | predicted | question |",
             "|---|---|---|---|"]
    lines += [f"| {f['status']} | {f['gold']} | {f['predicted']} | "
              f"{f['question'][:80].replace('|', '/')} |" for f in ev.failures[:10]]
    return "\n".join(lines)


def _ladder_artifacts(result: LadderResult, config: LadderConfig) -> None:
    import base64

    png = base64.b64encode(Path(result.curve_png).read_bytes()).decode()
    header = ["curve", "examples", "accuracy", "exec_error_rate", "no_program_rate",
              "train_seconds", "final_loss", "run_id"]
    lines = [f"# Ladder `{result.ladder_id}`", "",
             f"Base model `{config.base_model}`, {_budget(config)}, "
             f"{', '.join(config.strategies)} subsets of snapshot {result.snapshot_id}"
             + (f", unverified arm at {config.unverified_rate:.0%} wrong"
                if config.unverified_rate else "") + ", evaluated on "
             f"{config.eval_set} (n={config.eval_n}).", "",
             f"![learning curve](data:image/png;base64,{png})", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(r[h]) for h in header) + " |" for r in result.rows]
    lines += ["", f"Curve: `{result.curve_png}`"]
    create_markdown_artifact(markdown="\n".join(lines), key="ladder-curve",
                             description="Accuracy vs training examples")
    create_table_artifact(table=result.rows, key="ladder-table",
                          description="One row per curve and size; examples=0 is the base "
                          "model")
