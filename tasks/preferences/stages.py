"""The stages of the preferences flow (flows/preferences.py), over `Group`s (one question and
its stored samples). Each decides; the runner keeps the books and the warehouse writes
`records` (kinds "samples", "solution_sets", "preference_pairs", "validation")."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tasks.checks import check_samples
from tasks.execute import ExecConfig, execute_programs
from tasks.stage import StageResult, reject
from tasks.teachers.reference import reference_samples

from .pairs import (
    Group,
    PreferencePair,
    distinct_solutions,
    first_wrong_step,
    outcome_pairs,
    step_pairs,
)
from .rollouts import Continuer, rollout_first_wrong_steps

PAIRS_QUALITY = "pairs_quality"


class ReferenceSolutions:
    """Stage: a question with wrong samples and no right one gets the reference teacher's
    program, executed in the sandbox and checked like any sample, so that the chosen side of
    its pairs is a stored sample that is right by execution (lineage, not an assumption)."""

    name = "reference_solutions"
    batch_size = None

    def __init__(self, config: ExecConfig) -> None:
        self.config = config

    def run(self, items: list[Group]) -> StageResult[Group]:
        need = [g for g in items if g.wrong() and not g.right()]
        made, no_program = reference_samples([g.question for g in need])
        counts: Counter[str] = Counter(reference_no_program=len(no_program))
        if made:
            results = execute_programs([s.program or "" for s in made],
                                       timeout_s=self.config.exec_timeout_s,
                                       memory_mb=self.config.exec_memory_mb,
                                       workers=self.config.exec_workers)
            # Verdicts only: the question was decided by its refresh, not here.
            check_samples(made, results, {g.question_id: g.question for g in need})
            by_q = {g.question_id: g for g in need}
            for s in made:
                by_q[s.question_id].samples.append(s)
            counts.update(reference_added=len(made),
                          reference_right=sum(1 for s in made if s.correct))
        return StageResult(kept=items, counts=counts, records={"samples": made})


class DistinctSolutions:
    """Stage: up to `n` right solutions per question, distinct by signature then edit
    distance (tasks/preferences/pairs.py). Records one `solution_sets` row per solution."""

    name = "distinct_solutions"
    batch_size = None

    def __init__(self, n: int, min_distance: float) -> None:
        self.n, self.min_distance = n, min_distance

    def run(self, items: list[Group]) -> StageResult[Group]:
        rows = []
        for g in items:
            for rank, (s, sig) in enumerate(distinct_solutions(g, self.n, self.min_distance)):
                rows.append({"question_id": g.question_id, "sample_id": s.sample_id,
                             "rank": rank, "signature": sig})
        counts = Counter(solution_set_questions=len({r["question_id"] for r in rows}),
                         distinct_solutions=len(rows))
        # The questions seen go too: a question with no right solution left loses its rows.
        return StageResult(kept=items, counts=counts, records={
            "solution_sets": rows, "solution_set_questions": [g.question_id for g in items]})


class OutcomePairs:
    """Stage: groups in, outcome pairs out (rule: pairs.OUTCOME_RULE)."""

    name = "outcome_pairs"
    batch_size = None

    def __init__(self, per_question: int) -> None:
        self.per_question = per_question

    def run(self, items: list[Group]) -> StageResult[PreferencePair]:
        pairs = [p for g in items for p in outcome_pairs(g, self.per_question)]
        return StageResult(kept=pairs, counts=Counter(outcome_pairs=len(pairs)))


class StepRollouts:
    """Stage: the first wrong step of every wrong sample found by rollouts of a policy
    (tasks/preferences/rollouts.py), kept on the sample as meta["rollout_step"] for the
    step_pairs stage. Counts how often it agrees with a step the teacher recorded."""

    name = "step_rollouts"
    batch_size = None

    def __init__(self, continuer: Continuer, k: int, config: ExecConfig) -> None:
        self.continuer, self.k, self.config = continuer, k, config

    def run(self, items: list[Group]) -> StageResult[Group]:
        wrong = [s for g in items for s in g.wrong()]
        found = rollout_first_wrong_steps(wrong, {g.question_id: g.question for g in items},
                                          self.continuer, self.k, self.config)
        counts: Counter[str] = Counter()
        for s in wrong:
            step = found.get(s.sample_id)
            s.meta = {**(s.meta or {}), "rollout_step": step}
            counts["rollout_found" if step is not None else "rollout_not_found"] += 1
            label = first_wrong_step(s, "label")
            if label is not None and step is not None:
                counts["rollout_agrees_with_label" if label == step
                       else "rollout_disagrees_with_label"] += 1
        counts.update(getattr(self.continuer, "counts", {}))  # an LLM policy's requests, cost
        return StageResult(kept=items, counts=counts)


class StepPairs:
    """Stage: groups in, step pairs out (rule: pairs.STEP_RULE or ROLLOUT_RULE). Wrong
    samples that give no pair are counted by why (`step_skipped.<why>`): they stay what they
    were, samples."""

    name = "step_pairs"
    batch_size = None

    def __init__(self, source: str = "label") -> None:
        self.source = source

    def run(self, items: list[Group]) -> StageResult[PreferencePair]:
        pairs: list[PreferencePair] = []
        counts: Counter[str] = Counter()
        for g in items:
            made, skipped = step_pairs(g, self.source)
            pairs += made
            counts.update(f"step_skipped.{why}" for _, why in skipped)
        counts["step_pairs"] = len(pairs)
        return StageResult(kept=pairs, counts=counts)


def pair_frame(pairs: list[PreferencePair], sample_questions: Mapping[str, str]) -> Any:
    """The rows the preference_pairs suite reads (quality/preferences.py PAIR_COLUMNS)."""
    import pandas as pd

    return pd.DataFrame([{
        "pair_id": p.pair_id, "pair_type": p.pair_type, "question_id": p.question_id,
        "prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected,
        "chosen_question_id": sample_questions.get(p.chosen_sample_id),
        "rejected_question_id": sample_questions.get(p.rejected_sample_id),
        "chosen_correct": p.chosen_correct, "rejected_correct": p.rejected_correct,
    } for p in pairs], dtype=object)


Validator = Callable[..., Any]


class ValidatePairs:
    """Stage: the preference_pairs GE suite over every pair of the run; a pair that fails a
    critical expectation leaves under that expectation's name, the others are recorded.
    The validator is passed in (quality.preferences.validate_pairs): tasks/ does not import
    quality/."""

    name = PAIRS_QUALITY
    batch_size = None

    def __init__(self, validate: Validator, sample_questions: Mapping[str, str], run_id: str,
                 docs_dir: str | Path | None = None) -> None:
        self.validate, self.sample_questions = validate, sample_questions
        self.run_id, self.docs_dir = run_id, docs_dir

    def run(self, items: list[PreferencePair]) -> StageResult[PreferencePair]:
        if not items:
            return StageResult()
        outcome = self.validate(pair_frame(items, self.sample_questions), run_id=self.run_id,
                                docs_dir=self.docs_dir)
        kept = [p for p in items if p.pair_id not in outcome.failed]
        rejections = [reject(pid, self.name, why, "pair failed the preference_pairs suite")
                      for pid, why in sorted(outcome.failed.items())]
        return StageResult(kept=kept, rejections=rejections,
                           counts=Counter(pairs_kept=len(kept)),
                           records={"preference_pairs": kept,
                                    "validation": outcome.suite_rows()})
