"""The solvability judge: an LLM says whether a (synthesized) question is self-contained with
one numeric answer. Runs after dedup, so nobody pays to judge a duplicate.

A failed or unreadable verdict rejects nothing: the question goes on unjudged (solvable None)
rather than being lost to a transport error. Every verdict is a record ("judgments").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from tasks.jsontext import json_object
from tasks.llm.config import LLMConfig
from tasks.llm.core import ResponseCache, load_template
from tasks.llm.step import LLMStep, Outcome, Reply
from tasks.stage import StageResult, reject
from tasks.types import Question

JUDGE_VERSION = "judge_v1"
SCHEMA = {"type": "json_schema", "json_schema": {"name": "verdict", "strict": True, "schema": {
    "type": "object", "properties": {"solvable": {"type": "boolean"},
                                     "reason": {"type": "string"}},
    "required": ["solvable", "reason"], "additionalProperties": False}}}
_TEXT = re.compile(r"\W*(yes|no)\b\W*(.*)", re.I | re.S)
# A JSON verdict cut short still says which way it went.
_PARTIAL = re.compile(r'"solvable"\s*:\s*(true|false)(?:.*?"reason"\s*:\s*"([^"]*))?', re.S)


@dataclass(frozen=True)
class Verdict:
    question_id: str
    solvable: bool | None
    reason: str


def read_verdict(question_id: str, text: str) -> Verdict:
    """The schema's JSON, else a cut JSON, else "yes: ..." / "no: ..." text; else None."""
    text = (text or "").strip()
    data = json_object(text) or {}
    if isinstance(data.get("solvable"), bool):
        return Verdict(question_id, data["solvable"], str(data.get("reason") or "")[:500])
    m = _PARTIAL.search(text)
    if m:
        return Verdict(question_id, m.group(1) == "true", (m.group(2) or "")[:500])
    m = _TEXT.match(text)
    return Verdict(question_id, None if m is None else m.group(1).lower() == "yes",
                   (m.group(2) if m else text).strip()[:500])


class Judge(LLMStep[Question, Question]):
    """The `judge` stage: keeps solvable and unjudged questions, rejects `unsolvable`."""

    name: ClassVar[str] = "judge"
    purpose: ClassVar[str] = "judge"
    prefix: ClassVar[str] = "judge_"
    reject_truncated: ClassVar[bool] = False  # a cut verdict is read as far as it goes

    def __init__(self, cfg: LLMConfig, cache: ResponseCache, run_id: str,
                 progress: bool = False) -> None:
        super().__init__(cfg, cache, run_id, progress)
        self.template = load_template(JUDGE_VERSION)

    def item_id(self, item: Question) -> str:
        return item.question_id

    def prompt(self, item: Question) -> list[dict[str, Any]]:
        body: dict[str, Any] = {
            "model": self.cfg.model, "temperature": 0.0, "max_tokens": 100,
            "messages": [{"role": "system", "content": self.template.system},
                         {"role": "user", "content": self.template.user(item.text,
                                                                        item.context)}]}
        if self.cfg.structured_output:
            body["response_format"] = SCHEMA
        return [body]

    def parse(self, item: Question, text: str, reply: Reply) -> Verdict:
        return read_verdict(item.question_id, text)

    def settle(self, item: Question, outcomes: list[Outcome], result: StageResult[Question]
               ) -> None:
        verdict = next((o for o in outcomes if isinstance(o, Verdict)),
                       Verdict(item.question_id, None, ""))
        result.records.setdefault("judgments", []).append(
            (verdict.question_id, verdict.solvable, verdict.reason, self.cfg.model))
        if verdict.solvable is False:
            result.rejections.append(reject(item.question_id, self.name, "unsolvable",
                                            verdict.reason))
        else:
            result.kept.append(item)
