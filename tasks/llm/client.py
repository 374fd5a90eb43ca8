"""An async client for any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, llama.cpp,
TGI) that keeps as many requests in flight as the endpoint sustains (tasks/llm/limiter.py),
and that always ends a request with either a response or the reason it has none.

Why our own retry loop and plain httpx, not the openai SDK: the SDK retries 429/5xx by
itself, but not a 200 whose body is truncated or garbage, its retries are invisible to us, and
its per-request bookkeeping costs more CPU than the HTTP exchange. So every attempt is ours:
counted, backed off with jitter, capped, and its last error kept for the rejection row.

The API key is resolved at the last moment (env var or Prefect Secret block), handed to the
HTTP client's headers and nowhere else; every error text that leaves this module is scrubbed of it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx2
from pydantic import Field

from tasks.llm.limiter import CONGESTION, AdaptiveLimit
from tasks.settings import Settings

OPENAI_BASE_URL = "https://api.openai.com/v1"
_POOL_SIZE = 16
T = TypeVar("T")

# llama.cpp serves `n` choices from `n` slots and refuses more ("Field 'n': Value must be
# between 1 <= value <= 2, but got 4"); OpenAI words its cap as "Invalid 'n': ... Expected a
# value <= 128". The cap is learned per endpoint for the process, from the refusal or from
# llama.cpp's slot count, and a request above it is sent in parts: a refusal about `n` is the
# client's business, never a question's rejection.
_N_NAMED = re.compile(r"""['"`]n['"`]|\bn must\b|\bparameter n\b""")
_N_BOUND = re.compile(r"(?:<=|≤|at most|maximum(?: value)?(?: of| is)?|between \d+ and)\s*(\d+)",
                      re.I)
_N_CAPS: dict[str, int] = {}


def n_cap_from_refusal(message: str, n: int) -> int | None:
    """The largest `n` an endpoint accepts, read from its refusal of a request with `n`
    choices (None: the refusal is about something else). A refusal that names `n` without a
    bound means one choice per request."""
    if n <= 1 or not _N_NAMED.search(message):
        return None
    bound = _N_BOUND.search(message)
    return max(1, min(int(bound.group(1)) if bound else 1, n - 1))


def merge_choices(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One response from the responses to the parts of a request with `n`: the choices in
    order, renumbered, and the usage summed (each part paid its own prompt)."""
    choices: list[dict[str, Any]] = []
    usage: Counter[str] = Counter()
    for part in parts:
        for choice in sorted(part.get("choices") or [], key=lambda c: c.get("index") or 0):
            choices.append({**choice, "index": len(choices)})
        for key, value in (part.get("usage") or {}).items():
            if isinstance(value, int):
                usage[key] += value
    return {**parts[0], "choices": choices, "usage": dict(usage)}


def _with_n(body: dict[str, Any], n: int) -> dict[str, Any]:
    rest = {k: v for k, v in body.items() if k != "n"}
    return {**rest, "n": n} if n > 1 else rest


class ClientConfig(Settings):
    """How to reach the endpoint and how hard to push it. Holds the *name* of the secret,
    never the key: this object is stored with the run's parameters."""

    base_url: str | None = Field(None, description="default $OPENAI_BASE_URL, else OpenAI")
    api_key_env: str = Field("OPENAI_API_KEY", description="env var holding the API key")
    api_key_secret: str | None = Field(None, description="Prefect Secret block with the key "
                                       "(wins over the env var)")
    max_concurrency: int = Field(64, ge=1, le=4096, description="ceiling of requests in "
                                 "flight (the adaptive limit moves below it)")
    adaptive: bool = Field(True, description="adapt requests in flight to what the endpoint "
                           "sustains (cut on timeouts, 429, 503, latency inflation); off: "
                           "always max_concurrency")
    engine_hint: bool = Field(True, description="start from the slot count a local engine "
                              "reports (llama.cpp /props or /slots) instead of the ceiling")
    rpm: int | None = Field(None, ge=1, description="client-side requests/minute cap")
    tpm: int | None = Field(None, ge=1, description="client-side tokens/minute cap")
    request_timeout_s: float = Field(120.0, gt=0, le=3600, description="per attempt; a "
                                     "timed-out request is retried only after as long again, "
                                     "since the engine may still be generating it")
    max_retries: int = Field(6, ge=0, le=100, description="retries after the first attempt")
    backoff_base_s: float = Field(0.5, ge=0, le=60, description="first retry waits about "
                                  "this long, doubling each time (with jitter)")
    backoff_max_s: float = Field(30.0, ge=0, le=600, description="longest wait between "
                                 "attempts")


class MissingAPIKey(RuntimeError):
    """No key for an endpoint that needs one."""


def resolve_base_url(cfg: ClientConfig) -> str:
    return (cfg.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL).rstrip("/")


def resolve_api_key(cfg: ClientConfig, base_url: str) -> str:
    """The key from the Secret block, else the env var. Local servers (vLLM, Ollama) accept
    any key, so a placeholder is used there; api.openai.com without a key is an error."""
    key: str | None = None
    if cfg.api_key_secret:
        from prefect.blocks.system import Secret

        key = str(Secret.load(cfg.api_key_secret).get())
    if not key:
        key = os.environ.get(cfg.api_key_env) or None
    if key:
        return key
    if base_url.startswith(OPENAI_BASE_URL):
        raise MissingAPIKey(f"no API key: set ${cfg.api_key_env} or --api-key-secret")
    return "not-needed"


def scrub(text: str, secret: str | None) -> str:
    """`text` without the secret (providers echo keys, partly or fully, in 401 bodies)."""
    if secret and len(secret) >= 8 and secret != "not-needed":
        text = text.replace(secret, "***")
        # OpenAI echoes "sk-abc***********wxyz": drop any long substring of the key too.
        for n in (24, 16, 12):
            if len(secret) > n:
                for i in range(0, len(secret) - n + 1, 4):
                    if secret[i:i + n] in text:
                        text = text.replace(secret[i:i + n], "***")
    return text


class TokenBucket:
    """Client-side per-minute limit. Refills continuously; holds at most `burst_s` seconds of
    budget so a fresh run cannot fire a whole minute's quota in its first second."""

    def __init__(self, per_minute: float, burst_s: float = 6.0) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_s)
        self.level = self.capacity
        self.updated = time.monotonic()
        self.lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    async def take(self, amount: float) -> None:
        amount = min(amount, self.capacity)  # a request above the burst still goes, alone
        async with self.lock:  # FIFO: waiters are served in arrival order
            self._refill()
            while self.level < amount:
                await asyncio.sleep((amount - self.level) / self.rate)
                self._refill()
            self.level -= amount

    def correct(self, delta: float) -> None:
        """Charge (or refund) the difference between estimated and actual usage."""
        self._refill()
        self.level -= delta


@dataclass
class CallResult:
    """The end of one logical request: a response (`data`, the completion as JSON) or the
    last error after `attempts` tries. Errors are already scrubbed of the key."""

    data: dict[str, Any] | None
    error: str = ""
    attempts: int = 0
    latency_ms: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    n_refused: bool = False  # the endpoint refused the request's `n` (and said its cap)

    @property
    def ok(self) -> bool:
        return self.data is not None


class _StatusError(Exception):
    """An error status that another attempt would not change (400, 401, 404, 422, ...)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


class _Retryable(Exception):
    def __init__(self, kind: str, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.delay = delay


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Server-requested wait: `retry-after-ms` (OpenAI), else `retry-after` in seconds."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) / scale)
            except ValueError:
                continue  # an HTTP date: rare, fall back to our own backoff
    return None


def _check_completion(data: Any) -> dict[str, Any]:
    """A parsed body is only a response if it has a message; anything else is retried."""
    if not isinstance(data, dict):
        raise _Retryable("bad_response", f"response is {type(data).__name__}, not an object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise _Retryable("bad_response", "response without choices")
    for choice in choices:
        msg = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(msg, dict) or not isinstance(msg.get("content"), str | None):
            raise _Retryable("bad_response", "choice without a message")
    return data


class LLMClient:
    """Bounded, rate-limited, retrying chat completions. Use inside one event loop."""

    def __init__(self, cfg: ClientConfig, *, api_key: str | None = None,
                 base_url: str | None = None) -> None:
        self.cfg = cfg
        self.base_url = base_url or resolve_base_url(cfg)
        self._key = api_key if api_key is not None else resolve_api_key(cfg, self.base_url)
        # httpcore scans every pooled connection on each request (O(pool) per request), so a
        # pool of 256 costs more CPU than the request itself: shard into pools of <= 16
        # (at 64 in flight: 0.84 ms of CPU per request with pools of 32, 0.80 with 16).
        shards = -(-cfg.max_concurrency // _POOL_SIZE)
        per_shard = -(-cfg.max_concurrency // shards)
        timeout = httpx2.Timeout(cfg.request_timeout_s, connect=min(10.0, cfg.request_timeout_s))
        # Plain httpx, not the openai SDK's request path: per request the SDK deep-copies its
        # options, builds a pydantic model and a dozen headers, which cost more CPU than the
        # HTTP exchange (bench/teacher.py). Errors are mapped from status codes below.
        headers = {"authorization": f"Bearer {self._key}", "content-type": "application/json",
                   "accept": "application/json"}
        self._https = [
            httpx2.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout,
                               limits=httpx2.Limits(max_connections=per_shard,
                                                    max_keepalive_connections=per_shard))
            for _ in range(shards)]
        self._next = itertools.cycle(self._https)
        self.limiter = AdaptiveLimit(cfg.max_concurrency, adaptive=cfg.adaptive)
        # An endpoint that refuses `response_format` (400/422) gets plain requests from then
        # on; the step parses the answer from text either way.
        self.plain_output = False
        self._rpm = TokenBucket(cfg.rpm) if cfg.rpm else None
        self._tpm = TokenBucket(cfg.tpm) if cfg.tpm else None
        self.attempts = 0
        self.errors: Counter[str] = Counter()
        self.max_n: int | None = _N_CAPS.get(self.base_url)

    async def aclose(self) -> None:
        for http in self._https:
            await http.aclose()

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start_from_engine(self) -> None:
        """Take a local engine's word for the sequences it serves at once (llama.cpp:
        /props total_slots, else the length of /slots): the adaptive limit begins there, and
        no request asks for more choices (`n`) than that. Hosted APIs are not asked."""
        if not self.cfg.engine_hint or self.base_url.startswith(OPENAI_BASE_URL):
            return
        slots = await engine_slots(self.base_url)
        if slots:
            self._cap_n(slots)
            if self.cfg.adaptive:
                self.limiter.start_at(slots)

    def _cap_n(self, cap: int) -> None:
        self.max_n = _N_CAPS[self.base_url] = min(cap, self.max_n or cap)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * 2 ** (attempt - 1))
        return ceiling / 2 + random.random() * ceiling / 2  # "equal jitter"

    async def _attempt(self, body: dict[str, Any], endpoint: str) -> dict[str, Any]:
        path = "chat/completions" if endpoint == "chat" else "completions"
        try:
            # A hard deadline on top of httpx's per-read timeout: a server that trickles
            # bytes must not hold a slot forever.
            async with asyncio.timeout(self.cfg.request_timeout_s + 1.0):
                r = await next(self._next).post(path, content=json.dumps(body).encode())
        except (httpx2.TimeoutException, TimeoutError):
            raise _Retryable("timeout", "request timed out") from None
        except httpx2.TransportError as exc:
            raise _Retryable("connection", f"connection error: {type(exc).__name__}: "
                             f"{exc}"[:300]) from None
        if not r.is_success:
            status, text = r.status_code, _status_text(r)
            if status == 429 or status >= 500 or status in (408, 409):
                raise _Retryable(str(status), text, retry_after_s(r.headers))
            raise _StatusError(status, text)  # 400/401/403/404/422: retrying does not help
        try:
            # Parsed here: no pydantic model per response (CPU), and a truncated or garbled
            # 200 body fails here and is retried.
            return _check_completion(json.loads(r.content))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _Retryable("bad_json", f"unparseable response body: {exc}"[:300]) from None

    async def complete(self, body: dict[str, Any], est_tokens: int = 0,
                       endpoint: str = "chat") -> CallResult:
        """One logical request: attempts until a valid response, a non-retryable error or the
        retry cap. Never raises for remote failures: the result carries the last error.
        A request for more choices (`n`) than the endpoint serves goes in parts, and its
        result is one response with all the choices."""
        n = int(body.get("n") or 1)
        if self.max_n is not None and n > self.max_n:
            return await self._in_parts(body, n, est_tokens, endpoint)
        res = await self._complete(body, est_tokens, endpoint)
        if res.n_refused:
            return await self._in_parts(body, n, est_tokens, endpoint, refused=res)
        return res

    async def _in_parts(self, body: dict[str, Any], n: int, est_tokens: int, endpoint: str,
                        refused: CallResult | None = None) -> CallResult:
        cap = self.max_n or 1
        sizes = [min(cap, n - start) for start in range(0, n, cap)]
        parts = await asyncio.gather(*(self.complete(_with_n(body, k), est_tokens * k // n,
                                                     endpoint) for k in sizes))
        errors: Counter[str] = Counter(refused.errors if refused else {})
        for part in parts:
            errors.update(part.errors)
        attempts = sum(p.attempts for p in parts) + (refused.attempts if refused else 0)
        failed = next((p for p in parts if not p.ok), None)
        if failed is not None:
            return CallResult(None, failed.error, attempts, 0.0, errors)
        return CallResult(merge_choices([p.data for p in parts if p.data is not None]), "",
                          attempts, max(p.latency_ms for p in parts), errors)

    async def _complete(self, body: dict[str, Any], est_tokens: int, endpoint: str
                        ) -> CallResult:
        errors: Counter[str] = Counter()
        last = ""
        attempts = 0
        for attempt in range(1, self.cfg.max_retries + 2):
            if self._rpm:
                await self._rpm.take(1)
            if self._tpm:
                await self._tpm.take(est_tokens)
            attempts = attempt
            self.attempts += 1
            delay: float | None = None
            if self.plain_output and "response_format" in body:
                body = {k: v for k, v in body.items() if k != "response_format"}
            ticket = await self.limiter.acquire()
            t0 = time.perf_counter()
            abandoned = False
            try:
                data = await self._attempt(body, endpoint)
            except _Retryable as exc:
                errors[exc.kind] += 1
                last = f"{exc.kind}: {exc}"
                delay = exc.delay
                if exc.kind == "timeout":
                    self.limiter.on_timeout(ticket.epoch, self.cfg.request_timeout_s)
                elif exc.kind in CONGESTION:
                    self.limiter.on_congestion(ticket.epoch)
                # The engine may still be generating a timed-out attempt: its slot stays
                # taken, and this request is not sent again, until it has plausibly finished.
                abandoned = exc.kind == "timeout"
            except _StatusError as exc:
                cap = n_cap_from_refusal(str(exc), int(body.get("n") or 1)) \
                    if exc.status_code in (400, 422) else None
                if exc.status_code in (400, 422) and "response_format" in body:
                    self.plain_output = True
                    errors["no_response_format"] += 1
                    last = f"{exc.status_code}: {exc}"
                    delay = 0.0
                elif cap is not None:
                    self._cap_n(cap)
                    errors["n_capped"] += 1
                    self.errors.update(errors)
                    return CallResult(None, scrub(f"{exc.status_code}: {exc}", self._key),
                                      attempts, 0.0, errors, n_refused=True)
                else:
                    errors[str(exc.status_code)] += 1
                    self.errors.update(errors)
                    return CallResult(None, scrub(f"{exc.status_code}: {exc}", self._key),
                                      attempts, 0.0, errors)
            else:
                latency = time.perf_counter() - t0
                t_in, t_out = _usage(data)
                self.limiter.on_success(ticket.epoch, latency, t_out + t_in / 16 + 1,
                                        _service_s(data))
                if self._tpm and t_in + t_out:
                    self._tpm.correct(t_in + t_out - est_tokens)
                self.errors.update(errors)
                return CallResult(data, "", attempts, latency * 1000, errors)
            finally:
                if abandoned:
                    await self.limiter.abandon(ticket, self.cfg.request_timeout_s)
                else:
                    await self.limiter.release()
            if attempt <= self.cfg.max_retries:
                await asyncio.sleep(delay if delay is not None else self._backoff(attempt))
        self.errors.update(errors)
        return CallResult(None, scrub(f"gave up after {attempts} attempts; last {last}",
                                      self._key), attempts, 0.0, errors)


def _usage(data: dict[str, Any]) -> tuple[int, int]:
    usage = data.get("usage") or {}
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def _service_s(data: dict[str, Any]) -> float | None:
    """Seconds llama.cpp spent on the prompt and the answer (its `timings`), else None."""
    t = data.get("timings")
    if not isinstance(t, dict):
        return None
    try:
        return (float(t.get("prompt_ms") or 0) + float(t.get("predicted_ms") or 0)) / 1000
    except (TypeError, ValueError):
        return None


async def engine_slots(base_url: str) -> int | None:
    """Sequences a llama.cpp server serves at once, from /props or /slots (None: not a
    llama.cpp server, or it does not say)."""
    root = base_url.removesuffix("/v1")
    async with httpx2.AsyncClient(timeout=2.0) as http:
        for path in ("/props", "/slots"):
            try:
                r = await http.get(root + path)
                data = r.json() if r.status_code == 200 else None
            except (httpx2.HTTPError, ValueError):
                continue
            if isinstance(data, dict) and isinstance(data.get("total_slots"), int):
                return data["total_slots"]
            if isinstance(data, list) and data and all(isinstance(x, dict) for x in data):
                return len(data)
    return None


_N_SUPPORT: dict[tuple[str, str], bool] = {}


def probe_n(cfg: ClientConfig, model: str) -> bool:
    """Does the endpoint answer `n` > 1 with that many choices? One 1-token request, asked
    once per endpoint and model in a process (OpenAI and vLLM do; Ollama answers one)."""
    base_url = resolve_base_url(cfg)
    if (base_url, model) in _N_SUPPORT:
        return _N_SUPPORT[(base_url, model)]

    async def ask() -> bool:
        one = cfg.model_copy(update={"max_retries": 1, "max_concurrency": 1, "adaptive": False})
        async with LLMClient(one) as client:
            res = await client.complete({"model": model, "n": 2, "max_tokens": 1,
                                         "temperature": 1.0, "messages": [
                                             {"role": "user", "content": "Say OK."}]})
        return res.ok and len((res.data or {}).get("choices") or []) == 2

    _N_SUPPORT[(base_url, model)] = supported = run_coroutine(ask)
    return supported


def _status_text(r: httpx2.Response) -> str:
    """`<status> <the error message>` of an error response (OpenAI's {"error": {"message"}}
    shape, else the body's first 300 characters)."""
    try:
        body = r.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        err = body.get("error", body)
        msg = err.get("message") if isinstance(err, dict) else err
        if msg:
            return f"{r.status_code} {str(msg)[:300]}"
    return f"{r.status_code} {r.text[:300]}"


def run_coroutine(factory: Callable[[], Coroutine[Any, Any, T] | Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, in a fresh thread with its own loop:
    Prefect may already run a loop in the calling thread."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(factory())  # type: ignore[arg-type]
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="llm-loop", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


@dataclass
class LLMCall:
    """One logical request as the warehouse records it: the request body (never the key),
    the response when there is one, and what it cost. `purpose` is teacher | synth | judge."""

    key: str
    run_id: str
    model: str
    purpose: str
    request: dict[str, Any]
    response: dict[str, Any] | None
    error: str = ""
    attempts: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    via: str = "online"  # online | batch

    @property
    def status(self) -> str:
        return "ok" if self.response is not None else "failed"
