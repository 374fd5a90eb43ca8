"""How sure a score is: 95% intervals for an arm's accuracy and for the difference between two
arms, by bootstrap over the questions and the training runs.

One training run of a 135M student on 150 examples moves by ten points with the training
order alone (BENCHMARKS.md, "outcome order"), and n = 100 questions adds its own sampling
noise. So an arm is K runs (seeds) evaluated on the same questions, its score the mean over
runs and questions, and its interval a percentile bootstrap that resamples both (two-way:
questions with replacement, and runs with replacement). Two arms evaluated on the same
questions are compared question by question: the bootstrap resamples the questions once for
both arms (paired) and the runs of each arm on their own. A difference whose interval holds
0 is no gain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
BOOTSTRAPS = 4000


@dataclass(frozen=True)
class Interval:
    """A mean with its bootstrap interval."""

    mean: float
    low: float
    high: float
    runs: int
    questions: int

    @property
    def excludes_zero(self) -> bool:
        """The interval lies on one side of 0: a difference that is more than noise."""
        return self.low > 0 or self.high < 0

    def text(self, digits: int = 3) -> str:
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def _matrix(outcomes: Sequence[Sequence[bool | float]]) -> np.ndarray:
    x = np.asarray(outcomes, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError("outcomes: one row per run, one column per question, none empty")
    return x


def _counts(rng: np.random.Generator, n: int, draws: int) -> np.ndarray:
    """(draws, n): how often each of n items is drawn in each resample of size n."""
    picks = rng.integers(0, n, size=(draws, n))
    return np.stack([np.bincount(row, minlength=n) for row in picks]).astype(np.float64)


def _bounds(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return float(low), float(high)


def accuracy_interval(outcomes: Sequence[Sequence[bool | float]], *, level: float = LEVEL,
                      draws: int = BOOTSTRAPS, seed: int = 0) -> Interval:
    """Mean accuracy of K runs on the same Q questions (`outcomes`: K rows of Q 0/1) with
    its two-way bootstrap interval."""
    x = _matrix(outcomes)
    runs, questions = x.shape
    rng = np.random.default_rng(seed)
    cr, cq = _counts(rng, runs, draws), _counts(rng, questions, draws)
    # The mean of a resample, x[run draws][:, question draws].mean(), as weighted sums.
    means = np.einsum("br,rq,bq->b", cr, x, cq) / (runs * questions)
    low, high = _bounds(means, level)
    return Interval(float(x.mean()), low, high, runs, questions)


def paired_difference(a: Sequence[Sequence[bool | float]], b: Sequence[Sequence[bool | float]],
                      *, level: float = LEVEL, draws: int = BOOTSTRAPS,
                      seed: int = 0) -> Interval:
    """Accuracy of arm `a` minus arm `b`, both evaluated on the same questions in the same
    order (each a runs x questions matrix), with a bootstrap interval that draws the
    questions once for both arms and the runs of each arm on their own."""
    xa, xb = _matrix(a), _matrix(b)
    if xa.shape[1] != xb.shape[1]:
        raise ValueError(f"paired arms need the same questions: {xa.shape[1]} vs "
                         f"{xb.shape[1]}")
    questions = xa.shape[1]
    rng = np.random.default_rng(seed)
    cq = _counts(rng, questions, draws)
    ca, cb = _counts(rng, xa.shape[0], draws), _counts(rng, xb.shape[0], draws)
    diffs = (np.einsum("br,rq,bq->b", ca, xa, cq) / (xa.shape[0] * questions)
             - np.einsum("br,rq,bq->b", cb, xb, cq) / (xb.shape[0] * questions))
    low, high = _bounds(diffs, level)
    return Interval(float(xa.mean() - xb.mean()), low, high, xa.shape[0] + xb.shape[0],
                    questions)
