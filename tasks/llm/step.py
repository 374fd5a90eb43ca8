"""`LLMStep`: a pipeline stage whose work is asking an LLM (Bespoke Curator's prompt/parse).

A subclass says what to ask and how to read the answer:

    prompt(item) -> list of request bodies (one per sample; one with "n" for K samples)
    parse(item, text, reply) -> output | Rejection

and `run(items) -> StageResult` does the rest, once for the teacher, synthesis and the judge:
content keys, the warehouse cache, the adaptive-concurrency client, cost and token counts
(`<prefix>requests`, `<prefix>cost_usd`, ...), a rejection `llm_error` for a request that
failed for good and `truncated` for an answer cut by the length limit (a rambling model is not
retried: the same request would ramble again).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from tasks.llm.client import resolve_base_url
from tasks.llm.config import LLMConfig
from tasks.llm.core import (
    GenerationStats,
    LLMRequest,
    ResponseCache,
    Sender,
    choices_of,
    complete_all,
    estimate_tokens,
    request_key,
    usage_of,
)
from tasks.pricing import price_for
from tasks.stage import Stage, StageResult, reject
from tasks.types import Rejection

I = TypeVar("I")  # noqa: E741 - the conventional name of the input type
O = TypeVar("O")  # noqa: E741


@dataclass(frozen=True)
class Reply:
    """One answer (one choice of one response) and what it cost."""

    index: int            # sample index: request position (+ choice index with "n")
    finish_reason: str
    tokens_in: int
    tokens_out: int
    cost_usd: float


@dataclass(frozen=True)
class LLMFailure:
    """A request that ended without a response (the client's last error, key scrubbed)."""

    error: str


Outcome = Any  # O | Rejection | LLMFailure


class LLMStep(Stage[I, O]):
    """Subclasses set `name` (the stage), `purpose` (llm_requests.purpose), `prefix` (of its
    counts) and implement `item_id`, `prompt` and `parse`; `settle` may be overridden to
    decide per item from all its outcomes (the teacher's K samples)."""

    name: ClassVar[str] = "llm"
    purpose: ClassVar[str] = "llm"
    prefix: ClassVar[str] = "llm_"
    reject_truncated: ClassVar[bool] = True
    batch_size: int | None = None

    def __init__(self, cfg: LLMConfig, cache: ResponseCache, run_id: str,
                 progress: bool = False, send: Sender | None = None) -> None:
        self.cfg = cfg
        self.cache = cache
        self.run_id = run_id
        self.progress = progress
        self.send = send
        self.base_url = resolve_base_url(cfg)
        self.price = price_for(cfg.model, cfg.price_in_per_mtok, cfg.price_out_per_mtok)
        self.stats = GenerationStats()  # of the last run

    # --- what a subclass writes ------------------------------------------------------------
    def item_id(self, item: I) -> str:
        raise NotImplementedError

    def prompt(self, item: I) -> list[dict[str, Any]]:
        raise NotImplementedError

    def parse(self, item: I, text: str, reply: Reply) -> O | Rejection:
        raise NotImplementedError

    def request_index(self, item: I, position: int) -> int:
        """The sample index in a request's content key (its position among the item's)."""
        return position

    def settle(self, item: I, outcomes: list[Outcome], result: StageResult[O]) -> None:
        """Default: every parsed output is kept, every rejection stays one, and a failed
        request rejects its item with `llm_error`."""
        for out in outcomes:
            if isinstance(out, LLMFailure):
                result.rejections.append(reject(self.item_id(item), self.name, "llm_error",
                                                out.error[:2000]))
            elif isinstance(out, Rejection):
                result.rejections.append(out)
            else:
                result.kept.append(out)

    # --- the rest, written once ------------------------------------------------------------
    def requests(self, item: I) -> list[LLMRequest]:
        out = []
        for pos, body in enumerate(self.prompt(item)):
            idx = self.request_index(item, pos)
            out.append(LLMRequest(request_key(self.base_url, body, idx), self.item_id(item),
                                  idx, body, estimate_tokens(body)))
        return out

    def complete(self, requests: Sequence[LLMRequest], stats: GenerationStats
                 ) -> dict[str, dict[str, Any] | str]:
        return complete_all(requests, self.cfg, self.cfg.model, self.cache,
                            run_id=self.run_id, purpose=self.purpose, price=self.price,
                            stats=stats, progress=self.progress, send=self.send)

    def run(self, items: list[I]) -> StageResult[O]:
        planned = [(item, self.requests(item)) for item in items]
        stats = self.stats = GenerationStats()
        responses = self.complete([r for _, reqs in planned for r in reqs], stats)
        result: StageResult[O] = StageResult()
        for item, reqs in planned:
            outcomes: list[Outcome] = []
            for req in reqs:
                resp = responses.get(req.key)
                if not isinstance(resp, dict):
                    outcomes.append(LLMFailure(str(resp or "no response")))
                    continue
                outcomes.extend(self._read(item, req, resp))
            self.settle(item, outcomes, result)
        # The limit over time (stats.limits) is already stored by complete_all.
        result.counts.update(stats.as_counts(self.prefix))
        return result

    def _read(self, item: I, req: LLMRequest, resp: dict[str, Any]) -> list[Outcome]:
        t_in, t_out = usage_of(resp)
        choices = choices_of(resp)
        k = max(1, len(choices))
        batch = self.send is not None and self.cfg.batch
        out: list[Outcome] = []
        for c, (text, finish) in enumerate(choices):
            # With "n" the prompt is paid once: its tokens go to the first sample.
            s_in, s_out = (t_in if c == 0 else 0), t_out // k + (t_out % k if c == 0 else 0)
            reply = Reply(req.sample_idx + c, finish, s_in, s_out,
                          self.price.cost(s_in, s_out, batch=batch))
            if finish == "length" and self.reject_truncated:
                out.append(reject(self.item_id(item), self.name, "truncated",
                                  f"cut at max_tokens={req.body.get('max_tokens')}: "
                                  f"{text[:1800]}"))
            else:
                out.append(self.parse(item, text, reply))
        return out
