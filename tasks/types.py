"""Records that travel between stages. Plain dataclasses: cheap to build in batches,
picklable for Dask workers, and converted to rows only in warehouse/."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

_WS = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Canonical form used for identity and exact dedup: NFKC, lower case, single spaces."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text or "")).strip().lower()


def stable_hash(*parts: object, length: int = 16) -> str:
    """Deterministic hex id over JSON-encoded parts (order-sensitive)."""
    payload = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:length]


def question_id_for(text: str, context: str = "") -> str:
    """`stable_hash("q", normalize_text(text), normalize_text(context))`, with the context's
    part computed once per distinct context (many questions share a table)."""
    payload = f'["q", {_normalized_json(text)}, {_context_parts(context or "")[0]}]'
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def text_key(text: str) -> str:
    """Key of an embedded text: the same normalized text is embedded once per model."""
    return stable_hash("t", normalize_text(text))


def context_key(context: str | None) -> str:
    """Key of a normalized context (questions.context_key)."""
    return _context_parts(context or "")[1]


@lru_cache(maxsize=1 << 15)
def _normalized_json(text: str) -> str:
    # The JSON text stable_hash writes for a normalized text (a list item of its payload).
    return json.dumps(normalize_text(text), ensure_ascii=False)


@lru_cache(maxsize=1 << 13)
def _context_parts(context: str) -> tuple[str, str]:
    """(JSON of the normalized context, its key). NFKC and a regex over a context of a few
    hundred characters cost more than the rest of an id; questions over one table share it."""
    norm = normalize_text(context)
    return json.dumps(norm, ensure_ascii=False), stable_hash("c", norm)


@dataclass(frozen=True)
class Question:
    """One question as it leaves a source.

    `context` is the rendered context the model sees (markdown table, then paragraphs).
    `gold_answer` is a string: a number for arithmetic items, JSON for span answers.
    `meta` carries source-specific annotations (GSM8K solution text, TAT-QA derivation,
    answer_type and scale, procedural kind ...) that the reference teacher reads.
    """

    text: str
    source: str
    context: str = ""
    gold_answer: str | None = None
    gold_program: str | None = None
    difficulty: int | None = None
    source_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    # Ids are computed once per object (NFKC + JSON + sha256 over the context costs ~10 us,
    # and every stage asks): cached_property writes the instance dict, which a frozen
    # dataclass allows.
    @cached_property
    def question_id(self) -> str:
        return question_id_for(self.text, self.context)

    @cached_property
    def text_key(self) -> str:
        """Key of this question's embedded text (the same text is embedded once)."""
        return text_key(self.text)

    @cached_property
    def context_key(self) -> str:
        """Key of the normalized context: exact duplicates and semantic-dedup blocks never
        span two contexts, so items keyed by it can be processed apart (shards)."""
        return context_key(self.context)


@dataclass(frozen=True)
class Rejection:
    """Why an item left the path. `item_id` is a question_id or a sample_id."""

    item_id: str
    stage: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class ExecResult:
    """Outcome of running one untrusted program.

    status: ok | error | timeout | memory | no_ans | killed
    value: the JSON-able value of `ans` when status == ok.
    """

    status: str
    value: Any = None
    error: str = ""
    duration_ms: float = 0.0


@dataclass
class Sample:
    """One teacher solution for one question, with its execution verdict."""

    question_id: str
    teacher: str
    model: str
    prompt_version: str
    sample_idx: int
    program: str | None
    raw: str = ""
    gen_params: dict[str, Any] = field(default_factory=dict)
    exec_status: str | None = None
    exec_error: str = ""
    predicted: str | None = None
    correct: bool | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    # Annotations that are not part of identity, e.g. the labelled error a noisy teacher
    # injected ({"error_kind": "swapped_operands", "error_step": 2}).
    meta: dict[str, Any] = field(default_factory=dict)
    # The JSON-able value of `ans` from the sandbox, for the check stage (not stored: the
    # stored form is `predicted`).
    exec_value: Any = field(default=None, repr=False)

    # The id's fields are fixed once a sample is made (only execution and verdict fields
    # change later), so the id is computed once.
    @cached_property
    def sample_id(self) -> str:
        return stable_hash(
            "s", self.question_id, self.teacher, self.model, self.prompt_version,
            self.gen_params, self.sample_idx,
        )
