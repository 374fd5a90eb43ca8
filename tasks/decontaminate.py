"""Flag training questions that overlap a benchmark's test questions, before any teacher is
paid for them. Two signals, either one flags:

- word n-gram overlap (13-grams, as GPT-3 did) of the normalized context + question text;
  the context counts because a TAT-QA test table seen in training is a leak even under
  another question, and the same short question over another table is not;
  texts shorter than n words match when they are identical;
- embedding similarity (cosine >= threshold) between questions over the same context, which
  catches light paraphrases that share no long n-gram. Unlike dedup there is no same-numbers
  guard: a test question with its numbers changed is still a leak of that test question.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from tasks.embed import EmbeddingCache, embed_with_cache
from tasks.settings import Settings
from tasks.stage import Stage, StageResult
from tasks.types import Question, Rejection, normalize_text

_WORD = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*")


@dataclass(frozen=True)
class Benchmark:
    """A registered test set: its name (the spec it came from) and its questions."""

    name: str
    questions: Sequence[Question]


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(normalize_text(text))
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def _ngram_text(q: Question) -> str:
    return f"{q.context} {q.text}" if q.context else q.text


def ngram_matches(questions: Sequence[Question], benchmark: Benchmark, n: int = 13
                  ) -> dict[str, tuple[str, str]]:
    """question_id -> (benchmark source_id, matched n-gram) for questions sharing one."""
    index: dict[tuple[str, ...], str] = {}
    for b in benchmark.questions:
        for g in ngrams(_ngram_text(b), n):
            index.setdefault(g, b.source_id or b.question_id)
    out = {}
    for q in questions:
        for g in sorted(ngrams(_ngram_text(q), n)):
            if g in index:
                out[q.question_id] = (index[g], " ".join(g))
                break
    return out


def embedding_matches(questions: Sequence[Question], q_vectors: np.ndarray,
                      benchmark: Benchmark, b_vectors: np.ndarray, threshold: float = 0.9
                      ) -> dict[str, tuple[str, float]]:
    """question_id -> (benchmark source_id, cosine) for the closest test question over the
    same context, when at or above the threshold. Vectors are unit-normalized."""
    by_context: dict[str, list[int]] = defaultdict(list)
    for j, b in enumerate(benchmark.questions):
        by_context[normalize_text(b.context)].append(j)
    out = {}
    for i, q in enumerate(questions):
        cand = by_context.get(normalize_text(q.context))
        if not cand:
            continue
        sims = b_vectors[cand] @ q_vectors[i]
        k = int(np.argmax(sims))
        if sims[k] >= threshold:
            b = benchmark.questions[cand[k]]
            out[q.question_id] = (b.source_id or b.question_id, float(sims[k]))
    return out


def contamination_rejections(questions: Sequence[Question], q_vectors: np.ndarray,
                             benchmarks: Sequence[tuple[Benchmark, np.ndarray]], *,
                             n: int = 13, threshold: float = 0.9) -> list[Rejection]:
    """One rejection per flagged question, naming the benchmark item and the signal."""
    flagged: dict[str, Rejection] = {}
    for bench, b_vectors in benchmarks:
        for qid, (bid, gram) in ngram_matches(questions, bench, n).items():
            flagged.setdefault(qid, Rejection(
                qid, "decontaminate", "benchmark_overlap",
                f"{bench.name} {bid}: shares {n}-gram '{gram}'"))
        for qid, (bid, sim) in embedding_matches(questions, q_vectors, bench, b_vectors,
                                                 threshold).items():
            flagged.setdefault(qid, Rejection(
                qid, "decontaminate", "benchmark_paraphrase",
                f"{bench.name} {bid}: cosine {sim:.4f}"))
    return [flagged[q.question_id] for q in questions if q.question_id in flagged]


class DecontamConfig(Settings):
    """Benchmark test sets that training questions must not overlap."""

    decontaminate: list[str] = Field(
        default_factory=list, description="benchmark test sets (source specs, e.g. "
        "gsm8k:../shared/data/gsm8k/test.jsonl) whose questions must not be trained on")
    decontam_ngram: int = Field(13, ge=3, le=50, description="word n-gram length of the "
                                "overlap check")
    decontam_threshold: float = Field(0.9, ge=0.5, le=1.0, description="cosine at which a "
                                      "question over the same context is a benchmark "
                                      "paraphrase")


class Decontaminate(Stage[Question, Question]):
    """Stage: questions that overlap a registered benchmark leave before anyone pays for
    them. Benchmarks are loaded when the stage runs; vectors come from (and go to) the
    embedding cache, so a benchmark is embedded once per model."""

    name = "decontaminate"
    batch_size = None

    def __init__(self, config: DecontamConfig, cache: EmbeddingCache, model: str,
                 load: Callable[[str], Sequence[Question]]) -> None:
        self.config, self.cache, self.model, self.load = config, cache, model, load

    def run(self, items: list[Question]) -> StageResult[Question]:
        if not self.config.decontaminate or not items:
            return StageResult(kept=items)
        q_vectors = embed_with_cache(self.cache, [q.text for q in items], self.model)
        benchmarks = []
        for spec in self.config.decontaminate:
            bench_qs = list(self.load(spec))
            benchmarks.append((Benchmark(spec, bench_qs), embed_with_cache(
                self.cache, [q.text for q in bench_qs], self.model)))
        rejections = contamination_rejections(items, q_vectors, benchmarks,
                                              n=self.config.decontam_ngram,
                                              threshold=self.config.decontam_threshold)
        flagged = {r.item_id for r in rejections}
        return StageResult(kept=[q for q in items if q.question_id not in flagged],
                           rejections=rejections)
