"""The three LLM steps through the stage contract, each alone on a small batch, with a real
temp warehouse as the response cache and the local test server as the endpoint."""

from __future__ import annotations

import sys
from pathlib import Path

from tasks.llm.config import LLMConfig
from tasks.sources import load_questions
from tasks.sources.synth import Synthesizer
from tasks.stage import Stage
from tasks.teachers.base import Teacher
from tasks.teachers.llm import LLMTeacherConfig, make_llm_teacher
from tasks.types import Sample
from warehouse.llm import LLMStore

sys.path.insert(0, str(Path(__file__).parent))
from fake_openai import FakeOpenAI  # noqa: E402


def test_teacher_is_a_teacher_and_a_rerun_is_served_from_the_cache(warehouse_path):
    qs = load_questions("procedural", n=40, seed=41)
    answers = {(q.text, q.context.strip()): q.gold_program for q in qs[:30]}
    cache = LLMStore(warehouse_path)
    with FakeOpenAI(answers, p_unparseable=0.1) as server:
        cfg = LLMTeacherConfig(base_url=server.base_url, model="m", keep_per_question=2)
        teacher = make_llm_teacher(cfg, cache, "run-1")
        assert isinstance(teacher, Teacher) and isinstance(teacher, Stage)
        assert teacher.name == "teacher" and teacher.kind == "openai"
        assert teacher.selection.multi and teacher.selection.keep_per_question == 2
        first = teacher.run(qs)
        sent = server.stats()["requests"]
        again = make_llm_teacher(cfg, cache, "run-2").run(qs)
        assert server.stats()["requests"] == sent  # nothing new sent
    unparsed = first.records["unparsed"]
    assert all(isinstance(s, Sample) and s.program for s in first.kept)
    assert unparsed and all(s.program is None and s.exec_status == "unparseable"
                            for s in unparsed)
    # The 10 questions the server cannot answer, and the unparseable ones, leave with why.
    reasons = {r.item_id: r.reason for r in first.rejections}
    assert len(first.kept) + len(reasons) == 40 and set(reasons.values()) == {"unparseable"}
    assert all(r.stage == "teacher" for r in first.rejections)
    c = first.counts
    assert c["llm_requests"] == 40 and c["llm_cache_hits"] == 0 and c["llm_failed"] == 0
    assert c["llm_tokens_in"] > 0 and c["llm_cost_usd"] == 0  # model "m" has no price
    assert again.counts["llm_cache_hits"] == 40 and again.counts["llm_requests"] == 0
    assert [s.sample_id for s in again.kept] == [s.sample_id for s in first.kept]


def test_a_failed_request_is_an_llm_error_rejection_for_its_item(warehouse_path):
    qs = load_questions("procedural", n=6, seed=42)
    broken = {q.text: ["500"] * 5 for q in qs[:2]}
    with FakeOpenAI({q.text: q.gold_program for q in qs}, scripted=broken) as server:
        cfg = LLMTeacherConfig(base_url=server.base_url, model="m", max_retries=2,
                               backoff_base_s=0.01)
        result = make_llm_teacher(cfg, LLMStore(warehouse_path), "run").run(qs)
    errors = [r for r in result.rejections if r.reason == "llm_error"]
    assert {r.item_id for r in errors} == {q.question_id for q in qs[:2]}
    assert all("gave up after 3 attempts" in r.detail for r in errors)
    assert result.counts["llm_failed"] == 2 and result.counts["llm_error_500"] == 6


def test_synthesizer_stage_plans_writes_and_filters(warehouse_path):
    with FakeOpenAI({}) as server:
        step = Synthesizer(LLMConfig(base_url=server.base_url, model="m"),
                           LLMStore(warehouse_path), "run")
        items = step.plan("scratch:unit prices", 8, seed=3)
        result = step.run(items)
        bodies_have_schema = server.stats()["requests"] == 8
    assert step.name == "synth" and bodies_have_schema
    assert len(result.kept) == 8 and not result.rejections
    assert {q.source for q in result.kept} == {"synth:scratch"}
    assert all(q.text.startswith("A bakery sells") for q in result.kept)  # JSON field read
    assert result.counts["synth_requests"] == 8
    assert len({q.source_id for q in result.kept}) == 8
