"""The LLM call sequence, written once: versioned templates, content-keyed requests, the cache
in front of the endpoint, and the sending loop that hands each response to the warehouse the
moment it arrives.

Resumability (NeMo-Skills' generate loop): every request has a content key (base_url, model,
messages, generation params, sample index). Keys already in the warehouse cache are not sent;
each response is handed to the cache writer on arrival, so a killed run loses only what was in
flight, and a finished run's rerun sends nothing.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from tasks.llm.client import CallResult, ClientConfig, LLMCall, LLMClient, run_coroutine
from tasks.pricing import Price
from tasks.render import SYSTEM_PROMPT, render_prompt
from tasks.types import stable_hash

PROMPTS_DIR = Path(__file__).resolve().parents[1] / "prompts"


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


# --- requests and responses ------------------------------------------------------------------

@dataclass(frozen=True)
class LLMRequest:
    key: str
    item_id: str
    sample_idx: int
    body: dict[str, Any]
    est_tokens: int


def request_key(base_url: str, body: dict[str, Any], sample_idx: int) -> str:
    """Content key of a request: same endpoint, model, messages and params = same answer."""
    return stable_hash("llm", base_url, body, sample_idx, length=32)


def estimate_tokens(body: dict[str, Any]) -> int:
    """What a request may cost against a tokens/minute cap: its prompt at ~4 characters a
    token plus everything it may generate."""
    chars = sum(len(m.get("content") or "") for m in body.get("messages", []))
    return chars // 4 + int(body.get("max_tokens") or 0) * int(body.get("n") or 1)


def usage_of(data: dict[str, Any] | None) -> tuple[int, int]:
    usage = (data or {}).get("usage") or {}
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def content_of(data: dict[str, Any] | None, index: int = 0) -> str | None:
    try:
        return (data or {})["choices"][index]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None


def choices_of(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(text, finish_reason) of every choice, in choice-index order."""
    choices = sorted(data.get("choices") or [], key=lambda c: c.get("index") or 0)
    return [((c.get("message") or {}).get("content") or "", c.get("finish_reason") or "")
            for c in choices]


class ResponseCache(Protocol):
    """What an LLM step needs from the warehouse (warehouse.llm.LLMStore implements it)."""

    def get_cached(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def writer(self) -> AbstractContextManager[Callable[[LLMCall], None]]: ...

    def save_limits(self, run_id: str, purpose: str,
                    rows: Sequence[tuple[float, float, int]]) -> None: ...


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
    # (seconds since the first request, requests allowed in flight, in flight): the adaptive
    # limit over time, one row per change.
    limits: list[tuple[float, float, int]] = field(default_factory=list)

    def as_counts(self, prefix: str = "llm_") -> dict[str, Any]:
        out: dict[str, Any] = {f"{prefix}{k}": v for k, v in self.__dict__.items()
                               if k not in ("errors", "limits")}
        out[f"{prefix}cost_usd"] = round(self.cost_usd, 6)
        out.update({f"{prefix}error_{k}": v for k, v in self.errors.items()})
        if self.limits:
            out[f"{prefix}limit_final"] = round(self.limits[-1][1], 2)
            out[f"{prefix}limit_min"] = round(min(r[1] for r in self.limits), 2)
            out[f"{prefix}limit_max"] = round(max(r[1] for r in self.limits), 2)
        return out

    def add(self, res: CallResult, t_in: int, t_out: int, cost: float) -> None:
        self.requests += 1
        self.tokens_in += t_in
        self.tokens_out += t_out
        self.cost_usd += cost
        self.failed += 0 if res.ok else 1


async def run_requests(requests: Sequence[LLMRequest], client: LLMClient, *, run_id: str,
                       model: str, purpose: str, price: Price,
                       put: Callable[[LLMCall], None], stats: GenerationStats,
                       progress: bool) -> dict[str, CallResult]:
    """Send every request (bounded by the client's limiter), hand each result to `put` on
    arrival."""
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
            stats.add(res, t_in, t_out, cost)
            put(LLMCall(key=req.key, run_id=run_id, model=model, purpose=purpose,
                        request=req.body, response=res.data, error=res.error,
                        attempts=res.attempts, tokens_in=t_in, tokens_out=t_out,
                        cost_usd=cost, latency_ms=res.latency_ms))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(failed=stats.failed, usd=f"{stats.cost_usd:.4f}",
                                limit=round(client.limiter.limit, 1), refresh=False)

    # Twice the ceiling: requests sleeping in backoff hold a worker, not a slot.
    n_workers = min(len(requests), 2 * client.cfg.max_concurrency)
    try:
        await asyncio.gather(*(worker() for _ in range(n_workers)))
    finally:
        if bar is not None:
            bar.close()
    stats.attempts += client.attempts
    for k, v in client.errors.items():
        stats.errors[k] = stats.errors.get(k, 0) + v
    stats.limits.extend(client.limiter.history)
    return results


Sender = Callable[[Sequence[LLMRequest]], dict[str, CallResult]]


def complete_all(requests: Sequence[LLMRequest], cfg: ClientConfig, model: str,
                 cache: ResponseCache, *, run_id: str, purpose: str, price: Price,
                 stats: GenerationStats, progress: bool = False, send: Sender | None = None
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
            stats.add(res, t_in, t_out, price.cost(t_in, t_out, batch=True))
            stats.attempts += res.attempts
    else:
        async def go() -> dict[str, CallResult]:
            async with LLMClient(cfg) as client:
                await client.start_from_engine()
                with cache.writer() as put:
                    return await run_requests(missing, client, run_id=run_id, model=model,
                                              purpose=purpose, price=price, put=put,
                                              stats=stats, progress=progress)
        fresh = run_coroutine(go)
        if stats.limits:
            cache.save_limits(run_id, purpose, stats.limits)
    for key, res in fresh.items():
        out[key] = res.data if res.data is not None else (res.error or "no response")
    return out
