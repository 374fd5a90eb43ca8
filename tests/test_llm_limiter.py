"""Adaptive concurrency, bounded generation, structured output and `n`, against the local
OpenAI-compatible test server (tests/fake_openai.py) in its saturating and fault modes."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tasks.judge import Judge
from tasks.llm.client import ClientConfig, LLMClient
from tasks.llm.config import LLMConfig
from tasks.llm.limiter import AdaptiveLimit
from tasks.sources import load_questions
from tasks.teachers.llm import LLMTeacher, LLMTeacherConfig
from tasks.types import Question
from warehouse.llm import LLMStore

sys.path.insert(0, str(Path(__file__).parent))
from fake_openai import FakeOpenAI  # noqa: E402

BODY = {"model": "m", "max_tokens": 16,
        "messages": [{"role": "user", "content": "Question: what is 2 + 2?"}]}


def _questions(n: int, seed: int) -> list[Question]:
    return load_questions("procedural", n=n, seed=seed)


def _answers(qs: list[Question]) -> dict:
    return {(q.text, q.context.strip()): q.gold_program for q in qs}


# --- the limit itself --------------------------------------------------------------------------

def test_limit_halves_once_per_window_grows_only_when_full_and_stays_under_the_ceiling():
    lim = AdaptiveLimit(64)
    assert lim.limit == 64
    lim.on_congestion(epoch=0)
    lim.on_congestion(epoch=0)  # the same window's second timeout: no second cut
    assert lim.limit == 32 and lim.epoch == 1
    lim.on_congestion(epoch=1)
    assert lim.limit == 16
    lim.in_flight = 3  # far from the limit: success says nothing about more
    lim.on_success(epoch=2, latency_s=1.0)
    assert lim.limit == 16
    lim.in_flight = 16
    for _ in range(16):
        lim.on_success(epoch=2, latency_s=1.0)
    assert 16.9 < lim.limit < 17.1  # about +1 per full window
    lim.in_flight = 0
    lim.on_success(epoch=2, latency_s=10.0)  # one slow response: noise, no cut
    assert lim.epoch == 2
    for _ in range(30):  # every response 5x slower: a queue; one cut for the window
        lim.on_success(epoch=2, latency_s=5.0)
    assert lim.epoch == 3 and 17 * 0.5 <= lim.limit < 15
    for _ in range(10_000):
        lim.in_flight = int(lim.limit)
        lim.on_success(epoch=lim.epoch, latency_s=1.0)
    assert lim.limit == 64  # the ceiling holds
    assert [h[1] for h in lim.history][:4] == [64, 32, 16, pytest.approx(16.06, abs=0.01)]
    assert lim.epoch == 3  # the climb back was never mistaken for a queue


def test_fixed_concurrency_never_moves():
    lim = AdaptiveLimit(8, adaptive=False)
    lim.on_congestion(0)
    lim.on_success(0, 100.0)
    assert lim.limit == 8


# --- against a saturating server -----------------------------------------------------------------

def _flood(server: FakeOpenAI, n: int, **cfg: object) -> tuple[list, LLMClient]:
    config = ClientConfig(base_url=server.base_url, **{"max_concurrency": 64, **cfg})

    async def go() -> tuple[list, LLMClient]:
        async with LLMClient(config, api_key="test") as client:
            await client.start_from_engine()
            bodies = [{**BODY, "messages": [{"role": "user", "content": f"Question: q{i}"}]}
                      for i in range(n)]
            return await asyncio.gather(*(client.complete(b) for b in bodies)), client
    return asyncio.run(go())


@pytest.mark.slow
@pytest.mark.parametrize("timings", [True, False])
def test_limit_settles_near_what_a_4_slot_engine_serves_without_a_failure(timings):
    """With service times (llama.cpp) by Little's law; without, from latency inflation."""
    with FakeOpenAI({}, slots=4, latency_s=0.25, timings=timings) as server:
        results, client = _flood(server, 200, request_timeout_s=60)
        stats = server.stats()
    lim = client.limiter
    assert all(r.ok and r.attempts == 1 for r in results)
    assert lim.history[0][1] == 64 and min(h[1] for h in lim.history) >= 1
    # Near the 4 slots (a few waiting keep them busy), far below the ceiling of 64.
    assert lim.limit <= (8 if timings else 20), lim.history
    print(f"\nlimit: 64 -> {lim.limit:.1f}; history {lim.history}; peak queue "
          f"{stats['peak_queued']}")


def test_the_engine_slot_count_is_where_the_limit_starts():
    with FakeOpenAI({}, slots=3, latency_s=0.01, advertise_slots=True) as server:
        results, client = _flood(server, 30)
        peak = server.stats()["peak_queued"]
    assert client.limiter.history[1][1] == 3  # /props said 3
    # A fixed client would queue 27 of the 30 at once; the limit grows from 3 by about one
    # per round trip, so only a few wait (6 seen on a loaded machine, 5 on a quiet one).
    assert all(r.ok for r in results) and peak <= 8


@pytest.mark.slow
def test_timeouts_cut_the_limit_and_a_request_is_never_in_flight_twice():
    # 2 slots at 0.2 s and 64 in flight: the queue outgrows a 1 s timeout at once.
    with FakeOpenAI({}, slots=2, latency_s=0.2) as server:
        results, client = _flood(server, 60, request_timeout_s=1.0, max_retries=8,
                                 backoff_base_s=0.01)
        stats = server.stats()
    assert all(r.ok for r in results)
    assert client.errors["timeout"] > 0
    assert min(h[1] for h in client.limiter.history) <= 5.5  # 10/s x 1 s / 2, within 5%
    # A timed-out request is sent again only once the engine is done with its attempt.
    assert stats["kinds"].get("twice_in_flight", 0) == 0
    assert sum(stats["attempts"].values()) < 2 * len(results)
    print(f"\ntimeouts: {sum(stats['attempts'].values())} attempts for {len(results)}; "
          f"limit {client.limiter.history}")


# --- bounded generation, structured output, n -------------------------------------------------

def test_an_answer_cut_by_the_length_limit_is_a_rejection_not_a_retry(warehouse_path):
    qs = _questions(30, 11)
    with FakeOpenAI(_answers(qs), p_ramble=0.3) as server:
        cfg = LLMTeacherConfig(base_url=server.base_url, model="m")
        result = LLMTeacher(cfg, LLMStore(warehouse_path), "run").run(qs)
        sent = server.stats()["requests"]
    truncated = [r for r in result.rejections if r.reason == "truncated"]
    assert truncated and all("cut at max_tokens=512" in r.detail for r in truncated)
    assert len(result.kept) + len(result.rejections) == 30
    assert sent == 30  # nothing retried
    assert result.counts["llm_requests"] == 30


def test_k_samples_in_one_request_with_n_and_k_requests_without(warehouse_path):
    qs = _questions(12, 12)
    cfg = dict(model="m", samples=4, temperature=0.7)
    with FakeOpenAI(_answers(qs)) as server:
        result = LLMTeacher(LLMTeacherConfig(base_url=server.base_url, **cfg),
                            LLMStore(warehouse_path), "r1").run(qs)
        with_n = server.stats()["requests"]
    with FakeOpenAI(_answers(qs), supports_n=False) as server:
        alone = LLMTeacher(LLMTeacherConfig(base_url=server.base_url, **cfg),
                           LLMStore(warehouse_path), "r2").run(qs)
        without_n = server.stats()["requests"]
    assert with_n == 12 + 1 and without_n == 48 + 1  # one probe each
    for res in (result, alone):
        assert len(res.kept) == 48
        assert sorted({s.sample_idx for s in res.kept}) == [0, 1, 2, 3]
        assert len({s.sample_id for s in res.kept}) == 48
    # With n the prompt is paid once per question, not four times.
    assert result.counts["llm_tokens_in"] * 3 < alone.counts["llm_tokens_in"]


@pytest.mark.parametrize("mode", ["json", "ignore", "reject"])
def test_judge_reads_a_schema_answer_or_falls_back_to_text(warehouse_path, mode):
    qs = _questions(20, 13)
    with FakeOpenAI({}, p_judge_no=0.3, response_format=mode) as server:
        result = Judge(LLMConfig(base_url=server.base_url, model="m"),
                       LLMStore(warehouse_path), "run").run(qs)
        kinds = server.stats()["kinds"]
    judged = result.records["judgments"]
    assert len(judged) == 20 and all(s is not None for _, s, _, _ in judged)
    assert 0 < len(result.rejections) == sum(1 for _, s, _, _ in judged if s is False) < 20
    assert {r.reason for r in result.rejections} == {"unsolvable"}
    assert result.counts["judge_failed"] == 0
    if mode == "reject":  # the first refusal turns the schema off for the rest
        sent = result.counts["judge_requests"]
        assert 1 <= kinds["400"] <= sent and kinds["ok"] == sent
