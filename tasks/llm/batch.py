"""OpenAI Batch API for an LLM step: half the price, results within 24 h.

Requests that are not in the cache are written as JSONL (custom_id = the request's cache key),
split under the API's limits, uploaded, and submitted as batches whose ids are stored in the
warehouse before anything is polled: a killed run's successor finds its open batches by the
keys it still needs and resumes polling them instead of paying again. Downloaded responses go
through the same cache writer as online ones. Lines a batch failed or left out are retried
online (with the usual retry loop), so every request still ends with a response or an error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import openai

from tasks.llm.client import (
    CallResult,
    LLMCall,
    LLMClient,
    resolve_api_key,
    resolve_base_url,
    run_coroutine,
    scrub,
)
from tasks.llm.config import LLMConfig
from tasks.llm.core import GenerationStats, LLMRequest, run_requests, usage_of
from tasks.pricing import Price, price_for

MAX_LINES = 50_000
MAX_BYTES = 190 * 1024 * 1024  # the API takes 200 MB per file; keep a margin
TERMINAL = {"completed", "failed", "expired", "cancelled"}


def split_jsonl(requests: Sequence[LLMRequest], *, max_lines: int = MAX_LINES,
                max_bytes: int = MAX_BYTES) -> list[tuple[list[str], bytes]]:
    """(keys, file content) chunks, each under both limits."""
    chunks: list[tuple[list[str], bytes]] = []
    keys: list[str] = []
    lines: list[bytes] = []
    size = 0
    for r in requests:
        line = json.dumps({"custom_id": r.key, "method": "POST", "url": "/v1/chat/completions",
                           "body": r.body}).encode() + b"\n"
        if keys and (len(keys) >= max_lines or size + len(line) > max_bytes):
            chunks.append((keys, b"".join(lines)))
            keys, lines, size = [], [], 0
        keys.append(r.key)
        lines.append(line)
        size += len(line)
    if keys:
        chunks.append((keys, b"".join(lines)))
    return chunks


def batch_sender(cfg: LLMConfig, store: Any, *, run_id: str, purpose: str = "teacher",
                 progress: bool = False
                 ) -> Callable[[Sequence[LLMRequest]], dict[str, CallResult]]:
    """A `send` for `complete_all` that goes through the Batch API. `store` is the
    warehouse's LLMStore (cache writer and batch table)."""

    def send(missing: Sequence[LLMRequest]) -> dict[str, CallResult]:
        base_url = resolve_base_url(cfg)
        key = resolve_api_key(cfg, base_url)
        # Few control calls (upload, create, poll): the SDK's own retries are fine here.
        client = openai.OpenAI(api_key=key, base_url=base_url, max_retries=5,
                               timeout=cfg.request_timeout_s)
        price = price_for(cfg.model, cfg.price_in_per_mtok, cfg.price_out_per_mtok)
        by_key = {r.key: r for r in missing}
        results: dict[str, CallResult] = {}
        try:
            batches = store.open_batches(list(by_key))
            covered = {k for b in batches for k in b["request_keys"]}
            for keys, content in split_jsonl([r for r in missing if r.key not in covered]):
                uploaded = client.files.create(file=("requests.jsonl", content),
                                               purpose="batch")
                created = client.batches.create(input_file_id=uploaded.id,
                                                endpoint="/v1/chat/completions",
                                                completion_window="24h")
                store.save_batch(created.id, run_id, uploaded.id, keys, created.status)
                batches.append({"batch_id": created.id, "request_keys": keys})
            with store.writer() as put:
                for b in batches:
                    _collect(client, store, b["batch_id"], by_key, results, put, run_id,
                             cfg, price, purpose)
        except openai.OpenAIError as exc:
            raise RuntimeError(scrub(f"Batch API: {exc}", key)) from None
        finally:
            client.close()
        retry = [r for r in missing if r.key not in results or not results[r.key].ok]
        if retry:  # lines the batch failed or dropped: online, with the usual retries
            async def online() -> dict[str, CallResult]:
                async with LLMClient(cfg, api_key=key, base_url=base_url) as llm:
                    with store.writer() as put:
                        return await run_requests(retry, llm, run_id=run_id, model=cfg.model,
                                                  purpose=purpose, price=price, put=put,
                                                  stats=GenerationStats(), progress=progress)
            results.update(run_coroutine(online))
        return results

    return send


def _collect(client: openai.OpenAI, store: Any, batch_id: str, by_key: dict[str, LLMRequest],
             results: dict[str, CallResult], put: Callable[[LLMCall], None], run_id: str,
             cfg: LLMConfig, price: Price, purpose: str) -> None:
    batch = client.batches.retrieve(batch_id)
    while batch.status not in TERMINAL:
        store.update_batch(batch_id, batch.status)
        time.sleep(cfg.batch_poll_s)
        batch = client.batches.retrieve(batch_id)
    store.update_batch(batch_id, batch.status, batch.output_file_id, batch.error_file_id)
    for file_id in (batch.output_file_id, batch.error_file_id):
        if not file_id:
            continue
        for line in client.files.content(file_id).text.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            req = by_key.get(item.get("custom_id", ""))
            if req is None:
                continue  # a resumed batch's line that this run does not need any more
            response = item.get("response") or {}
            body = response.get("body")
            if response.get("status_code") == 200 and isinstance(body, dict) and \
                    body.get("choices"):
                t_in, t_out = usage_of(body)
                cost = price.cost(t_in, t_out, batch=True)
                results[req.key] = CallResult(body, attempts=1)
                put(LLMCall(key=req.key, run_id=run_id, model=cfg.model, purpose=purpose,
                            request=req.body, response=body, attempts=1, tokens_in=t_in,
                            tokens_out=t_out, cost_usd=cost, via="batch"))
            else:
                err = (body or {}).get("error") if isinstance(body, dict) else None
                results.setdefault(req.key, CallResult(
                    None, f"batch line {response.get('status_code')}: "
                          f"{(err or {}).get('message', item.get('error'))}"[:300], 1))
    store.update_batch(batch_id, "downloaded")
