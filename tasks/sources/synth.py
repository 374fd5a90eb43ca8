"""LLM question synthesis: `synth:fewshot`, `synth:evolve`, `synth:scratch[:TOPIC]`.

- fewshot: a new question in the style of 3 seed examples drawn by seed.
- evolve: a harder / varied rewrite of one seed question (Evol-Instruct style).
- scratch: a question from a topic and difficulty alone (ScaleQuest style), no seeds.

Synthesized text passes cheap filters here (ASCII only, length bounds); exact and semantic
dedup against the batch and the warehouse is the refresh flow's dedup stage, and the optional
solvability judge (`judge_questions`) runs after dedup, so nobody pays to judge a duplicate.
Every request goes through the teacher's cached client: a rerun synthesizes nothing new.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tasks.errors import InputError
from tasks.pricing import price_for
from tasks.teachers.llm import (
    GenerationStats,
    LLMRequest,
    LLMTeacherConfig,
    ResponseCache,
    complete_all,
    content_of,
    load_template,
    request_key,
)
from tasks.teachers.llm_client import resolve_base_url
from tasks.types import Question, Rejection, stable_hash

MODES = ("fewshot", "evolve", "scratch")
SYNTH_VERSION = "synth_v1"
JUDGE_VERSION = "judge_v1"
MIN_CHARS, MAX_CHARS = 20, 1200
_TOPICS = ("revenue and cost growth between two years", "profit margins",
           "percent change of a budget", "shopping with discounts", "travel speed and time",
           "sharing items among friends", "interest on savings", "unit prices",
           "work rates", "ages of family members")
_DIFFICULTY = ("easy two-step", "medium three-step", "harder four-step")


@dataclass
class SynthContext:
    """What a synth source needs besides n and seed; filled with what it produced."""

    llm: LLMTeacherConfig
    cache: ResponseCache
    run_id: str
    seed_source: str | None = None
    progress: bool = False
    rejections: list[Rejection] = field(default_factory=list)
    stats: GenerationStats = field(default_factory=GenerationStats)


def _body(cfg: LLMTeacherConfig, system: str, user: str, temperature: float) -> dict[str, Any]:
    return {"model": cfg.model, "temperature": temperature, "max_tokens": 400,
            "messages": [{"role": "system", "content": system},
                         {"role": "user", "content": user}]}


def clean_question(text: str | None) -> str:
    """The question in a synthesis answer: no "Question:" label, quotes or fences."""
    t = (text or "").strip().strip("`").strip()
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


def synthesize(spec_arg: str, n: int, seed: int, ctx: SynthContext) -> list[Question]:
    """n synthesized questions (fewer after filters; the filtered leave in ctx.rejections)."""
    mode, _, topic = spec_arg.partition(":")
    if mode not in MODES:
        raise InputError(f"--source synth:{spec_arg}: one of {', '.join(MODES)}")
    seeds: list[Question] = []
    if mode in ("fewshot", "evolve"):
        if not ctx.seed_source:
            raise InputError(f"--source synth:{mode} needs --seed-source (e.g. gsm8k:PATH)")
        from tasks.sources import load_questions

        seeds = load_questions(ctx.seed_source, n=max(50, 3 * n), seed=seed)
        if not seeds:
            raise InputError(f"--seed-source {ctx.seed_source}: no questions")
    template = load_template(SYNTH_VERSION)
    base_url = resolve_base_url(ctx.llm)
    temperature = max(ctx.llm.temperature, 0.7)  # diversity is the point here
    requests: list[LLMRequest] = []
    for i in range(n):
        rng = random.Random(f"synth:{mode}:{seed}:{i}")
        if mode == "fewshot":
            examples = "\n\n".join(f"- {q.text}" for q in rng.sample(seeds, min(3, len(seeds))))
            user = template.sections["fewshot"].format(examples=examples)
        elif mode == "evolve":
            user = template.sections["evolve"].format(question=seeds[i % len(seeds)].text)
        else:
            user = template.sections["scratch"].format(
                topic=topic or rng.choice(_TOPICS), difficulty=rng.choice(_DIFFICULTY),
                index=i)
        body = _body(ctx.llm, template.system, user, temperature)
        requests.append(LLMRequest(request_key(base_url, body, i), f"synth-{i}", i, body, 500))
    price = price_for(ctx.llm.model, ctx.llm.price_in_per_mtok, ctx.llm.price_out_per_mtok)
    responses = complete_all(requests, ctx.llm, ctx.llm.model, ctx.cache, run_id=ctx.run_id,
                             purpose="synth", price=price, stats=ctx.stats,
                             progress=ctx.progress)
    out: list[Question] = []
    for req in requests:
        resp = responses.get(req.key)
        item_id = stable_hash("synth", mode, seed, req.sample_idx)
        if not isinstance(resp, dict):
            ctx.rejections.append(Rejection(item_id, "synth", "llm_error", str(resp)[:2000]))
            continue
        text = clean_question(content_of(resp))
        reason = filter_reason(text)
        if reason:
            ctx.rejections.append(Rejection(item_id, "synth", reason, text[:2000]))
            continue
        out.append(Question(text=text, source=f"synth:{mode}", source_id=item_id,
                            meta={"synth_mode": mode, "synth_model": ctx.llm.model,
                                  "synth_prompt": SYNTH_VERSION}))
    return out


def judge_questions(questions: Sequence[Question], cfg: LLMTeacherConfig,
                    cache: ResponseCache, *, run_id: str, stats: GenerationStats,
                    progress: bool = False
                    ) -> tuple[list[Question], list[Rejection], list[tuple[str, bool | None,
                                                                           str]]]:
    """Ask the judge whether each question is solvable. Returns (kept, rejections,
    verdicts (question_id, solvable, reason)); a failed judge call rejects nothing: the
    question goes on unjudged (solvable None) rather than being lost to a transport error."""
    template = load_template(JUDGE_VERSION)
    base_url = resolve_base_url(cfg)
    reqs = []
    for q in questions:
        body = _body(cfg, template.system, template.user(q.text, q.context), 0.0)
        body["max_tokens"] = 100
        reqs.append(LLMRequest(request_key(base_url, body, 0), q.question_id, 0, body, 200))
    price = price_for(cfg.model, cfg.price_in_per_mtok, cfg.price_out_per_mtok)
    responses = complete_all(reqs, cfg, cfg.model, cache, run_id=run_id, purpose="judge",
                             price=price, stats=stats, progress=progress)
    kept, rejections, verdicts = [], [], []
    for q, req in zip(questions, reqs, strict=True):
        text = (content_of(responses.get(req.key)) or "").strip()  # type: ignore[arg-type]
        m = re.match(r"\W*(yes|no)\b\W*(.*)", text, re.I | re.S)
        solvable = None if m is None else m.group(1).lower() == "yes"
        reason = (m.group(2) if m else text).strip()[:500]
        verdicts.append((q.question_id, solvable, reason))
        if solvable is False:
            rejections.append(Rejection(q.question_id, "judge", "unsolvable", reason))
        else:
            kept.append(q)
    return kept, rejections, verdicts
