"""Distinct-solution sets and preference pairs from the executed samples of a question.

Rules (each stored with its pairs in `preference_pairs.rule`, so a pair says why it exists):
- distinct solutions: the right samples of a question, lowest sample_idx first, each kept when
  its signature (tasks/preferences/signature.py) differs from every kept one by at least
  `min_distance` (relative edit distance); at most `n` per question.
- outcome pairs: rejected = a wrong sample (it ran, its answer is not the gold one), chosen = the
  right sample closest to it (smallest signature edit distance): the pair differs where the
  mistake is, not in style. With several wrong samples the closest pairs come first.
- step pairs: the first wrong step of a wrong sample is `meta.error_step` where its teacher
  recorded it (the noisy teacher: exact by construction). The pair is (prompt + the steps
  before it, the continuation of a right program sharing those steps, the wrong step).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tasks.render import student_prompt
from tasks.types import Question, Sample, stable_hash

from .signature import program_signature, relative_distance, split_steps

OUTCOME_RULE = "outcome:closest-right-to-wrong(signature edit distance)"
STEP_RULE = "step:meta.error_step;chosen=continuation of a right program with the same prefix"
ROLLOUT_RULE = ("step:rollouts(first prefix from which no continuation reaches the gold);"
                "chosen=continuation of a right program with the same prefix")


@dataclass
class Group:
    """One question and its stored samples (right, wrong and failed)."""

    question: Question
    samples: list[Sample] = field(default_factory=list)

    @property
    def question_id(self) -> str:
        return self.question.question_id

    def right(self) -> list[Sample]:
        return _ordered(s for s in self.samples if s.exec_status == "ok" and s.correct
                        and s.program)

    def wrong(self) -> list[Sample]:
        """Samples that ran and gave a wrong answer (not those that failed to run: a crash
        is a different lesson, and the warehouse may not know the gold for them)."""
        return _ordered(s for s in self.samples if s.exec_status == "ok"
                        and s.correct is False and s.program)


@dataclass
class PreferencePair:
    """One (prompt, chosen, rejected) with lineage to both samples.

    prompt: the rendered user turn (tasks.render.student_prompt), the same text SFT uses.
    prefix: for step pairs, the steps before the first wrong one (the start of the assistant
    turn); "" for outcome pairs. chosen/rejected: program text after the prefix."""

    pair_type: str  # outcome | step
    question_id: str
    chosen_sample_id: str
    rejected_sample_id: str
    prompt: str
    chosen: str
    rejected: str
    rule: str
    prefix: str = ""
    step: int | None = None
    chosen_correct: bool | None = None
    rejected_correct: bool | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def pair_id(self) -> str:
        return stable_hash("pair", self.pair_type, self.chosen_sample_id,
                           self.rejected_sample_id, self.step)


def _ordered(samples: Iterable[Sample]) -> list[Sample]:
    return sorted(samples, key=lambda s: (s.sample_idx, s.teacher, s.sample_id))


def distinct_solutions(group: Group, n: int, min_distance: float = 0.0
                       ) -> list[tuple[Sample, str]]:
    """Up to `n` right samples with pairwise different signatures (see module docstring)."""
    kept: list[tuple[Sample, str]] = []
    for s in group.right():
        sig = program_signature(s.program or "")
        if any(sig == other or relative_distance(sig, other) < min_distance
               for _, other in kept):
            continue
        kept.append((s, sig))
        if len(kept) >= n:
            break
    return kept


def _prompt(q: Question) -> str:
    return student_prompt(q.text, q.context)


def outcome_pairs(group: Group, per_question: int = 1) -> list[PreferencePair]:
    right, wrong = group.right(), group.wrong()
    if not right or not wrong:
        return []
    right_sigs = [(s, program_signature(s.program or "")) for s in right]
    ranked = []
    for w in wrong:
        w_sig = program_signature(w.program or "")
        dist, chosen = min(((relative_distance(w_sig, sig), s) for s, sig in right_sigs),
                           key=lambda t: t[0])
        ranked.append((dist, w, chosen))
    ranked.sort(key=lambda t: t[0])  # stable: ties keep the sample order
    return [PreferencePair(
        pair_type="outcome", question_id=group.question_id, chosen_sample_id=c.sample_id,
        rejected_sample_id=w.sample_id, prompt=_prompt(group.question),
        chosen=(c.program or "").strip(), rejected=(w.program or "").strip(), rule=OUTCOME_RULE,
        chosen_correct=c.correct, rejected_correct=w.correct,
        meta={"distance": round(dist, 4), "error_kind": w.meta.get("error_kind")})
        for dist, w, c in ranked[:per_question]]


def first_wrong_step(sample: Sample, source: str = "label") -> int | None:
    """The 0-based index of the first wrong step: where the teacher recorded it (`label`,
    meta.error_step) or where rollouts found it (`rollout`, meta.rollout_step, set by the
    step_rollouts stage)."""
    step = (sample.meta or {}).get("error_step" if source == "label" else "rollout_step")
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def step_pairs(group: Group, source: str = "label"
               ) -> tuple[list[PreferencePair], list[tuple[str, str]]]:
    """Step pairs of a question, and (sample_id, why) for wrong samples that gave none.
    `source`: where the first wrong step comes from (see first_wrong_step)."""
    pairs: list[PreferencePair] = []
    skipped: list[tuple[str, str]] = []
    right = group.right()
    for w in group.wrong():
        k = first_wrong_step(w, source)
        if k is None:
            skipped.append((w.sample_id, "no_known_wrong_step"))
            continue
        steps = split_steps(w.program or "")
        if k >= len(steps):
            skipped.append((w.sample_id, "error_step_out_of_range"))
            continue
        chosen = _continuation(right, steps, k)
        if chosen is None:
            skipped.append((w.sample_id, "no_right_program_with_this_prefix"))
            continue
        c, c_steps = chosen
        pairs.append(PreferencePair(
            pair_type="step", question_id=group.question_id, chosen_sample_id=c.sample_id,
            rejected_sample_id=w.sample_id, prompt=_prompt(group.question),
            prefix="\n".join(steps[:k]), chosen="\n".join(c_steps[k:]), rejected=steps[k],
            step=k, rule=STEP_RULE if source == "label" else ROLLOUT_RULE,
            chosen_correct=c.correct, rejected_correct=w.correct,
            meta={"error_kind": w.meta.get("error_kind"), "n_steps": len(steps),
                  "error_step": w.meta.get("error_step")}))
    return pairs, skipped


def _continuation(right: Sequence[Sample], steps: list[str], k: int
                  ) -> tuple[Sample, list[str]] | None:
    """A right program whose first k steps are the wrong one's and whose step k differs."""
    for c in right:
        c_steps = split_steps(c.program or "")
        if c_steps[:k] == steps[:k] and len(c_steps) > k and c_steps[k] != steps[k]:
            return c, c_steps
    return None
