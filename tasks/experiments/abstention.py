"""Abstention: the target "I don't know" for a question whose data does not hold the answer,
and its score as in the abstention literature: a right answer +1, an abstention 0, a wrong
answer -1 (on an unanswerable question abstaining is the right answer, +1, and any answer is
wrong, -1). Abstention precision: the share of abstentions that were on unanswerable
questions; recall: the share of unanswerable questions the model abstained on."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from tasks.types import Question

ABSTAIN = "I don't know"
ABSTAIN_PROGRAM = f"ans = {ABSTAIN!r}"
_ABSTAIN_TEXT = re.compile(r"\b(i\s+(do\s+not|don'?t)\s+know|cannot\s+be\s+(determined|"
                           r"answered)|not\s+enough\s+information)\b", re.I)


def is_unanswerable(q: Question) -> bool:
    return bool(q.meta.get("unanswerable")) or (q.gold_answer or "").strip() == ABSTAIN


def is_abstention(value: object) -> bool:
    """A value (the program's `ans`, or a completion with no program) that says the model
    does not know. Only strings abstain: a number is an answer."""
    return isinstance(value, str) and bool(_ABSTAIN_TEXT.search(value))


@dataclass(frozen=True)
class AbstentionScore:
    score: float  # mean of +1 / 0 / -1 over the questions
    abstained: int
    unanswerable: int
    precision: float | None  # None when the model never abstained
    recall: float | None  # None when no question was unanswerable


def abstention_score(questions: Sequence[Question], abstained: Sequence[bool],
                     correct: Sequence[bool]) -> AbstentionScore:
    """`correct[i]`: the answer to an answerable question was right (ignored where the model
    abstained or the question is unanswerable)."""
    total = hits = 0
    n_unans = n_abst = 0
    for q, abst, ok in zip(questions, abstained, correct, strict=True):
        unans = is_unanswerable(q)
        n_unans += unans
        n_abst += abst
        if unans:
            total += 1 if abst else -1
            hits += abst
        else:
            total += 0 if abst else (1 if ok else -1)
    n = len(questions)
    return AbstentionScore(score=total / n if n else 0.0, abstained=n_abst,
                           unanswerable=n_unans,
                           precision=hits / n_abst if n_abst else None,
                           recall=hits / n_unans if n_unans else None)
