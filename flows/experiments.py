"""The experiments: finetune, DPO and the ladder are one sequence over three plans, and
evaluate is its last step alone.

    draw the data (subsets of a pinned snapshot, or the stored preference pairs)
      -> plan the rungs (tasks/experiments/plan.py, pure)
      -> per rung: train_and_record -> evaluate_and_record (flows/rungs.py)
      -> the table with intervals, the curve, the artifacts (flows/experiment_results.py)

Each config is one declaration per parameter, in parts (like RefreshConfig): what to train
on, how to train (tasks/experiments/params.py: SFTParams or DPOParams), how to evaluate,
where models go, and the warehouse. Flat names (`subset_size=`, `lora_r=`, `eval_n=`) are
accepted and routed to the part that declares them; the CLI flags are those names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field, field_validator, model_validator

from flows.config_tools import WarehouseField, nest
from flows.experiment_results import Evaluation, Experiment
from flows.rungs import (
    EvalSpec,
    OutputSpec,
    draw_ladder,
    draw_subset,
    evaluate_and_record,
    new_experiment_id,
    run_experiment,
    shared_tiny_base,
)
from tasks.errors import InputError
from tasks.experiments.params import DPOParams, SFTParams, TrainingParams
from tasks.experiments.plan import plan_dpo, plan_finetune, plan_ladder
from tasks.experiments.subsets import Strategy, parse_mix
from tasks.settings import Settings
from warehouse import Store


class _Config(Settings):
    """Flat names route to the part that declares them (flows/config_tools.py)."""

    @model_validator(mode="before")
    @classmethod
    def _flat_names(cls, data: Any) -> Any:
        return nest(cls, data)


class _Part(Settings):
    """One part of an experiment's form (data, training, evaluation, output)."""


_MIX_HELP = ("sources in set shares, e.g. procedural=0.5,tatqa=0.5 (nested across sizes); "
             "empty: the whole snapshot")
_UNVERIFIED_HELP = ("> 0: train instead on a noisy teacher's programs for the same "
                    "questions, this share wrong, unchecked (the curation ablation)")
_NOISE_HELP = ("the unverified arm's teacher: independent (each question its own mistake) or "
               "repeating (that share of the question types, each always wrong the same way)")
Noise = Literal["independent", "repeating"]


class SubsetData(_Part):
    """What one model trains on: a stored subset, or one drawn from the snapshot first."""

    subset_id: str = Field("", description="a stored subset id; empty: draw subset_size "
                           "examples first")
    subset_size: int = Field(0, ge=0, description="examples to draw (when no subset_id)")
    strategy: Strategy = Field("random", description="how the subset is drawn")
    mix: str = Field("", description=_MIX_HELP)
    seed: int = Field(0, description="subset selection seed")
    snapshot_id: int = Field(0, ge=0, description="snapshot to draw from; 0: the latest")
    unverified_rate: float = Field(0.0, ge=0, le=1, description=_UNVERIFIED_HELP)
    noise: Noise = Field("independent", description=_NOISE_HELP)

    @field_validator("mix")
    @classmethod
    def _mix(cls, v: str) -> str:
        parse_mix(v)  # a malformed mix is refused with the form, before anything is drawn
        return v

    @model_validator(mode="after")
    def _one_subset(self) -> SubsetData:
        if bool(self.subset_id) == bool(self.subset_size):
            raise ValueError("give exactly one of subset_id and subset_size")
        return self


class LadderData(_Part):
    """The rungs: nested subsets per size and strategy, each trained `repeats` times."""

    sizes: list[int] = Field(default_factory=lambda: [50, 150, 450],
                             description="subset sizes; nested: each contains the smaller")
    strategies: list[Strategy] = Field(default_factory=lambda: ["random"],
                                       description="one curve per selection strategy")
    mix: str = Field("", description=_MIX_HELP)
    seed: int = Field(0, description="subset selection seed")
    snapshot_id: int = Field(0, ge=0, description="snapshot to draw from; 0: the latest")
    repeats: int = Field(1, ge=1, le=64, description="models per rung, each with its own "
                         "training seed (data order, adapter init): the table shows their "
                         "mean and a 95% interval")
    unverified_rate: float = Field(0.0, ge=0, le=1, description="> 0: also an unverified "
                                   "arm on the first strategy's questions, this share wrong, "
                                   "unchecked")
    noise: Noise = Field("independent", description=_NOISE_HELP)
    arm_sizes: list[int] = Field(default_factory=list, description="sizes at which the "
                                 "other strategies and the unverified arm train; empty: every "
                                 "size")
    eval_base: bool = Field(True, description="evaluate the base model as the zero point")

    @field_validator("mix")
    @classmethod
    def _mix(cls, v: str) -> str:
        parse_mix(v)
        return v

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

    @model_validator(mode="after")
    def _arms_in_sizes(self) -> LadderData:
        if set(self.arm_sizes) - set(self.sizes):
            raise ValueError(f"arm_sizes {self.arm_sizes} must be among sizes {self.sizes}")
        return self


class PairData(_Part):
    """Which stored preference pairs DPO trains on (`distillery preferences` makes them)."""

    pair_type: Literal["all", "outcome", "step"] = Field("all", description="which pairs")
    max_pairs: int = Field(0, ge=0, description="at most this many (pair id order); 0: all")


class _Experiment(_Config):
    """What every experiment declares, in the form's order: what to train on (each
    experiment's own part), how to train, how to evaluate, where models go."""

    data: BaseModel
    training: TrainingParams
    evaluation: EvalSpec = Field(default_factory=EvalSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)
    warehouse: WarehouseField = ""


class FinetuneConfig(_Experiment):
    """One supervised fine-tune on a subset of the snapshot, then its evaluation."""

    data: SubsetData = Field(default_factory=lambda: SubsetData(subset_size=1000))
    training: SFTParams = Field(default_factory=SFTParams)


class DPOConfig(_Experiment):
    """DPO on the warehouse's preference pairs, from a base (usually an SFT run's folder)."""

    data: PairData = Field(default_factory=PairData)
    training: DPOParams = Field(default_factory=DPOParams)


class LadderConfig(_Experiment):
    """One model per size and strategy (and arm), `repeats` times each, with the same
    training settings; the base model as the zero point; curves with intervals."""

    data: LadderData = Field(default_factory=LadderData)
    training: SFTParams = Field(default_factory=SFTParams)


class EvaluateConfig(_Config):
    """Evaluate a saved model (a run's directory, a local path, an alias or an HF id)."""

    model: str = Field(description="model directory (data/models/<run>), local path, alias "
                       "(smollm2-135m) or HF id")
    finetune_run_id: str = Field("", description="the run that wrote this model; empty: "
                                 "looked up from the model directory")
    threads: int = Field(0, ge=0, description="CPU threads for torch; 0: torch's default")
    evaluation: EvalSpec = Field(default_factory=EvalSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)
    warehouse: WarehouseField = ""


@flow(name="finetune")
def finetune_flow(config: FinetuneConfig) -> Experiment:
    """Fine-tune a student on a subset (drawn first when only a size is given) and
    evaluate it; the run, its loss curve and its score land in the warehouse."""
    store, d = Store(config.warehouse), config.data
    subset = draw_subset(store, d)
    plan = plan_finetune(subset.subset_id, subset.size, subset.strategy,  # a stored one's own
                         config.training.train_seed, d.unverified_rate, d.noise)
    return run_experiment(store, new_experiment_id("ft"), plan, config.training,
                          config.evaluation, config.output, seed=d.seed,
                          snapshot_id=subset.snapshot_id)


@flow(name="dpo")
def dpo_flow(config: DPOConfig) -> Experiment:
    """Train a policy on the stored preference pairs with TRL's DPOTrainer (LoRA: the
    reference is the policy without its adapters), then evaluate it like an SFT run."""
    store = Store(config.warehouse)
    plan = plan_dpo(f"dpo ({config.data.pair_type} pairs)", config.training.train_seed)
    return run_experiment(store, new_experiment_id("dpo"), plan, config.training,
                          config.evaluation, config.output, pairs=config.data)


@flow(name="ladder")
def ladder_flow(config: LadderConfig) -> Experiment:
    """How much data does the student need, and which data: nested subsets per strategy,
    one model per size (each `repeats` times), an optional unverified arm, the base model
    as the zero point, one curve per strategy or arm with 95% intervals."""
    store, d = Store(config.warehouse), config.data
    snapshot_id, subsets = draw_ladder(store, d)
    experiment_id = new_experiment_id("ladder")
    plan = plan_ladder(subsets, sizes=d.sizes, arm_sizes=d.arm_sizes,
                       unverified_rate=d.unverified_rate,
                       train_seed=config.training.train_seed, repeats=d.repeats, mix=d.mix,
                       noise=d.noise)
    training = shared_tiny_base(store, subsets[d.strategies[0]][d.sizes[-1]], config.training,
                                Path(config.output.output_root) / experiment_id)
    return run_experiment(store, experiment_id, plan, training, config.evaluation,
                          config.output, seed=d.seed, snapshot_id=snapshot_id,
                          eval_base=d.eval_base)


@flow(name="evaluate")
def evaluate_flow(config: EvaluateConfig) -> Evaluation:
    """Evaluate a model: it writes programs, the sandbox runs them, answers are compared."""
    if config.evaluation.eval_n < 1:
        raise InputError("eval_n: an evaluation needs at least 1 question")
    store = Store(config.warehouse)
    ref = str(Path(config.model).resolve()) if Path(config.model).exists() else config.model
    run_id = config.finetune_run_id or store.experiments.finetune_run_for_output(ref)
    out = evaluate_and_record(store, ref, config.evaluation, threads=config.threads,
                              run_id=run_id, progress=config.output.progress)
    create_markdown_artifact(markdown=out.markdown(), key="evaluation",
                             description="Accuracy, execution errors and failures")
    return out
