"""The first wrong step of a wrong solution found by rollouts (Self-Explore): the first step
from whose prefix k continuations of a policy never reach the gold answer.

For each wrong sample and each step i, the policy continues the program from steps[:i+1]
(the prefix *including* step i) k times; every prefix + continuation runs in the sandbox and
is checked against the gold. Step i is the first wrong one when no continuation from the
prefix through i reaches the gold, while some continuation from every shorter prefix did
(the scan stops at the first such i).

The policy is a `Continuer`. `ReferenceContinuer` continues with the reference program's
remaining steps (deterministic, so k = 1 is enough): with the noisy teacher, whose wrong
program is the reference with one step changed, the step it finds is the changed one, which
the tests check against `meta.error_step`. `LLMContinuer` (tasks/preferences/llm_rollouts.py)
asks an OpenAI-compatible endpoint through the LLM step: cache, cost log, adaptive
concurrency and resume are the teacher's. A continuer gets every prefix of a batch at once,
so an LLM sees them all in flight together."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tasks.answers import answers_match
from tasks.execute import ExecConfig, execute_programs
from tasks.teachers.reference import reference_program
from tasks.types import Question, Rejection, Sample

from .signature import split_steps

Prefix = tuple[Question, tuple[str, ...]]  # a question and the first steps of a program


class Continuer(Protocol):
    """A policy that continues programs: for each (question, prefix), up to k continuations
    (the steps after the prefix); no continuation judges the prefix alone."""

    name: str

    def continuations(self, prefixes: Sequence[Prefix], k: int) -> list[list[list[str]]]: ...


class ReferenceContinuer:
    """The reference program's steps after the prefix (one continuation: it is
    deterministic). A prefix longer than the reference program gets no continuation but
    itself, so the prefix alone is judged."""

    name = "reference"

    def continuations(self, prefixes: Sequence[Prefix], k: int) -> list[list[list[str]]]:
        out: list[list[list[str]]] = []
        for question, prefix in prefixes:
            program = reference_program(question)
            out.append([] if isinstance(program, Rejection)
                       else [split_steps(program)[len(prefix):]])
        return out


def rollout_first_wrong_steps(samples: Sequence[Sample], questions: dict[str, Question],
                              continuer: Continuer, k: int = 4,
                              config: ExecConfig | None = None) -> dict[str, int | None]:
    """sample_id -> the first step from whose prefix no rollout reaches the gold (None: every
    prefix still reached it, or the question has no gold). All rollouts of all samples run in
    one sandbox batch."""
    config = config or ExecConfig()
    asked: list[tuple[str, int]] = []  # (sample_id, step) of each prefix
    prefixes: list[Prefix] = []
    for s in samples:
        q = questions[s.question_id]
        if q.gold_answer is None:
            continue
        steps = split_steps(s.program or "")
        for i in range(len(steps)):
            asked.append((s.sample_id, i))
            prefixes.append((q, tuple(steps[:i + 1])))
    programs: list[str] = []
    owners: list[tuple[str, int]] = []  # (sample_id, step) of each program
    for owner, (_, prefix), conts in zip(asked, prefixes,
                                         continuer.continuations(prefixes, k), strict=True):
        for cont in conts[:k] or [[]]:
            programs.append("\n".join([*prefix, *cont]))
            owners.append(owner)
    results = execute_programs(programs, timeout_s=config.exec_timeout_s,
                               memory_mb=config.exec_memory_mb, workers=config.exec_workers)
    reached: dict[tuple[str, int], bool] = {}
    by_id = {s.sample_id: s for s in samples}
    for (sid, i), res in zip(owners, results, strict=True):
        q = questions[by_id[sid].question_id]
        ok = res.status == "ok" and answers_match(res.value, q.gold_answer or "",
                                                  scale=q.meta.get("scale"))
        reached[(sid, i)] = reached.get((sid, i), False) or ok
    found: dict[str, int | None] = {}
    for s in samples:
        n = len(split_steps(s.program or ""))
        found[s.sample_id] = next((i for i in range(n) if not reached.get((s.sample_id, i),
                                                                          True)), None)
    return found
