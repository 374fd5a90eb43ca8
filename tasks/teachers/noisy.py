"""The `noisy` teacher: the reference program, made wrong at a set rate the way LLM teachers
go wrong on table questions, with the kind of error recorded in `Sample.meta`.

Two kinds of noise (`noise`):
- `independent` (below): each question draws its own error, at `error_rate` of the questions;
- `repeating` (tasks/teachers/mistakes.py): `error_rate` of the question types are
  misunderstood, and every question of such a type gets the same mistake (percent change over
  the new value, an average over the endpoints of a range, a value read under the wrong
  header group, a dropped scale). `meta` records the types, the mistakes and `error_kind`.

It exists for the curation ablation: the reference teacher is always right, so verification
has nothing to remove and "what does verification buy" cannot be measured. With this teacher
a known share of the samples is wrong, verification should reject exactly those (reason
`wrong_answer`), and an unverified arm trains on them as they come.

Error kinds (each leaves a program that runs, so only the answer check can catch it):
- wrong_year: a value read from another year's column of the same line item;
- wrong_line_item: a value read from another line item in the same year;
- swapped_operands: `a - b` -> `b - a` or `a / b` -> `b / a` in the answer expression;
- percent_vs_fraction: `* 100` dropped from a percentage, or added to a fraction;
- dropped_scale: one value written in full units while the others stay in thousands;
- rounding: every value rounded to two significant figures before computing.

Which questions are corrupted and how is a pure function of (seed, question_id): the same
questions get the same errors on every run, in any chunking. A kind that does not apply to a
question, or whose program still gives an answer that matches gold, is skipped for the next
one in that question's seeded order; `meta["error_kind"]` says which one was used
(None: the question drew an error but no kind changed its answer, so the sample is right).
"""

from __future__ import annotations

import ast
import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import Field

from tasks.answers import answers_match
from tasks.render import render_completion
from tasks.settings import Settings
from tasks.stage import Stage, StageResult
from tasks.teachers.base import Selection
from tasks.teachers.mistakes import MISTAKES, PLAN_VERSION, MistakePlan, apply_mistakes
from tasks.teachers.mistakes import question_types as _question_types
from tasks.teachers.reference import (
    Lines,
    evaluate,
    parse_arithmetic,
    reference_program,
)
from tasks.teachers.reference import straight_lines as parse_program
from tasks.types import Question, Rejection, Sample, stable_hash

TEACHER = "noisy"
PROMPT_VERSION = "noisy-v1"
ERROR_KINDS = ("wrong_year", "wrong_line_item", "swapped_operands", "percent_vs_fraction",
               "dropped_scale", "rounding")

def program_value(lines: Lines) -> float | None:
    """Value of `ans`, computed with the reference teacher's safe interpreter."""
    env: dict[str, float] = {}
    try:
        for name, expr in lines:
            env[name] = evaluate(parse_arithmetic(expr, env), env)
    except (ArithmeticError, ValueError, KeyError):
        return None
    return env.get("ans")


def render_program(lines: Lines) -> str:
    return "\n".join(f"{name} = {expr}" for name, expr in lines)


def _literal(lines: Lines, i: int) -> float | None:
    try:
        value = ast.literal_eval(lines[i][1])
    except (ValueError, SyntaxError):
        return None
    return float(value) if isinstance(value, int | float) else None


def _format_like(value: float, like: str) -> str:
    return str(int(round(value))) if "." not in like and float(value).is_integer() else \
        repr(round(float(value), 6))


def _table_cells(q: Question) -> dict[float, list[tuple[str, int]]]:
    """value -> [(row label, column index)] of the question's table (procedural meta)."""
    table = q.meta.get("table") or {}
    cells: dict[float, list[tuple[str, int]]] = {}
    for label, values in (table.get("rows") or {}).items():
        for j, v in enumerate(values):
            cells.setdefault(float(v), []).append((label, j))
    return cells


def _value_steps(lines: Lines) -> list[int]:
    return [i for i in range(len(lines) - 1) if _literal(lines, i) is not None]


def _replace_value(lines: Lines, i: int, value: float) -> Lines:
    out = list(lines)
    out[i] = (lines[i][0], _format_like(value, lines[i][1]))
    return out


def _other_cell(q: Question, lines: Lines, rng: random.Random,
                same_row: bool) -> tuple[Lines, int] | None:
    table = q.meta.get("table") or {}
    rows = table.get("rows") or {}
    cells = _table_cells(q)
    steps = _value_steps(lines)
    rng.shuffle(steps)
    for i in steps:
        for label, j in cells.get(_literal(lines, i) or float("nan"), []):
            if same_row:  # another year of this line item
                options = [v for k, v in enumerate(rows[label]) if k != j]
            else:  # another line item in this year
                options = [vals[j] for other, vals in rows.items() if other != label]
            options = [v for v in options if float(v) != _literal(lines, i)]
            if options:
                return _replace_value(lines, i, float(rng.choice(options))), i
    return None


def wrong_year(q: Question, lines: Lines, rng: random.Random) -> tuple[Lines, int] | None:
    return _other_cell(q, lines, rng, same_row=True)


def wrong_line_item(q: Question, lines: Lines, rng: random.Random
                    ) -> tuple[Lines, int] | None:
    return _other_cell(q, lines, rng, same_row=False)


def swapped_operands(q: Question, lines: Lines, rng: random.Random
                     ) -> tuple[Lines, int] | None:
    tree = ast.parse(lines[-1][1], mode="eval")
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub | ast.Div) and \
                ast.dump(node.left) != ast.dump(node.right):
            node.left, node.right = node.right, node.left
            return [*lines[:-1], ("ans", ast.unparse(tree))], len(lines) - 1
    return None


def percent_vs_fraction(q: Question, lines: Lines, rng: random.Random
                        ) -> tuple[Lines, int] | None:
    tree = ast.parse(lines[-1][1], mode="eval")

    class DropTimes100(ast.NodeTransformer):
        dropped = False

        def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
            self.generic_visit(node)
            if isinstance(node.op, ast.Mult) and isinstance(node.right, ast.Constant) and \
                    node.right.value == 100:
                self.dropped = True
                return node.left
            return node

    dropper = DropTimes100()
    new = dropper.visit(tree)
    expr = ast.unparse(new) if dropper.dropped else f"({lines[-1][1]}) * 100"
    return [*lines[:-1], ("ans", expr)], len(lines) - 1


def dropped_scale(q: Question, lines: Lines, rng: random.Random
                  ) -> tuple[Lines, int] | None:
    steps = _value_steps(lines)
    if not steps:
        return None
    i = rng.choice(steps)
    return _replace_value(lines, i, (_literal(lines, i) or 0.0) * 1000), i


def rounding(q: Question, lines: Lines, rng: random.Random) -> tuple[Lines, int] | None:
    steps = _value_steps(lines)
    if not steps:
        return None
    out = list(lines)
    for i in steps:
        value = _literal(lines, i) or 0.0
        out[i] = (lines[i][0], _format_like(float(f"{value:.2g}"), lines[i][1]))
    return out, steps[0]


CORRUPTIONS: dict[str, Callable[[Question, Lines, random.Random], tuple[Lines, int] | None]] = {
    "wrong_year": wrong_year, "wrong_line_item": wrong_line_item,
    "swapped_operands": swapped_operands, "percent_vs_fraction": percent_vs_fraction,
    "dropped_scale": dropped_scale, "rounding": rounding,
}


def corrupt(q: Question, program: str, rng: random.Random,
            kinds: Sequence[str] = ERROR_KINDS) -> tuple[str, str, int] | None:
    """(wrong program, error kind, index of the changed line) of the first kind, in a
    seeded order, that applies and changes the answer; None when none does."""
    lines = parse_program(program)
    if lines is None:
        return None
    order = list(kinds)
    rng.shuffle(order)
    for kind in order:
        made = CORRUPTIONS[kind](q, lines, rng)
        if made is None:
            continue
        new_lines, step = made
        value = program_value(new_lines)
        if value is None or (q.gold_answer is not None and
                             answers_match(value, q.gold_answer, scale=q.meta.get("scale"))):
            continue  # an error that does not change the answer is no error
        return render_program(new_lines), kind, step
    return None


Noise = Literal["independent", "repeating"]


class NoisyTeacherConfig(Settings):
    """The reference programs made wrong, with labelled LLM-style errors: for ablations (what
    verification removes, what unverified data costs). `independent`: a share of the
    questions, each its own error; `repeating`: a share of the question types, each with one
    mistake made on all its questions (tasks/teachers/mistakes.py)."""

    kind: Literal["noisy"] = Field("noisy", description="teacher kind")
    noise: Noise = Field("independent", description="independent: errors drawn per question; "
                         "repeating: a share of question types always get the same mistake")
    error_rate: float = Field(0.3, ge=0, le=1, description="share of questions whose "
                              "program is made wrong (repeating: share of question types)")
    error_seed: int = Field(0, description="seed of which questions (repeating: question "
                            "types) go wrong, and how")
    error_kinds: list[str] = Field(default_factory=lambda: list(ERROR_KINDS),
                                   description="independent: error kinds to draw from: "
                                   + ", ".join(ERROR_KINDS))
    mistakes: list[str] = Field(default_factory=lambda: list(MISTAKES),
                                description="repeating: the mistakes a misunderstood type "
                                "may get: " + ", ".join(MISTAKES))
    wrong_types: list[str] | None = Field(None, description="repeating: these question types "
                                          "(or type prefixes such as procedural:ratio) are "
                                          "the misunderstood ones, instead of drawing them")


class NoisyTeacher(Stage[Question, Sample]):
    """Teacher stage: the reference program, wrong for about `error_rate` of the questions
    (independent) or on every question of about `error_rate` of the question types
    (repeating)."""

    name = "teacher"
    kind = TEACHER

    def __init__(self, error_rate: float = 0.3, seed: int = 0,
                 kinds: Sequence[str] = ERROR_KINDS, batch_size: int | None = 512, *,
                 noise: Noise = "independent", mistakes: Sequence[str] = MISTAKES,
                 wrong_types: Sequence[str] | None = None) -> None:
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")
        unknown = set(kinds) - set(ERROR_KINDS)
        if unknown or not kinds:
            raise ValueError(f"error kinds must be some of {ERROR_KINDS}, got {list(kinds)}")
        if noise not in ("independent", "repeating"):
            raise ValueError(f"noise must be independent or repeating, got {noise!r}")
        self.error_rate = error_rate
        self.seed = seed
        self.kinds = tuple(kinds)
        self.batch_size = batch_size
        self.selection = Selection()
        self.noise = noise
        self.plan = MistakePlan(error_rate, seed, tuple(mistakes),
                                tuple(wrong_types) if wrong_types is not None else None)
        if noise == "repeating":
            self.model = f"reference+repeat{error_rate:g}"
            # In the sample id: another plan is another teacher. Defaults stay out of it.
            self.gen_params: dict[str, Any] = {"noise": noise, "error_rate": error_rate,
                                               "seed": seed, "plan": PLAN_VERSION}
            if tuple(mistakes) != MISTAKES:
                self.gen_params["mistakes"] = sorted(mistakes)
            if wrong_types is not None:
                self.gen_params["wrong_types"] = sorted(wrong_types)
        else:
            self.model = f"reference+noise{error_rate:g}"
            self.gen_params = {"error_rate": error_rate, "seed": seed}

    def _rng(self, question_id: str) -> random.Random:
        return random.Random(stable_hash("noisy", self.seed, question_id))

    def _independent(self, q: Question, program: str) -> tuple[str, dict[str, Any]]:
        rng = self._rng(q.question_id)
        meta: dict[str, Any] = {}
        if rng.random() < self.error_rate:
            made = corrupt(q, program, rng, self.kinds)
            meta = {"error_kind": None, "error_step": None}
            if made is not None:
                program, meta["error_kind"], meta["error_step"] = made
        return program, meta

    def _repeating(self, q: Question, program: str) -> tuple[str, dict[str, Any]]:
        formula, reading = _question_types(q, program)
        plan = self.plan.for_question(q, program)
        meta: dict[str, Any] = {"question_type": formula, "reading_type": reading}
        if not plan:
            return program, meta
        meta.update(mistakes=dict(plan), error_kind=None, error_step=None)
        made = apply_mistakes(q, program, list(plan.values()))
        if made is None:
            return program, meta
        lines = parse_program(made.program)
        value = program_value(lines) if lines else None
        old = program.strip().splitlines()
        new = made.program.splitlines()
        if q.gold_answer is not None and value is not None and answers_match(
                value, q.gold_answer, scale=q.meta.get("scale") or None):
            # The teacher still writes what it believes; here it happens to give the right
            # answer (equal operands), so no check can tell and no error is recorded.
            meta["answer_unchanged"] = True
            return made.program, meta
        meta["error_kind"] = "+".join(made.mistakes)
        meta["error_step"] = next((i for i, (a, b) in enumerate(zip(old, new, strict=False))
                                   if a.replace(" ", "") != b.replace(" ", "")), len(new) - 1)
        return made.program, meta

    def sample(self, q: Question) -> Sample | Rejection:
        program = reference_program(q)
        if isinstance(program, Rejection):
            return program
        program, meta = (self._repeating(q, program) if self.noise == "repeating"
                         else self._independent(q, program))
        return Sample(question_id=q.question_id, teacher=TEACHER, model=self.model,
                      prompt_version=PROMPT_VERSION, sample_idx=0, program=program,
                      raw=render_completion(program), gen_params=dict(self.gen_params),
                      meta=meta)

    def run(self, items: list[Question]) -> StageResult[Sample]:
        result: StageResult[Sample] = StageResult(counts=Counter())
        for q in items:
            made = self.sample(q)
            if isinstance(made, Rejection):
                result.rejections.append(made)
                continue
            result.kept.append(made)
            kind = made.meta.get("error_kind")
            result.counts["samples"] += 1
            if kind:
                result.counts[f"error.{kind}"] += 1
            # The realised plan, with the run's counts: type -> mistake, questions made wrong.
            for qtype, mistake in (made.meta.get("mistakes") or {}).items():
                result.counts[f"plan.{mistake}.{qtype}"] += 1
        return result
