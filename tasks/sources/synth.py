"""LLM question synthesis: `synth:fewshot`, `synth:evolve`, `synth:scratch[:TOPIC]`.

- fewshot: a new question in the style of 3 seed examples drawn by seed.
- evolve: a harder / varied rewrite of one seed question (Evol-Instruct style).
- scratch: a question from a topic and difficulty alone (ScaleQuest style), no seeds.

Synthesized text passes cheap filters here (ASCII only, length bounds); exact and semantic
dedup against the batch and the warehouse is the refresh flow's dedup stage, and the optional
solvability judge (tasks/judge.py) runs after dedup, so nobody pays to judge a duplicate.
`Synthesizer` is an LLMStep: its requests are cached like the teacher's, so a rerun
synthesizes nothing new. With structured output the answer is {"question": ...}.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from tasks.errors import InputError
from tasks.jsontext import json_object
from tasks.llm.config import LLMConfig
from tasks.llm.core import ResponseCache, load_template
from tasks.llm.step import LLMStep, Reply
from tasks.stage import reject
from tasks.types import Question, Rejection, stable_hash

MODES = ("fewshot", "evolve", "scratch")
SYNTH_VERSION = "synth_v1"
MIN_CHARS, MAX_CHARS = 20, 1200
_TOPICS = ("revenue and cost growth between two years", "profit margins",
           "percent change of a budget", "shopping with discounts", "travel speed and time",
           "sharing items among friends", "interest on savings", "unit prices",
           "work rates", "ages of family members")
_DIFFICULTY = ("easy two-step", "medium three-step", "harder four-step")


SCHEMA = {"type": "json_schema", "json_schema": {"name": "question", "strict": True, "schema": {
    "type": "object", "properties": {"question": {"type": "string"}},
    "required": ["question"], "additionalProperties": False}}}


def clean_question(text: str | None) -> str:
    """The question in a synthesis answer: the JSON field when the endpoint kept to the
    schema, else the text without a "Question:" label, quotes or fences."""
    t = (text or "").strip()
    asked = (json_object(t) or {}).get("question")
    if isinstance(asked, str):
        t = asked
    t = t.strip().strip("`").strip()
    t = re.sub(r"^(?:new\s+)?question\s*\d*\s*[:.-]\s*", "", t, flags=re.I)
    return t.strip().strip('"').strip()


def filter_reason(text: str) -> str | None:
    if not text:
        return "empty"
    if not text.isascii():
        return "non_ascii"
    if len(text) < MIN_CHARS:
        return "too_short"
    if len(text) > MAX_CHARS:
        return "too_long"
    return None


@dataclass(frozen=True)
class SynthItem:
    """One question to write: its position (part of the request key) and its prompt."""

    index: int
    mode: str
    seed: int
    user: str

    @property
    def item_id(self) -> str:
        return stable_hash("synth", self.mode, self.seed, self.index)


class Synthesizer(LLMStep[SynthItem, Question]):
    """The `synth` stage: `plan(spec, n, seed)` makes the items, `run(items)` the questions;
    the filtered and the failed leave as rejections."""

    name: ClassVar[str] = "synth"
    purpose: ClassVar[str] = "synth"
    prefix: ClassVar[str] = "synth_"

    def __init__(self, cfg: LLMConfig, cache: ResponseCache, run_id: str,
                 progress: bool = False, seed_source: str | None = None) -> None:
        super().__init__(cfg, cache, run_id, progress)
        self.seed_source = seed_source
        self.template = load_template(SYNTH_VERSION)

    def plan(self, spec_arg: str, n: int, seed: int) -> list[SynthItem]:
        mode, _, topic = spec_arg.partition(":")
        if mode not in MODES:
            raise InputError(f"--source synth:{spec_arg}: one of {', '.join(MODES)}")
        seeds = self._seeds(mode, n, seed)
        items = []
        for i in range(n):
            rng = random.Random(f"synth:{mode}:{seed}:{i}")
            if mode == "fewshot":
                examples = "\n\n".join(f"- {q.text}"
                                       for q in rng.sample(seeds, min(3, len(seeds))))
                user = self.template.sections["fewshot"].format(examples=examples)
            elif mode == "evolve":
                user = self.template.sections["evolve"].format(question=seeds[i % len(seeds)].text)
            else:
                user = self.template.sections["scratch"].format(
                    topic=topic or rng.choice(_TOPICS), difficulty=rng.choice(_DIFFICULTY),
                    index=i)
            items.append(SynthItem(i, mode, seed, user))
        return items

    def _seeds(self, mode: str, n: int, seed: int) -> list[Question]:
        if mode not in ("fewshot", "evolve"):
            return []
        if not self.seed_source:
            raise InputError(f"--source synth:{mode} needs --seed-source (e.g. gsm8k:PATH)")
        from tasks.sources import load_questions

        seeds = load_questions(self.seed_source, n=max(50, 3 * n), seed=seed)
        if not seeds:
            raise InputError(f"--seed-source {self.seed_source}: no questions")
        return seeds

    def item_id(self, item: SynthItem) -> str:
        return item.item_id

    def request_index(self, item: SynthItem, position: int) -> int:
        return item.index

    def prompt(self, item: SynthItem) -> list[dict[str, Any]]:
        body: dict[str, Any] = {
            "model": self.cfg.model, "max_tokens": 400,
            "temperature": max(self.cfg.temperature, 0.7),  # diversity is the point here
            "messages": [{"role": "system", "content": self.template.system},
                         {"role": "user", "content": item.user}]}
        if self.cfg.structured_output:
            body["response_format"] = SCHEMA
        return [body]

    def parse(self, item: SynthItem, text: str, reply: Reply) -> Question | Rejection:
        question = clean_question(text)
        reason = filter_reason(question)
        if reason:
            return reject(item.item_id, self.name, reason, question[:2000])
        return Question(text=question, source=f"synth:{item.mode}", source_id=item.item_id,
                        meta={"synth_mode": item.mode, "synth_model": self.cfg.model,
                              "synth_prompt": SYNTH_VERSION})


# --- compatibility with flows/refresh.py until the lead's runner replaces it -----------------
