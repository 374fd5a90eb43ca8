"""The preferences flow: the samples a warehouse keeps (right and wrong, with their execution
verdicts) -> reference solutions where a question has only wrong ones -> distinct-solution
sets -> outcome pairs + step pairs -> the preference_pairs GE suite -> stored pairs, and on
request the exports (TRL preference and KTO rows, RFT SFT rows, verifier labels). DPO on the
stored pairs is the `dpo` flow (flows/experiments.py).

The stages are tasks/preferences/stages.py; flows/pipeline.py keeps the books; the warehouse
facet `store.preferences` writes what they return."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Literal

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from flows.config_tools import WarehouseField
from flows.pipeline import PipelineRun
from quality.context import docs_dir_for
from quality.preferences import validate_pairs
from tasks.execute import ExecConfig
from tasks.experiments.export import export_examples, write_dataset
from tasks.preferences import export as pair_export
from tasks.preferences.llm_rollouts import make_continuer
from tasks.preferences.stages import (
    DistinctSolutions,
    OutcomePairs,
    ReferenceSolutions,
    StepPairs,
    StepRollouts,
    ValidatePairs,
)
from tasks.settings import Settings
from tasks.teachers.llm import LLMTeacherConfig
from warehouse import Store


class PreferencesConfig(Settings):
    """What to build from the stored samples, and where to export it."""

    solutions_per_question: int = Field(4, ge=1, le=64, description="distinct-solution sets: "
                                        "at most this many right solutions per question")
    min_distance: float = Field(0.05, ge=0, le=1, description="distinct-solution sets: "
                                "least relative edit distance between two kept signatures")
    outcome_pairs_per_question: int = Field(1, ge=1, le=64, description="outcome pairs per "
                                            "question (the wrong samples closest to a right "
                                            "one first)")
    reference_chosen: bool = Field(True, description="a question with only wrong samples "
                                   "gets the reference program (executed and checked) as "
                                   "its right sample")
    step_source: Literal["label", "rollout"] = Field(
        "label", description="first wrong step of a wrong sample: label = the step its "
        "teacher recorded (noisy teacher); rollout = the first step from whose prefix no "
        "rollout of the reference policy reaches the gold")
    rollouts: int = Field(4, ge=1, le=64, description="rollout: continuations per prefix")
    rollout_policy: Literal["reference", "teacher"] = Field(
        "reference", description="rollout: who continues the prefixes; reference: the "
        "reference program (exact, free); teacher: the endpoint in `teacher` (its cache, "
        "cost log and adaptive concurrency)")
    teacher: LLMTeacherConfig = Field(default_factory=LLMTeacherConfig, description="rollout "
                                      "with rollout_policy=teacher: the endpoint and model")
    limit: int | None = Field(None, ge=1, description="only the first N questions (by id)")
    out: str | None = Field(None, description="export folder: preference/, kto/, rft/, "
                            "verifier/ datasets inside; none: nothing exported")
    sft_format: Literal["messages", "prompt_completion"] = Field(
        "messages", description="format of the RFT (distinct-solution) SFT export")
    balanced_verifier: bool = Field(False, description="verifier export: as many right as "
                                    "wrong rows (the larger side sampled down)")
    seed: int = Field(0, description="seed of the verifier balancing")
    warehouse: WarehouseField = ""


class PreferencesSummary(BaseModel):
    """What a preferences run did: the flow's return value."""

    run_id: str
    counts: dict[str, Any]
    stage_seconds: dict[str, float]
    tables: dict[str, int]  # rows now in the warehouse: pairs by type, sets, labels
    exports: dict[str, dict[str, Any]] = {}  # name -> export_examples-style result
    warehouse: str


@flow(name="preferences", log_prints=True)
def preferences(config: PreferencesConfig | None = None) -> PreferencesSummary:
    """Distinct-solution sets, outcome and step preference pairs and verifier labels from
    the samples of a warehouse."""
    config = config or PreferencesConfig()
    store = Store(config.warehouse)
    run_id = str(flow_run.id or uuid.uuid4())
    run = PipelineRun(store, run_id, artifact_key="preferences")
    store.start_run(run_id, "preferences", config.model_dump())
    try:
        summary = _stages(config, store, run)
    except BaseException:
        store.finish_run(run_id, "failed", dict(run.counts), run.seconds)
        raise
    store.finish_run(run_id, "completed", dict(run.counts), run.seconds)
    create_markdown_artifact(key="preferences-summary", markdown="\n".join(
        ["# Preferences", "", "| count | n |", "|---|---|",
         *[f"| {k} | {v} |" for k, v in {**summary.counts, **summary.tables}.items()]]))
    return summary


def _stages(config: PreferencesConfig, store: Store, run: PipelineRun) -> PreferencesSummary:
    with run.timed("load"):
        groups = store.preferences.groups(config.limit)
    run.counts["questions"] = len(groups)
    run.counts["samples"] = sum(len(g.samples) for g in groups)
    if config.reference_chosen:
        groups = run.stage(ReferenceSolutions(ExecConfig()), groups)
    run.stage(DistinctSolutions(config.solutions_per_question, config.min_distance), groups)
    if config.step_source == "rollout":
        continuer = make_continuer(config.rollout_policy, config.teacher, store.llm,
                                   run.run_id)
        run.stage(StepRollouts(continuer, config.rollouts, ExecConfig()), groups)
    pairs = (run.stage(OutcomePairs(config.outcome_pairs_per_question), groups)
             + run.stage(StepPairs(config.step_source), groups))
    sample_questions = {s.sample_id: s.question_id for g in groups for s in g.samples}
    run.stage(ValidatePairs(validate_pairs, sample_questions, run.run_id,
                            docs_dir_for(store.path)), pairs)
    exports: dict[str, dict[str, Any]] = {}
    if config.out:
        with run.timed("export"):
            exports = export_all(store, Path(config.out), config)
    return PreferencesSummary(run_id=run.run_id, counts=dict(run.counts),
                              stage_seconds=run.seconds, tables=store.preferences.counts(),
                              exports=exports, warehouse=str(store.path))


def export_all(store: Store, out: Path, config: PreferencesConfig) -> dict[str, dict[str, Any]]:
    """Every dataset the warehouse has rows for, each in its folder under `out`."""
    prefs, done = store.preferences, {}
    pairs = prefs.pairs()
    meta = {"warehouse": str(store.path)}
    if pairs:
        for fmt in pair_export.PAIR_FORMATS:
            done[fmt] = write_dataset(pair_export.pair_rows(pairs, fmt), out / fmt,
                                      pair_export.features(fmt), fmt, metadata=meta)
    examples = prefs.solution_examples()
    if examples:
        done["rft"] = export_examples(examples, out / "rft", config.sft_format,
                                      metadata={**meta, "per_question":
                                                config.solutions_per_question})
    labels = prefs.verifier_rows(config.balanced_verifier, config.seed)
    if labels:
        done["verifier"] = write_dataset(
            pair_export.verifier_rows(labels), out / "verifier", pair_export.features(
                "verifier"), "verifier", metadata={**meta, "balanced": config.balanced_verifier})
    return done
