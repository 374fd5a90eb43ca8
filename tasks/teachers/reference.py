"""The `reference` teacher: turns gold annotations into straight-line Python programs.

A program sets `ans`. Sources of gold reasoning:
- `Question.gold_program` (procedural generator, JSONL `program`): used as given.
- GSM8K solutions: every `<<expr=value>>` calculator annotation, plus plain-text equations
  such as "20/4 = $5" that the annotators left unannotated, becomes `step_k = expr`.
- TAT-QA derivations such as `(5,829 - 5,735)/5,735` for arithmetic answers, and the
  '##'-separated item lists of count answers.

Annotation text is untrusted: every expression is parsed with `ast` and only numbers, names of
earlier steps, arithmetic operators and parentheses pass. Values are computed with a tiny
interpreter over that AST, never with eval, and the emitted code is `ast.unparse` of the
validated tree, so what runs is exactly what was checked.

The teacher only emits a program whose value reproduces the gold answer; otherwise the
question leaves with a Rejection saying why (the verdict stage still re-executes the program in
the sandbox).
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Collection, Iterator
from typing import Literal

from pydantic import Field

from tasks.answers import ANNOTATION, SCALE_FACTORS, answers_match, parse_number
from tasks.settings import Settings
from tasks.stage import Stage, StageResult
from tasks.teachers.base import Selection
from tasks.types import Question, Rejection, Sample

TEACHER = "reference"
MODEL = "gold"
PROMPT_VERSION = "ref-v1"
STAGE = "teacher"

_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)
_UNARY = (ast.UAdd, ast.USub)
_MAX_EXPONENT = 64
_MAX_MAGNITUDE = 1e30


class UnsafeExpression(ValueError):
    """An annotation that is not plain arithmetic over numbers and earlier steps."""


# --- expression parsing and evaluation -------------------------------------------------------

_TRANSLATE = str.maketrans(
    {
        "\u2212": "-", "\u2013": "-", "\u2014": "-", "\u2012": "-",
        "\u00d7": "*", "\u22c5": "*", "\u00b7": "*", "\u00f7": "/",
        "[": "(", "]": ")", "{": "(", "}": ")", "^": "**",
    }
)
_CURRENCY = re.compile(r"[$€£]|\bUSD\b")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
# 'x' is multiplication only between operands ("0.2 x 50"), never inside a word.
_TIMES_X = re.compile(r"(?<=[\d)])\s*[xX]\s*(?=[\d(.])")
# "8(26)" and ")(" are multiplication in math notation; Python would read them as calls.
_IMPLICIT_MUL = re.compile(r"(?<=[\d)])\s*(?=\()")
# "12%" not followed by an operand is a percentage; "7 % 3" stays the modulo operator.
_PERCENT = re.compile(r"((?:\d+(?:\.\d*)?|\.\d+))\s*%(?!\s*[\d(.])")
_NUMBER = re.compile(r"(?<![\w.])(\d+)(\.\d*)?")


def _canonical_numbers(text: str) -> str:
    # "05" is a syntax error in Python 3 and ".5"/"5." read poorly: rewrite every literal.
    def fix(m: re.Match[str]) -> str:
        whole, frac = str(int(m.group(1))), m.group(2) or ""
        return whole + (frac if frac not in ("", ".") else "")

    text = re.sub(r"(?<![\w.])\.(\d)", r"0.\1", text)
    return _NUMBER.sub(fix, text)


def sanitize_expression(text: str, *, percent_as_fraction: bool = True) -> str:
    """Calculator/prose arithmetic rewritten as Python syntax (not yet validated)."""
    s = text.translate(_TRANSLATE)
    s = _CURRENCY.sub("", s)
    s = _THOUSANDS.sub("", s)
    s = _TIMES_X.sub(" * ", s)
    s = _PERCENT.sub(r"(\1 / 100)" if percent_as_fraction else r"\1", s)
    s = _canonical_numbers(s)
    s = _IMPLICIT_MUL.sub("*", s)
    return " ".join(s.split())


def parse_arithmetic(expr: str, names: Collection[str] = ()) -> ast.Expression:
    """Parse `expr` and reject anything but arithmetic over numbers and `names`."""
    try:
        tree = ast.parse(expr, mode="eval")
    except (SyntaxError, ValueError) as exc:
        raise UnsafeExpression(f"not an expression: {getattr(exc, 'msg', exc)}") from None
    check_arithmetic(tree, names)
    return tree


def check_arithmetic(tree: ast.AST, names: Collection[str] = ()) -> None:
    """Raise UnsafeExpression unless `tree` is only numbers (int, float; never bool),
    `names`, the arithmetic operators and parentheses."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Expression | ast.operator | ast.unaryop | ast.expr_context):
            continue
        if isinstance(node, ast.BinOp) and isinstance(node.op, _BINOPS):
            continue
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, _UNARY):
            continue
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in names:
            continue
        raise UnsafeExpression(f"disallowed syntax: {type(node).__name__}")


def evaluate(tree: ast.AST, env: dict[str, float] | None = None) -> float:
    """Value of a tree accepted by `parse_arithmetic`; raises ArithmeticError on bad math."""
    env = env or {}
    node = tree.body if isinstance(tree, ast.Expression) else tree
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.UnaryOp):
        value = evaluate(node.operand, env)
        return -value if isinstance(node.op, ast.USub) else +value
    if isinstance(node, ast.BinOp):
        left, right = evaluate(node.left, env), evaluate(node.right, env)
        op = node.op
        if isinstance(op, ast.Pow) and (abs(right) > _MAX_EXPONENT or abs(left) > 1e6):
            # "10**10**10" in untrusted text must not hang the teacher.
            raise ArithmeticError("exponent too large")
        result = {
            ast.Add: lambda: left + right,
            ast.Sub: lambda: left - right,
            ast.Mult: lambda: left * right,
            ast.Div: lambda: left / right,
            ast.FloorDiv: lambda: left // right,
            ast.Mod: lambda: left % right,
            ast.Pow: lambda: left**right,
        }[type(op)]()
        if isinstance(result, complex) or not math.isfinite(result):
            raise ArithmeticError("non-finite result")
        if abs(result) > _MAX_MAGNITUDE:
            raise ArithmeticError("result too large")
        return result
    raise UnsafeExpression(f"disallowed syntax: {type(node).__name__}")


def _reject(q: Question, reason: str, detail: str = "") -> Rejection:
    return Rejection(item_id=q.question_id, stage=STAGE, reason=reason, detail=detail[:500])


# --- GSM8K -----------------------------------------------------------------------------------

_RHS = re.compile(r"\s*\$?\s*(-?(?:\d[\d,]*(?:\.\d+)?|\.\d+))(?![\d/*x×])")
# Tokens of the prose in front of an '='. Numbers come first so ".5" is not a full stop.
_PROSE_TOKEN = re.compile(
    r"(?P<num>\$?\s?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?:\s?%)?)"
    r"|(?P<op>[-+*/×÷−–^])|(?P<open>\()|(?P<close>\))"
    r"|(?P<stop>[.:;?!,=#\n])|(?P<word>[A-Za-z][\w’'/-]*|\S)"
)
_WORD_OPS = [
    (re.compile(r"\b(?:divided by|over)\b", re.IGNORECASE), " / "),
    (re.compile(r"\b(?:times|multiplied by|[xX])\b"), " * "),
    (re.compile(r"\bplus\b", re.IGNORECASE), " + "),
    (re.compile(r"\bminus\b", re.IGNORECASE), " - "),
]
# Halving and percent/thousand scaling constants coincide with step values too often to be
# read as references to them.
_NO_SUBSTITUTE = frozenset({0, 1, 2, 10, 100, 1000})
_OPERATOR_CHAR = re.compile(r"[-+*/%^×÷−x]")
_QUESTION_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?|\.\d+")


def _mask_annotations(text: str) -> str:
    return ANNOTATION.sub(lambda m: "#" * len(m.group(0)), text)


def _prose_lhs(prose: str) -> str | None:
    """The arithmetic right before an '=' in prose, unit words dropped.

    "3 crafts * $12/craft" -> "3 * $12". Walks back from the '=' and stops at punctuation or
    at two operands in a row, so "In 2019 she had 5 + 3" gives "5 + 3".
    """
    for pattern, op in _WORD_OPS:
        prose = pattern.sub(op, prose)
    tokens = [(m.lastgroup, m.group()) for m in _PROSE_TOKEN.finditer(prose)]
    kept: list[str] = []
    expect_operand, depth = True, 0
    for kind, text in reversed(tokens):
        if kind == "word":
            continue
        if kind == "num" and expect_operand:
            kept.append(text)
            expect_operand = False
        elif kind == "op" and not expect_operand:
            kept.append(text)
            expect_operand = True
        elif kind == "num" and kept and kept[-1] == "(":
            kept += ["*", text]  # "20(.30)" is a product in math notation
        elif kind == "op" and not kept:
            continue  # the '/' of "$12/craft" belongs to a unit
        elif kind == "close" and expect_operand:
            kept.append(text)
            depth += 1
        elif kind == "open" and not expect_operand and depth > 0:
            kept.append(text)
            depth -= 1
        else:
            break
    while kept and (kept[-1] in "+-*/×÷−–^" or kept[-1] == ")"):
        kept.pop()  # a dangling operator at the left end
    if depth != 0 or len(kept) < 3:
        return None
    return " ".join(reversed(kept))


def _prose_equations(solution: str) -> Iterator[tuple[int, str, list[str], float]]:
    """(position, readings of the lhs, claimed value) of unannotated "a op b = c" equations."""
    masked = _mask_annotations(solution)
    for eq in re.finditer("=", masked):
        rhs = _RHS.match(masked, eq.end())
        claimed = parse_number(rhs.group(1)) if rhs else None
        line_start = masked.rfind("\n", 0, eq.start()) + 1
        lhs = _prose_lhs(masked[line_start : eq.start()])
        if claimed is None or lhs is None:
            continue
        # "x * 100% = 61%" in prose means scaling to a percentage, elsewhere 63% is 0.63.
        readings = [sanitize_expression(lhs), sanitize_expression(lhs, percent_as_fraction=False)]
        yield eq.start(), lhs, readings, claimed


def _value_key(value: float) -> float:
    # 0.5 - 0.4 is 0.09999999999999998; the solution's next line writes 0.1.
    return round(value, 9)


def _annotation_readings(solution: str, pos: int, annotation: str) -> list[str]:
    """Readings of an annotation; a bare "<<30=30>>" also gets the prose in front of it.

    "$20 + $10 = $<<30=30>>30" computes in the prose and only records the result.
    """
    expr = annotation.split("=", 1)[0]
    readings = [sanitize_expression(expr)]
    if _OPERATOR_CHAR.search(expr.strip().lstrip("-")) is None:
        before = _mask_annotations(solution[:pos])
        m = re.search(r"=\s*\$?\s*$", before)
        if m:
            lhs = _prose_lhs(before[before.rfind("\n", 0, m.start()) + 1 : m.start()])
            literal = parse_number(sanitize_expression(expr))
            if lhs is not None and literal is not None:
                prose = sanitize_expression(lhs)
                try:
                    same = math.isclose(evaluate(parse_arithmetic(prose)), literal, rel_tol=1e-9)
                except (UnsafeExpression, ArithmeticError):
                    same = False
                if same:
                    readings.insert(0, prose)
    return readings


class _Substitute(ast.NodeTransformer):
    """Replace literals equal to an earlier step's value by that step's name."""

    def __init__(self, values: dict[float, str], givens: set[float]) -> None:
        self.values = values
        self.givens = givens

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        value = node.value
        key = _value_key(value)
        if value in _NO_SUBSTITUTE or value in self.givens or key not in self.values:
            return node
        return ast.copy_location(ast.Name(id=self.values[key], ctx=ast.Load()), node)


def _first_step(
    readings: list[str], env: dict[str, float], claimed: float | None
) -> tuple[ast.Expression, float] | str:
    """The first reading that parses, evaluates and (for prose) equals the claimed value.

    Returns a rejection reason when none does.
    """
    reason = "unparseable_annotation"
    for expr in readings:
        try:
            tree = parse_arithmetic(expr, env.keys())
            value = evaluate(tree, env)
        except UnsafeExpression:
            continue
        except (ArithmeticError, KeyError):
            reason = "annotation_eval_error"
            continue
        if claimed is None or math.isclose(value, claimed, rel_tol=1e-4, abs_tol=1e-6):
            return tree, value
        reason = "prose_value_mismatch"
    return reason


def _gsm8k_program(q: Question, solution: str) -> str | Rejection:
    annotations = [(m.start(), m.group(1)) for m in ANNOTATION.finditer(solution)]
    if not annotations:
        return _reject(q, "no_annotations")
    events: list[tuple[int, str, list[str], float | None]] = [
        (pos, a, _annotation_readings(solution, pos, a), None) for pos, a in annotations
    ]
    events += list(_prose_equations(solution))
    events.sort(key=lambda e: e[0])
    givens = {
        v for v in (parse_number(t) for t in _QUESTION_NUMBER.findall(q.text)) if v is not None
    }
    lines: list[str] = []
    env: dict[str, float] = {}
    by_value: dict[float, str] = {}
    for _, raw, readings, claimed in events:
        step = _first_step(readings, env, claimed)
        if isinstance(step, str):
            if claimed is None:  # a broken annotation is a broken gold program
                return _reject(q, step, raw)
            continue  # prose that only looks like an equation ("1.5p + 3 = 69")
        tree, value = step
        name = f"step_{len(lines) + 1}"
        tree = ast.fix_missing_locations(_Substitute(by_value, givens).visit(tree))
        lines.append(f"{name} = {ast.unparse(tree)}")
        env[name] = value
        by_value[_value_key(value)] = name
    # Rule: the answer is the LAST step whose value equals the gold answer (later steps are
    # checks or asides and are dropped). No such step: the final arithmetic happened in words
    # ("so she has 25 cents") and no faithful program exists, so reject instead of guessing.
    for k in range(len(lines), 0, -1):
        if answers_match(env[f"step_{k}"], q.gold_answer or ""):
            return "\n".join(lines[:k] + [f"ans = step_{k}"]) + "\n"
    last = env.get(f"step_{len(lines)}")
    return _reject(q, "answer_not_in_steps", f"last step {last!r}, gold {q.gold_answer}")


# --- TAT-QA ----------------------------------------------------------------------------------

_SCALE_WORD = re.compile(
    r"((?:\d[\d,]*(?:\.\d+)?|\.\d+))\s*(thousand|million|billion)s?\b", re.IGNORECASE
)


def _apply_scale_words(derivation: str, target_scale: str) -> str:
    """"60.3 million" in a table counted in thousands becomes "(60.3 * 1000)"."""
    unit = SCALE_FACTORS.get(target_scale, 1.0)

    def repl(m: re.Match[str]) -> str:
        factor = SCALE_FACTORS[m.group(2).lower()] / unit
        if factor == 1:
            return m.group(1)
        if factor > 1:
            return f"({m.group(1)} * {int(round(factor))})"
        return f"({m.group(1)} / {int(round(1 / factor))})"

    return _SCALE_WORD.sub(repl, derivation)


def _tatqa_candidates(derivation: str, scale: str) -> Iterator[str]:
    """Readings of a derivation, most literal first."""
    text = _apply_scale_words(derivation, scale)
    seen: set[str] = set()
    readings = [
        sanitize_expression(text, percent_as_fraction=False),
        sanitize_expression(text, percent_as_fraction=True),
    ]
    if scale == "percent":
        # A ratio like (a - b) / b reported as a percentage: the program must say "* 100".
        readings += [f"({r}) * 100" for r in readings]
    for r in readings:
        if r not in seen:
            seen.add(r)
            yield r


def _tatqa_arithmetic(q: Question, derivation: str, scale: str) -> str | Rejection:
    gold = q.gold_answer or ""
    values: list[tuple[str, float]] = []
    for expr in _tatqa_candidates(derivation, scale):
        try:
            tree = parse_arithmetic(expr)
            values.append((ast.unparse(tree), evaluate(tree)))
        except (UnsafeExpression, ArithmeticError):
            continue
    if not values:
        return _reject(q, "unparseable_derivation", derivation)
    gold_value = parse_number(gold)
    checks = [lambda v: answers_match(v, gold)]
    if scale == "percent" and gold_value is not None:
        # TAT-QA rounds percentages to two decimals; the JSON float drops trailing zeros.
        checks.append(lambda v: answers_match(v, f"{gold_value:.2f}"))
    for check in checks:
        for expr, value in values:
            if check(value):
                return f"ans = {expr}\n"
    return _reject(q, "derivation_mismatch", f"{derivation} = {values[0][1]!r}, gold {gold}")


def _tatqa_count(q: Question, derivation: str) -> str | Rejection:
    # A count's derivation lists the counted items separated by '##'; counting them is a
    # faithful program when the list has exactly the gold number of items.
    items = [item.strip() for item in derivation.split("##") if item.strip()]
    if items and parse_number(q.gold_answer) == len(items):
        return f"items = {items!r}\nans = len(items)\n"
    return _reject(q, "non_arithmetic", "count")


def _tatqa_program(q: Question) -> str | Rejection:
    answer_type = str(q.meta.get("answer_type", ""))
    derivation = str(q.meta.get("derivation") or "").strip()
    scale = str(q.meta.get("scale") or "").strip().lower()
    if answer_type == "arithmetic":
        return _tatqa_arithmetic(q, derivation, scale)
    if answer_type == "count":
        return _tatqa_count(q, derivation)
    return _reject(q, "non_arithmetic", answer_type)


# A program as (name, expression source) lines, the last one assigning `ans`.
Lines = list[tuple[str, str]]


def straight_lines(program: str) -> Lines | None:
    """Straight-line `name = expression` lines ending in `ans`, or None for anything else
    (the shape of every reference program; the noisy teachers rewrite them line by line)."""
    lines: Lines = []
    for raw in program.strip().splitlines():
        if not raw.strip():
            continue
        name, sep, expr = raw.partition("=")
        if not sep or not name.strip().isidentifier():
            return None
        lines.append((name.strip(), expr.strip()))
    return lines if lines and lines[-1][0] == "ans" else None


# --- public API ------------------------------------------------------------------------------


# How a question's gold annotation becomes a program, by the annotation it carries (not its
# source's name: a JSONL or HF copy of GSM8K carries the same `solution`). The first reader
# whose test holds decides.
GOLD_READERS: tuple[tuple[str, Callable[[Question], bool],
                           Callable[[Question], str | Rejection]], ...] = (
    ("program", lambda q: bool(q.gold_program), lambda q: str(q.gold_program)),
    ("gsm8k solution", lambda q: isinstance(q.meta.get("solution"), str),
     lambda q: _gsm8k_program(q, q.meta["solution"])),
    ("tatqa derivation", lambda q: q.source == "tatqa" or "answer_type" in q.meta,
     _tatqa_program),
)


def reference_program(q: Question) -> str | Rejection:
    """A Python program setting `ans` to q's gold answer, or why none can be derived."""
    for _, applies, read in GOLD_READERS:
        if applies(q):
            return read(q)
    return _reject(q, "no_program")


def reference_samples(questions: list[Question]) -> tuple[list[Sample], list[Rejection]]:
    """One gold Sample per convertible question; a Rejection for each of the others."""
    samples: list[Sample] = []
    rejections: list[Rejection] = []
    for q in questions:
        program = reference_program(q)
        if isinstance(program, Rejection):
            rejections.append(program)
            continue
        samples.append(
            Sample(
                question_id=q.question_id,
                teacher=TEACHER,
                model=MODEL,
                prompt_version=PROMPT_VERSION,
                sample_idx=0,
                program=program,
                raw=program,
                gen_params={},
            )
        )
    return samples, rejections


class ReferenceTeacherConfig(Settings):
    """Gold programs from the source's annotations: no LLM, no cost, always right."""

    kind: Literal["reference"] = Field("reference", description="teacher kind")


class ReferenceTeacher(Stage[Question, Sample]):
    """Teacher stage over gold annotations. Pure and chunked: on Dask the conversion runs on
    the workers like execution."""

    name = STAGE
    kind = TEACHER
    selection = Selection()

    def __init__(self, batch_size: int = 512) -> None:
        self.batch_size = batch_size

    def run(self, items: list[Question]) -> StageResult[Sample]:
        samples, rejections = reference_samples(items)
        return StageResult(kept=samples, rejections=rejections)
