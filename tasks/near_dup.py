"""Near-duplicate contexts: the same question over a context that is the same table with a
reformatted paragraph (TAT-QA style). Exact dedup misses it (the context differs, so the
question_id does) and semantic dedup compares questions over one context only.

MinHash over word 5-gram shingles of each context, with an LSH index, through `datasketch`
(the reference implementation, pure Python over numpy, maintained since 2015; `rensa` is
faster but younger and its LSH API has changed between releases, and the number of contexts
compared here is small: only questions whose normalized text occurs over more than one
context). A pair counts when its MinHash Jaccard estimate is at least the threshold; in
question_id order, a question is dropped only when its context is near the context of a
question already kept (no chains), naming that question.
"""

from __future__ import annotations

from collections import defaultdict

from pydantic import Field

from tasks.settings import Settings
from tasks.stage import Stage, StageResult, reject
from tasks.types import Question, normalize_text

REASON = "near_duplicate_context"


class NearDupConfig(Settings):
    """The optional near-duplicate-context stage."""

    near_duplicate_contexts: bool = Field(False, description="drop a question asked over a "
                                          "near-duplicate of another's context (MinHash)")
    context_jaccard: float = Field(0.8, ge=0.3, le=1.0, description="MinHash Jaccard of "
                                   "two contexts' word 5-grams at which they are one")
    minhash_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations")


def _shingles(context: str, n: int = 5) -> set[bytes]:
    words = normalize_text(context).split()
    if len(words) < n:
        return {" ".join(words).encode()}
    return {" ".join(words[i:i + n]).encode() for i in range(len(words) - n + 1)}


class NearDupContexts(Stage[Question, Question]):
    """Stage: questions whose normalized text repeats over a near-duplicate context leave as
    `near_duplicate_context`. Runs over the whole batch (before the shards: a shard holds one
    context, and near-duplicate contexts are two)."""

    name = "near_dup"
    batch_size = None

    def __init__(self, config: NearDupConfig) -> None:
        self.config = config

    def run(self, items: list[Question]) -> StageResult[Question]:
        from datasketch import MinHash, MinHashLSH

        cfg = self.config
        by_text: dict[str, dict[str, Question]] = defaultdict(dict)
        for q in items:  # one question per (text, context): exact dedup handles the rest
            by_text[q.text_key].setdefault(q.context_key, q)
        dropped: dict[str, str] = {}
        for contexts in by_text.values():
            if len(contexts) < 2:
                continue
            # LSH bands tuned to a lower threshold: it proposes candidates (a pair at the
            # threshold itself is missed about half the time), the estimate decides.
            lsh = MinHashLSH(threshold=0.75 * cfg.context_jaccard, num_perm=cfg.minhash_perm)
            hashes: dict[str, MinHash] = {}
            for q in sorted(contexts.values(), key=lambda q: q.question_id):
                m = MinHash(num_perm=cfg.minhash_perm, seed=1)
                m.update_batch(list(_shingles(q.context)))
                near = [(m.jaccard(hashes[k]), k) for k in lsh.query(m)]
                near = [(j, k) for j, k in near if j >= cfg.context_jaccard]
                if near:
                    jaccard, kept = min(near, key=lambda p: (-p[0], p[1]))  # nearest
                    dropped[q.question_id] = f"context Jaccard ~{jaccard:.3f} with {kept}"
                    continue
                lsh.insert(q.question_id, m)
                hashes[q.question_id] = m
        return StageResult(kept=[q for q in items if q.question_id not in dropped],
                           rejections=[reject(qid, self.name, REASON, detail)
                                       for qid, detail in sorted(dropped.items())])
