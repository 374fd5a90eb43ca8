"""The `openai` teacher: K samples per question from any OpenAI-compatible endpoint.

Bespoke-Curator style: `prompt(question)` builds the request bodies, `parse(text)` reads a
program back; everything in between (cache, retries, limits, cost) is generic.

Resumability (NeMo-Skills' generate loop): every request has a content key (base_url, model,
messages, generation params, sample index). Keys already in the warehouse cache are not sent;
each response is handed to the cache writer the moment it arrives, so a killed run loses only
what was in flight, and a finished run's rerun sends nothing.
"""

from __future__ import annotations

import ast
import asyncio
import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import Field

from tasks.answers import parse_number
from tasks.pricing import price_for
from tasks.render import SYSTEM_PROMPT, extract_program, render_prompt
from tasks.teachers.llm_client import (
    CallResult,
    ClientConfig,
    LLMCall,
    LLMClient,
    resolve_base_url,
    run_coroutine,
)
from tasks.types import Question, Rejection, Sample, stable_hash

TEACHER = "openai"
STAGE = "teacher"
PROMPTS_DIR = Path(__file__).resolve().parents[1] / "prompts"


class LLMTeacherConfig(ClientConfig):
    """What to ask and how (the endpoint part is inherited). No secrets in here."""

    kind: Literal["openai"] = Field("openai", description="teacher kind: any "
                                    "OpenAI-compatible endpoint")
    model: str = "gpt-4o-mini"
    judge: bool = Field(False, description="LLM solvability judge on synthesized questions, "
                        "after dedup")
    seed_source: str | None = Field(None, description="seed questions of synth:fewshot / "
                                    "synth:evolve")
    samples: int = Field(1, ge=1, le=64, description="samples per question")
    temperature: float = Field(0.0, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int = Field(1024, ge=16, le=65_536)
    format: Literal["pot", "cot"] = "pot"
    prompt_version: str | None = Field(None, description="template file in tasks/prompts "
                                       "(default <format>_v1)")
    keep_per_question: int = Field(1, ge=1, le=64, description="correct samples kept")
    min_agreement: float = Field(0.5, ge=0, le=1, description="majority share needed "
                                 "without a gold answer")
    batch: bool = Field(False, description="OpenAI Batch API instead of online requests")
    batch_poll_s: float = Field(30.0, gt=0, le=3600, description="Batch API status poll")
    price_in_per_mtok: float | None = Field(None, ge=0)
    price_out_per_mtok: float | None = Field(None, ge=0)

    @property
    def version(self) -> str:
        return self.prompt_version or f"{self.format}_v1"


# --- templates -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Template:
    """A versioned prompt file: `=== name ===` sections; `=== example DOMAIN ===` sections
    hold `--- context ---`, `--- question ---` and `--- answer ---` parts."""

    version: str
    sections: dict[str, str]
    examples: dict[str, list[dict[str, str]]]

    @property
    def system(self) -> str:
        return self.sections.get("system", SYSTEM_PROMPT)

    def user(self, question: str, context: str = "") -> str:
        ctx = context.strip()
        return self.sections.get("user", "{prompt}").format(
            prompt=render_prompt(question, context), question=question.strip(), context=ctx,
            context_block=f"{ctx}\n\n" if ctx else "")


_SECTION = re.compile(r"^=== (.+?) ===[ \t]*$", re.M)
_PART = re.compile(r"^--- (\w+) ---[ \t]*$", re.M)


@lru_cache(maxsize=32)
def load_template(version: str) -> Template:
    path = PROMPTS_DIR / f"{version}.txt"
    if not re.fullmatch(r"[\w.-]+", version) or not path.is_file():
        raise ValueError(f"prompt version {version!r}: no file {path.name} in {PROMPTS_DIR}")
    text = "\n".join(line for line in path.read_text(encoding="utf-8").splitlines()
                     if not line.startswith("# "))
    pieces = _SECTION.split(text)
    sections: dict[str, str] = {}
    examples: dict[str, list[dict[str, str]]] = {}
    for name, body in zip(pieces[1::2], pieces[2::2], strict=True):
        if name.startswith("example "):
            parts = _PART.split(body)
            examples.setdefault(name.split(" ", 1)[1].strip(), []).append(
                {k: v.strip() for k, v in zip(parts[1::2], parts[2::2], strict=True)})
        else:
            sections[name.strip()] = body.strip("\n")
    return Template(version, sections, examples)


def domain_of(q: Question) -> str:
    """Few-shot domain: questions over a table/paragraphs are financial, the rest word
    problems."""
    return "financial" if q.context.strip() else "word"


def build_messages(q: Question, template: Template) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": template.system}]
    for ex in template.examples.get(domain_of(q), []):
        messages.append({"role": "user",
                         "content": template.user(ex.get("question", ""), ex.get("context", ""))})
        messages.append({"role": "assistant", "content": ex.get("answer", "")})
    messages.append({"role": "user", "content": template.user(q.text, q.context)})
    return messages


# --- prompt(row) and parse(response) ---------------------------------------------------------

@dataclass(frozen=True)
class LLMRequest:
    key: str
    question_id: str
    sample_idx: int
    body: dict[str, Any]
    est_tokens: int


def gen_params(cfg: LLMTeacherConfig) -> dict[str, Any]:
    """What makes two samples different besides the question (part of sample_id)."""
    params: dict[str, Any] = {"temperature": cfg.temperature, "max_tokens": cfg.max_tokens,
                              "format": cfg.format}
    if cfg.top_p is not None:
        params["top_p"] = cfg.top_p
    return params


def request_key(base_url: str, body: dict[str, Any], sample_idx: int) -> str:
    """Content key of a request: same endpoint, model, messages and params = same answer."""
    return stable_hash("llm", base_url, body, sample_idx, length=32)


def prompt(q: Question, cfg: LLMTeacherConfig, base_url: str) -> list[LLMRequest]:
    """The K request bodies of one question."""
    template = load_template(cfg.version)
    body: dict[str, Any] = {"model": cfg.model, "messages": build_messages(q, template),
                            "temperature": cfg.temperature, "max_tokens": cfg.max_tokens}
    if cfg.top_p is not None:
        body["top_p"] = cfg.top_p
    est = sum(len(m["content"]) for m in body["messages"]) // 4 + cfg.max_tokens
    return [LLMRequest(request_key(base_url, body, k), q.question_id, k, body, est)
            for k in range(cfg.samples)]


_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.S | re.I)
_ODD_FENCE = re.compile(r"(```|~~~)[ \t]*(?:python3?|py|Python3?)?[ \t]*\n", re.I)
_CODE_LINE = re.compile(r"^\s*(?:[A-Za-z_]\w*\s*(?:[-+*/]?=)|ans\b|#|import\b|for\b|if\b|"
                        r"else\b|elif\b|return\b|def\b|while\b|\s+\S)")


def _compiles(program: str) -> bool:
    try:
        ast.parse(program)
    except (SyntaxError, ValueError):
        return False
    return True


def _code_run(text: str) -> str | None:
    """Unfenced code in prose: the longest run of code-looking lines ending at the last line
    that assigns `ans`, trimmed from the top until it compiles."""
    lines = text.splitlines()
    ends = [i for i, line in enumerate(lines) if re.match(r"^\s*ans\s*=", line)]
    if not ends:
        return None
    end = ends[-1]
    start = end
    while start > 0 and (_CODE_LINE.match(lines[start - 1]) or not lines[start - 1].strip()):
        start -= 1
    for s in range(start, end + 1):
        candidate = "\n".join(lines[s:end + 1]).strip()
        if candidate and _compiles(candidate):
            return candidate
    return None


def parse_program(text: str) -> str | None:
    """The program in a PoT answer, tolerating reasoning blocks, ```python3 or ~~~ fences,
    unclosed fences and prose around unfenced code; None when no compilable program."""
    if not text:
        return None
    cleaned = _ODD_FENCE.sub("```python\n", _THINK.sub("", text)).replace("~~~", "```")
    program = extract_program(cleaned)
    if program and _compiles(program) and re.search(r"\bans\b", program):
        return program
    return _code_run(cleaned)


_FINAL = re.compile(r"(?:final answer|the answer is|answer:|####)\s*[:=]?\s*\**\s*"
                    r"(?:\\boxed\{)?([^\n}]*)", re.I)
_BOXED = re.compile(r"\\boxed\{([^}]*)\}")


def parse_final_answer(text: str) -> float | None:
    """The marked final answer of a CoT answer ("Final answer: 12.8", "#### 12.8",
    "\\boxed{12.8}"), the last one when several."""
    if not text:
        return None
    body = _THINK.sub("", text)
    found = [m.group(1) for m in _FINAL.finditer(body)] or _BOXED.findall(body)
    for raw in reversed(found):
        token = raw.strip().strip("*").strip().rstrip(".")
        token = re.sub(r"\s*(?:dollars?|percent|%|units?)$", "", token, flags=re.I)
        value = parse_number(token)
        if value is None:
            m = re.search(r"-?\$?\d[\d,]*(?:\.\d+)?", token)
            value = parse_number(m.group(0)) if m else None
        if value is not None:
            return value
    return None


def parse(text: str | None, fmt: str) -> str | None:
    """A program that sets `ans`, or None (unparseable). A CoT answer becomes the one-line
    program `ans = <final answer>` so verification, selection and the curated view treat both
    formats alike; its reasoning stays in `samples.raw`."""
    if fmt == "cot":
        value = parse_final_answer(text or "")
        if value is None:
            return None
        return f"ans = {int(value)!r}\n" if float(value).is_integer() and abs(value) < 1e15 \
            else f"ans = {value!r}\n"
    return parse_program(text or "")


# --- generation ------------------------------------------------------------------------------

class ResponseCache(Protocol):
    """What the teacher needs from the warehouse (warehouse.llm.LLMStore implements it)."""

    def get_cached(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def writer(self) -> AbstractContextManager[Callable[[LLMCall], None]]: ...


@dataclass
class GenerationStats:
    requests: int = 0        # logical requests sent this run
    attempts: int = 0        # HTTP attempts, retries included
    cache_hits: int = 0
    failed: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)

    def as_counts(self, prefix: str = "llm_") -> dict[str, Any]:
        out: dict[str, Any] = {f"{prefix}{k}": v for k, v in self.__dict__.items()
                               if k != "errors"}
        out[f"{prefix}cost_usd"] = round(self.cost_usd, 6)
        out.update({f"{prefix}error_{k}": v for k, v in self.errors.items()})
        return out


def usage_of(data: dict[str, Any] | None) -> tuple[int, int]:
    usage = (data or {}).get("usage") or {}
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def content_of(data: dict[str, Any] | None) -> str | None:
    try:
        return (data or {})["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None


async def _run_requests(requests: Sequence[LLMRequest], client: LLMClient, *, run_id: str,
                        model: str, purpose: str, price: Any,
                        put: Callable[[LLMCall], None], stats: GenerationStats,
                        progress: bool) -> dict[str, CallResult]:
    """Send every request (bounded by the client), hand each result to `put` on arrival."""
    results: dict[str, CallResult] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(requests), desc=f"{purpose} {model}", unit="req")
    pending = iter(requests)

    async def worker() -> None:
        for req in pending:  # the shared iterator hands each request to one worker
            res = await client.complete(req.body, req.est_tokens)
            results[req.key] = res
            t_in, t_out = usage_of(res.data)
            cost = price.cost(t_in, t_out)
            stats.requests += 1
            stats.tokens_in += t_in
            stats.tokens_out += t_out
            stats.cost_usd += cost
            stats.failed += 0 if res.ok else 1
            put(LLMCall(key=req.key, run_id=run_id, model=model, purpose=purpose,
                        request=req.body, response=res.data, error=res.error,
                        attempts=res.attempts, tokens_in=t_in, tokens_out=t_out,
                        cost_usd=cost, latency_ms=res.latency_ms))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(failed=stats.failed, usd=f"{stats.cost_usd:.4f}", refresh=False)

    # Twice the in-flight bound: requests sleeping in backoff hold a worker, not a slot.
    n_workers = min(len(requests), 2 * client.cfg.max_concurrency)
    try:
        await asyncio.gather(*(worker() for _ in range(n_workers)))
    finally:
        if bar is not None:
            bar.close()
    stats.attempts += client.attempts
    for k, v in client.errors.items():
        stats.errors[k] = stats.errors.get(k, 0) + v
    return results


def complete_all(requests: Sequence[LLMRequest], cfg: ClientConfig, model: str,
                 cache: ResponseCache, *, run_id: str, purpose: str, price: Any,
                 stats: GenerationStats, progress: bool = False,
                 send: Callable[..., dict[str, CallResult]] | None = None
                 ) -> dict[str, dict[str, Any] | str]:
    """Response JSON (or the last error string) per request key: cache first, then the
    endpoint for the rest. Duplicated keys are sent once."""
    unique = list({r.key: r for r in requests}.values())
    cached = cache.get_cached([r.key for r in unique])
    stats.cache_hits += len(cached)
    missing = [r for r in unique if r.key not in cached]
    out: dict[str, dict[str, Any] | str] = dict(cached)
    if not missing:
        return out
    if send is not None:  # e.g. the Batch API (its calls are logged by the sender)
        fresh = send(missing)
        for res in fresh.values():
            t_in, t_out = usage_of(res.data)
            stats.requests += 1
            stats.attempts += res.attempts
            stats.failed += 0 if res.ok else 1
            stats.tokens_in += t_in
            stats.tokens_out += t_out
            stats.cost_usd += price.cost(t_in, t_out, batch=True)
    else:
        async def go() -> dict[str, CallResult]:
            async with LLMClient(cfg) as client:
                with cache.writer() as put:
                    return await _run_requests(missing, client, run_id=run_id, model=model,
                                               purpose=purpose, price=price, put=put,
                                               stats=stats, progress=progress)
        fresh = run_coroutine(go)
    for key, res in fresh.items():
        out[key] = res.data if res.data is not None else (res.error or "no response")
    return out


@dataclass
class TeacherOutput:
    samples: list[Sample]          # with a program: to execute and check
    unparsed: list[Sample]         # a response without a program: stored, raw kept
    rejections: list[Rejection]    # questions none of whose samples has a program
    stats: GenerationStats


def llm_samples(questions: Sequence[Question], cfg: LLMTeacherConfig, cache: ResponseCache,
                *, run_id: str, progress: bool = False,
                send: Callable[..., dict[str, CallResult]] | None = None) -> TeacherOutput:
    """K samples per question; every response becomes a Sample (right, wrong or
    unparseable); a question with no program at all leaves as a rejection with the reason."""
    base_url = resolve_base_url(cfg)
    price = price_for(cfg.model, cfg.price_in_per_mtok, cfg.price_out_per_mtok)
    per_question = [(q, prompt(q, cfg, base_url)) for q in questions]
    stats = GenerationStats()
    responses = complete_all([r for _, reqs in per_question for r in reqs], cfg, cfg.model,
                             cache, run_id=run_id, purpose="teacher", price=price,
                             stats=stats, progress=progress, send=send)
    params = gen_params(cfg)
    out = TeacherOutput([], [], [], stats)
    for q, reqs in per_question:
        errors: list[str] = []
        unparsed: list[Sample] = []
        parsed = 0
        for req in reqs:
            resp = responses.get(req.key)
            if not isinstance(resp, dict):
                errors.append(str(resp or "no response"))
                continue
            raw = content_of(resp) or ""
            t_in, t_out = usage_of(resp)
            sample = Sample(question_id=q.question_id, teacher=TEACHER, model=cfg.model,
                            prompt_version=cfg.version, sample_idx=req.sample_idx,
                            program=parse(raw, cfg.format), raw=raw, gen_params=params,
                            tokens_in=t_in, tokens_out=t_out,
                            cost_usd=price.cost(t_in, t_out, batch=cfg.batch))
            if sample.program is None:
                sample.exec_status = "unparseable"
                unparsed.append(sample)
            else:
                parsed += 1
                out.samples.append(sample)
        out.unparsed.extend(unparsed)
        if parsed:
            continue
        if unparsed:
            out.rejections.append(Rejection(q.question_id, STAGE, "unparseable",
                                            unparsed[0].raw[:2000]))
        else:
            out.rejections.append(Rejection(q.question_id, STAGE, "llm_error",
                                            f"{len(errors)}/{len(reqs)} requests failed: "
                                            f"{errors[0] if errors else ''}"))
    return out
