"""Rollouts through an LLM: the teacher's endpoint continues each program prefix k times
(Self-Explore's policy), as an LLM step (tasks/llm/step.py), so the continuations get the
teacher's cache (a rerun sends nothing), cost log (`llm_requests.purpose = 'rollout'`) and
adaptive concurrency, with every prefix of the batch in flight together."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from tasks.llm.core import ResponseCache, load_template
from tasks.llm.step import LLMStep, Outcome, Reply
from tasks.stage import StageResult, reject
from tasks.teachers.llm import LLMTeacherConfig, build_messages
from tasks.teachers.replies import parse_program
from tasks.types import Rejection, stable_hash

from .rollouts import Continuer, Prefix, ReferenceContinuer
from .signature import split_steps

# After a blank line, so the question line of the user turn stays as the teacher sends it.
CONTINUE = ("\n\nA solution starts with the lines below. Write the whole program: first "
            "exactly these lines, then the remaining steps, ending with `ans = ...`.\n"
            "```python\n{prefix}\n```")


class LLMContinuer(LLMStep[Prefix, list[str]]):
    """A `Continuer` backed by an OpenAI-compatible endpoint. The continuation of a prefix
    is what the answer's program has after as many steps as the prefix (the model is asked
    to repeat the prefix first); an answer without a program continues with nothing."""

    name: ClassVar[str] = "step_rollouts"
    purpose: ClassVar[str] = "rollout"
    prefix: ClassVar[str] = "rollout_"
    cfg: LLMTeacherConfig

    def __init__(self, cfg: LLMTeacherConfig, cache: ResponseCache, run_id: str,
                 progress: bool = False) -> None:
        super().__init__(cfg, cache, run_id, progress)
        self.template = load_template(cfg.version)
        self.k = 1
        self.counts: Counter[str] = Counter()  # requests, tokens, cost of every call
        self._found: dict[str, list[list[str]]] = {}

    def item_id(self, item: Prefix) -> str:
        question, steps = item
        return f"{question.question_id}:{stable_hash(*steps, length=12)}"

    def prompt(self, item: Prefix) -> list[dict[str, Any]]:
        question, steps = item
        messages = build_messages(question, self.template)
        messages[-1] = {**messages[-1], "content": messages[-1]["content"]
                        + CONTINUE.format(prefix="\n".join(steps))}
        body: dict[str, Any] = {"model": self.cfg.model, "messages": messages,
                                "temperature": self.cfg.temperature,
                                "max_tokens": self.cfg.generation_limit}
        if self.cfg.stop_sequences:
            body["stop"] = self.cfg.stop_sequences
        return [body] * self.k

    def parse(self, item: Prefix, text: str, reply: Reply) -> list[str] | Rejection:
        program = parse_program(text)
        if program is None:
            return reject(self.item_id(item), self.name, "unparseable", text[:2000])
        return split_steps(program)[len(item[1]):]

    def settle(self, item: Prefix, outcomes: list[Outcome], result: StageResult[list[str]]
               ) -> None:
        self._found[self.item_id(item)] = [o for o in outcomes if isinstance(o, list)]

    def continuations(self, prefixes: Sequence[Prefix], k: int) -> list[list[list[str]]]:
        self.k, self._found = k, {}
        self.counts.update(self.run(list(prefixes)).counts)
        return [self._found.get(self.item_id(p), []) for p in prefixes]


def make_continuer(policy: Literal["reference", "teacher"], teacher: LLMTeacherConfig,
                   cache: ResponseCache, run_id: str) -> Continuer:
    """The rollout policy: the reference program, or the teacher's endpoint."""
    if policy == "reference":
        return ReferenceContinuer()
    return LLMContinuer(teacher, cache, run_id)
