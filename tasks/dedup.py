"""Exact and semantic dedup of questions, before any teacher is paid to solve them.

Semantic duplicates are questions whose text embeddings have cosine >= threshold AND that
ask about the same context (same table/paragraphs) AND mention the same numbers. The two
guards matter for numerical reasoning data: "change in revenue from 2019 to 2020" and
"... from 2020 to 2021" embed almost identically but are different problems, and the same
question over two different tables is two examples, not one.

Representatives are deterministic whatever the input order: groups are connected components
of the similarity graph, and a group's representative is the smallest id of the items the
warehouse already holds, else the smallest id of the new items.

Components chain: A~B and B~C put A and C in one group however far apart they are (down to
cosine 0.65 at a 0.9 threshold, measured without the numbers guard). The opt-in `leader`
grouping has no chains: in rank order (held items first, then by id) an item is dropped
only if it is within the threshold of an item already kept (a leader), and it names the
nearest leader, so every recorded duplicate is at least `threshold` from its
representative (semhash's rule, made deterministic).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import Field

from tasks.embed import DEFAULT_MODEL
from tasks.settings import Settings
from tasks.stage import Stage, StageResult, reject
from tasks.types import Question, Rejection, normalize_text, stable_hash

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# Blocks larger than this use faiss range search instead of a dense similarity matrix.
_DENSE_LIMIT = 2048


@dataclass(frozen=True)
class DedupItem:
    item_id: str
    text: str
    context: str


def exact_dedup(questions: Sequence[Question]) -> tuple[list[Question], list[Rejection]]:
    """Collapse questions with the same normalized text + context (same question_id).

    The kept copy is the one with the smallest (source, source_id), so input order does not
    matter. Dropped copies have no question id of their own (they share the kept one's), so
    their rejection is keyed by a hash of (question, source, source_id): two files that both
    number their lines cannot collide.
    """
    groups: dict[str, list[Question]] = defaultdict(list)
    for q in questions:
        groups[q.question_id].append(q)
    kept, rejected = [], []
    for qid, group in groups.items():
        group.sort(key=lambda q: (q.source, q.source_id or ""))
        kept.append(group[0])
        for dup in group[1:]:
            rejected.append(Rejection(
                item_id=stable_hash("dup", qid, dup.source, dup.source_id),
                stage="dedup", reason="exact_duplicate",
                detail=f"{dup.source_id}: same normalized text and context as {qid} "
                       f"({group[0].source_id})",
            ))
    return kept, rejected


def number_signature(text: str) -> frozenset[str]:
    return frozenset(n.replace(",", "") for n in _NUMBER.findall(text))


def _block_key(item: DedupItem, numbers_must_match: bool) -> tuple[str, frozenset[str]]:
    numbers = number_signature(item.text) if numbers_must_match else frozenset()
    return normalize_text(item.context), numbers


def _similar_pairs(vectors: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """Index pairs (i < j) with cosine >= threshold inside one block."""
    n = len(vectors)
    if n < 2:
        return []
    if n <= _DENSE_LIMIT:
        sims = vectors @ vectors.T
        ii, jj = np.nonzero(np.triu(sims >= threshold, k=1))
        return [(int(i), int(j), float(sims[i, j])) for i, j in zip(ii, jj, strict=True)]
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    lims, dists, labels = index.range_search(vectors, threshold)
    pairs = []
    for i in range(n):
        for d, j in zip(dists[lims[i]:lims[i + 1]], labels[lims[i]:lims[i + 1]], strict=True):
            if i < j:
                pairs.append((i, int(j), float(d)))
    return pairs


def semantic_dedup(new: Sequence[DedupItem], new_vectors: np.ndarray,
                   known: Sequence[DedupItem] = (), known_vectors: np.ndarray | None = None,
                   *, threshold: float = 0.95, numbers_must_match: bool = True,
                   grouping: str = "components") -> list[tuple[str, str, float]]:
    """Map every new item to (item_id, representative_id, similarity).

    `known` are representatives the warehouse already holds: they keep their role, and a
    new item similar to one of them is its duplicate. A new item that is its own
    representative gets similarity 1.0. `grouping`: "components" (connected components of
    the similarity graph) or "leader" (see the module docstring).
    """
    items = list(known) + list(new)
    n_known = len(known)
    if known_vectors is None or n_known == 0:
        known_vectors = np.zeros((0, new_vectors.shape[1] if new_vectors.size else 0),
                                 dtype=np.float32)
    vectors = np.vstack([known_vectors, new_vectors]) if n_known else new_vectors
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    blocks: dict[tuple[str, frozenset[str]], list[int]] = defaultdict(list)
    for idx, item in enumerate(items):
        blocks[_block_key(item, numbers_must_match)].append(idx)

    def rank(i: int) -> tuple[int, str]:
        # Known items first (they are already published), then by id: order-independent.
        return (0 if i < n_known else 1, items[i].item_id)

    if grouping == "leader":
        chosen = _leaders(blocks, vectors, n_known, rank, threshold)
        return [(items[i].item_id, items[chosen[i][0]].item_id, chosen[i][1])
                for i in range(n_known, len(items))]
    if grouping != "components":
        raise ValueError(f"grouping must be 'components' or 'leader', got {grouping!r}")
    for members in blocks.values():
        if len(members) < 2 or all(m < n_known for m in members):
            continue
        for a, b, _ in _similar_pairs(vectors[members], threshold):
            ra, rb = find(members[a]), find(members[b])
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)

    best: dict[int, int] = {}
    for idx in range(len(items)):
        root = find(idx)
        if root not in best or rank(idx) < rank(best[root]):
            best[root] = idx
    out = []
    for idx in range(n_known, len(items)):
        rep = best[find(idx)]
        sim = 1.0 if rep == idx else float(vectors[idx] @ vectors[rep])
        out.append((items[idx].item_id, items[rep].item_id, sim))
    return out


def _leaders(blocks: dict[Any, list[int]], vectors: np.ndarray, n_known: int,
             rank: Any, threshold: float) -> dict[int, tuple[int, float]]:
    """item index -> (leader index, cosine) under the leader rule; a leader maps to itself
    with 1.0. Known items are leaders whatever their neighbours (they are published)."""
    out: dict[int, tuple[int, float]] = {}
    for members in blocks.values():
        leaders: list[int] = []
        for m in sorted(members, key=rank):
            if m >= n_known and leaders:
                j = leaders[int(np.argmax(vectors[leaders] @ vectors[m]))]
                # Decided on the same dot product that is recorded: never below threshold.
                sim = float(vectors[m] @ vectors[j])
                if sim >= threshold:
                    out[m] = (j, sim)
                    continue
            leaders.append(m)
            out[m] = (m, 1.0)
    return out


class DedupConfig(Settings):
    """Semantic dedup of questions (exact dedup has no settings)."""

    embedding_model: str = Field(DEFAULT_MODEL, description="sentence-transformers id or "
                                 "path used for semantic dedup, decontamination and subsets")
    semantic_threshold: float = Field(0.95, ge=0.5, le=1.0, description="cosine at or above "
                                      "which two questions are one")
    numbers_must_match: bool = Field(True, description="semantic duplicates must mention "
                                     "the same numbers")
    semantic_grouping: Literal["components", "leader"] = Field(
        "components", description="components: connected components of the similarity "
        "graph (chains: A~B~C groups A with C); leader: an item is dropped only when it is "
        "within the threshold of an item already kept, so no chains")


class QuestionLedger(Protocol):
    """What dedup needs of the warehouse (warehouse.Store implements it)."""

    def question_states(self, question_ids: Sequence[str]) -> dict[str, str]: ...

    def load_questions(self, question_ids: Sequence[str]) -> list[Question]: ...

    def representatives(self, model: str, context_keys: Iterable[str] | None = None
                        ) -> tuple[list[str], list[str], list[str], np.ndarray]: ...

    def load_embeddings(self, keys: Sequence[str], model: str) -> dict[str, Any]: ...


class Dedup(Stage[Question, Question]):
    """Stage: exact, then semantic dedup of a loaded batch, against itself and the warehouse.

    Questions the warehouse already decided leave quietly (`already_done`); questions an
    interrupted run stored but never decided come back as they were stored (`resumed`) and
    skip dedup, which they passed then. New questions, their dedup rows and the duplicate
    rejections are stored in one transaction (`records`), so a question is never stored
    without its dedup verdict. Vectors come from the embedding cache (the embed stage ran
    first)."""

    name = "dedup"
    batch_size = None

    def __init__(self, config: DedupConfig, ledger: QuestionLedger) -> None:
        self.config, self.ledger = config, ledger

    def run(self, items: list[Question]) -> StageResult[Question]:
        unique, rejections = exact_dedup(items)
        states = self.ledger.question_states([q.question_id for q in unique])
        new = [q for q in unique if q.question_id not in states]
        pending = [q.question_id for q in unique if states.get(q.question_id) == "pending"]
        counts = Counter(already_done=sum(1 for s in states.values() if s == "done"),
                         resumed=len(pending), new=len(new))
        rows = self._semantic(new, counts) if new else []
        dups = {item for item, rep, _ in rows if item != rep}
        rejections += [reject(item, self.name, "semantic_duplicate",
                              f"cosine {sim:.4f} with {rep}")
                       for item, rep, sim in rows if item != rep]
        kept = [q for q in new if q.question_id not in dups]
        kept += self.ledger.load_questions(pending)
        dedup_rows = [(i, r, s, "semantic" if i != r else "representative") for i, r, s in rows]
        return StageResult(kept=kept, rejections=rejections, counts=counts,
                           records={"questions": new, "dedup": dedup_rows})

    def _semantic(self, new: list[Question], counts: Counter[str]
                  ) -> list[tuple[str, str, float]]:
        model = self.config.embedding_model
        keys = [q.text_key for q in new]
        cached = self.ledger.load_embeddings(keys, model)
        vectors = np.stack([cached[k] for k in keys])
        # Only the representatives over these contexts: a block never spans two contexts.
        ids, texts, contexts, known_vecs = self.ledger.representatives(
            model, context_keys={q.context_key for q in new})
        counts["representatives_read"] += len(ids)
        known = [DedupItem(i, t, c) for i, t, c in zip(ids, texts, contexts, strict=True)]
        items = [DedupItem(q.question_id, q.text, q.context) for q in new]
        return semantic_dedup(items, vectors, known, known_vecs,
                              threshold=self.config.semantic_threshold,
                              numbers_must_match=self.config.numbers_must_match,
                              grouping=self.config.semantic_grouping)
