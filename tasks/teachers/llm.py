"""The `openai` teacher: K samples per question from any OpenAI-compatible endpoint.

An `LLMStep` (tasks/llm/step.py): `prompt(question)` builds the request bodies, `parse` reads
a program back, `settle` decides per question; the cache, the adaptive client and the cost
are the step's. Generation is bounded per format (a PoT answer is one short program), and K
samples go as one request with `n` where the endpoint supports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field

from tasks.llm.client import LLMCall, probe_n
from tasks.llm.config import LLMConfig
from tasks.llm.core import GenerationStats, ResponseCache, Sender, Template
from tasks.llm.core import load_template as load_template
from tasks.llm.step import LLMFailure, LLMStep, Outcome, Reply
from tasks.stage import StageResult, reject
from tasks.teachers.base import STAGE, Selection
from tasks.teachers.replies import parse, parse_final_answer, parse_program
from tasks.types import Question, Rejection, Sample

TEACHER = "openai"
# Per-format bounds: a PoT answer is one short program (the few-shot ones are ~60 tokens),
# a CoT answer a few lines of arithmetic. A model that starts a new "Question:" or pads with
# blank lines is writing past its answer.
FORMAT_MAX_TOKENS = {"pot": 512, "cot": 1024}
FORMAT_STOP = {"pot": ["\nQuestion:", "\n\n\n\n"], "cot": ["\nQuestion:", "\n\n\n\n"]}


class LLMTeacherConfig(LLMConfig):
    """The LLM teacher: what to ask, how many samples, and how to choose among them."""

    kind: Literal["openai"] = Field("openai", description="teacher kind: an "
                                    "OpenAI-compatible endpoint")
    judge: bool = Field(False, description="ask the same model whether each question is "
                        "solvable (after dedup, before the teacher); for synthesized questions")
    samples: int = Field(1, ge=1, le=64, description="samples per question")
    max_tokens: int | None = Field(None, ge=16, le=65_536, description="generation bound "
                                   "per sample; empty: 512 for pot, 1024 for cot")
    stop: list[str] | None = Field(None, description="stop sequences; empty: the format's "
                                   "default ('\\nQuestion:', four newlines); [] for none")
    format: Literal["pot", "cot"] = Field("pot", description="pot: a program; cot: worked "
                                          "text ending in a final answer")
    prompt_version: str | None = Field(None, description="template file in tasks/prompts "
                                       "(default <format>_v1)")
    samples_per_request: Literal["auto", "n", "separate"] = Field(
        "auto", description="K samples as one request with `n` (prompt paid once) or K "
        "requests; auto: probe the endpoint once")
    keep_per_question: int = Field(1, ge=1, le=64, description="correct samples kept")
    min_agreement: float = Field(0.5, ge=0, le=1, description="majority share needed "
                                 "without a gold answer")

    @property
    def version(self) -> str:
        return self.prompt_version or f"{self.format}_v1"

    @property
    def generation_limit(self) -> int:
        return self.max_tokens or FORMAT_MAX_TOKENS[self.format]

    @property
    def stop_sequences(self) -> list[str]:
        return FORMAT_STOP[self.format] if self.stop is None else list(self.stop)


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


def gen_params(cfg: LLMTeacherConfig) -> dict[str, Any]:
    """What makes two samples different besides the question (part of sample_id)."""
    params: dict[str, Any] = {"temperature": cfg.temperature,
                              "max_tokens": cfg.generation_limit, "format": cfg.format}
    if cfg.top_p is not None:
        params["top_p"] = cfg.top_p
    if cfg.stop_sequences:
        params["stop"] = cfg.stop_sequences
    return params


class LLMTeacher(LLMStep[Question, Sample]):
    """Implements the `Teacher` protocol (tasks/teachers/base.py)."""

    name: ClassVar[str] = STAGE
    purpose: ClassVar[str] = "teacher"
    prefix: ClassVar[str] = "llm_"
    kind = TEACHER
    cfg: LLMTeacherConfig

    def __init__(self, cfg: LLMTeacherConfig, cache: ResponseCache, run_id: str,
                 progress: bool = False, send: Sender | None = None) -> None:
        super().__init__(cfg, cache, run_id, progress, send)
        self.selection = Selection(multi=True, keep_per_question=cfg.keep_per_question,
                                   min_agreement=cfg.min_agreement)
        self.template = load_template(cfg.version)
        self.use_n = False

    def item_id(self, item: Question) -> str:
        return item.question_id

    def body(self, q: Question) -> dict[str, Any]:
        cfg = self.cfg
        body: dict[str, Any] = {"model": cfg.model, "messages": build_messages(q, self.template),
                                "temperature": cfg.temperature,
                                "max_tokens": cfg.generation_limit}
        if cfg.top_p is not None:
            body["top_p"] = cfg.top_p
        if cfg.stop_sequences:
            body["stop"] = cfg.stop_sequences
        return body

    def prompt(self, item: Question) -> list[dict[str, Any]]:
        body = self.body(item)
        if self.use_n:
            return [{**body, "n": self.cfg.samples}]
        return [body] * self.cfg.samples

    def parse(self, item: Question, text: str, reply: Reply) -> Sample:
        cfg = self.cfg
        sample = Sample(question_id=item.question_id, teacher=TEACHER, model=cfg.model,
                        prompt_version=cfg.version, sample_idx=reply.index,
                        program=parse(text, cfg.format), raw=text, gen_params=gen_params(cfg),
                        tokens_in=reply.tokens_in, tokens_out=reply.tokens_out,
                        cost_usd=reply.cost_usd)
        if sample.program is None:
            sample.exec_status = "unparseable"
        return sample

    def settle(self, item: Question, outcomes: list[Outcome], result: StageResult[Sample]
               ) -> None:
        """Samples with a program go on; the others are stored (raw kept); a question with
        no program at all leaves with the reason: unparseable, truncated, else llm_error."""
        samples = [o for o in outcomes if isinstance(o, Sample)]
        unparsed = [s for s in samples if s.program is None]
        result.kept.extend(s for s in samples if s.program is not None)
        result.records.setdefault("unparsed", []).extend(unparsed)
        if len(unparsed) < len(samples):
            return
        cut = [o for o in outcomes if isinstance(o, Rejection)]
        errors = [o.error for o in outcomes if isinstance(o, LLMFailure)]
        if unparsed:
            result.rejections.append(reject(item.question_id, STAGE, "unparseable",
                                            unparsed[0].raw[:2000]))
        elif cut:
            result.rejections.append(cut[0])
        else:
            result.rejections.append(reject(
                item.question_id, STAGE, "llm_error",
                f"{len(errors)}/{len(outcomes)} requests failed: {errors[0] if errors else ''}"))

    def run(self, items: list[Question]) -> StageResult[Sample]:
        self.use_n = self._choose_n(items)
        return super().run(items)

    def _choose_n(self, items: Sequence[Question]) -> bool:
        """One request with `n` for K samples? A setting, or (auto) whichever way the cache
        already holds the answers, else a one-token probe of the endpoint."""
        mode, k = self.cfg.samples_per_request, self.cfg.samples
        if k == 1 or mode == "separate" or self.send is not None:  # Batch API: K lines
            return False
        if mode == "n" or not items:
            return mode == "n"
        for use_n in (False, True):
            self.use_n = use_n
            keys = [r.key for q in items for r in self.requests(q)]
            if len(self.cache.get_cached(keys)) == len(set(keys)):
                return use_n
        return probe_n(self.cfg, self.cfg.model)


def make_llm_teacher(cfg: LLMTeacherConfig, cache: ResponseCache, run_id: str,
                     progress: bool = False, batch_store: Any = None) -> LLMTeacher:
    """The teacher a run uses; with `cfg.batch`, requests go through the Batch API, whose
    job table lives in `batch_store` (warehouse.llm.LLMStore; default: the cache)."""
    send = None
    if cfg.batch:
        from tasks.llm.batch import batch_sender

        send = batch_sender(cfg, batch_store or cache, run_id=run_id, purpose="teacher",
                            progress=progress)
    return LLMTeacher(cfg, cache, run_id, progress, send)


__all__ = ["GenerationStats", "LLMCall", "LLMTeacher", "LLMTeacherConfig", "make_llm_teacher",
           "parse", "parse_final_answer", "parse_program"]
