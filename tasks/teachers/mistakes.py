"""Mistakes a teacher repeats: one misunderstanding per question type, the same every time.

The independent noisy teacher (tasks/teachers/noisy.py) draws an error per question, so the
right programs of a type outnumber the wrong ones and carry the pattern anyway. A real teacher
is wrong the same way on every question it misunderstands: percent change over the new value,
the average of a range taken over its two endpoints, a value read under the wrong group of a
multi-row header, a value whose scale it dropped. This module decides which types a teacher
misunderstands and how, and writes the wrong program.

Question types (what a misunderstanding is tied to):
- a formula type: the shape of the reference program's answer expression, operands named by
  first appearance (`(a-b)/b*100`), prefixed with the source and, for procedural questions,
  the generator's kind (`procedural:percent_change:(a-b)/b*100`, `tatqa:(a+b+c)/3`). Constants
  that are part of the formula (`/ 3`, `* 100`, `** (1 / 2)`) stay in the shape;
- a reading type, `<source>:multi_header`: a question one of whose operands is a cell of a
  table with column groups, beside a cell of the same heading under another group
  (`Domestic 2019` / `International 2019`).

The plan, a pure function of (seed, share, type): a type is misunderstood when a uniform
number drawn from hash(seed, type) is below `share` (or when the config lists it); its mistake
is drawn by the same seed among those that change the answer of every question of that type
(checked on the shape itself with random operands: the program runs and its answer is
outside every tolerance of the answer check),
the specific misunderstandings (percent over the new value, endpoints, simple growth for
CAGR, wrong header level) before the generic ones (swapped change, inverted ratio, fence-post
average, dropped scale). No batch, chunk or order enters: the same types go wrong in every
run and on every worker. A formula mistake and a reading mistake can both hit one question.
"""

from __future__ import annotations

import ast
import copy
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from tasks.answers import answers_match, parse_number
from tasks.tables import markdown_tables, read_table
from tasks.teachers.reference import evaluate, parse_arithmetic, straight_lines
from tasks.types import Question, stable_hash

# Misunderstandings of a formula (rewrites of the answer expression), then misreadings of a
# value (another number in place of one operand).
SPECIFIC = ("percent_change_over_new", "average_of_endpoints", "cagr_as_simple_rate",
            "wrong_header_level")
GENERIC = ("swapped_change", "inverted_ratio", "average_over_intervals", "dropped_scale")
MISTAKES = SPECIFIC + GENERIC
READING_TYPE = "multi_header"
PLAN_VERSION = "repeating-v1"
# Integers that belong to a formula, not to the table: counts of an average, `* 100`,
# the `1` of a growth rate, years of a CAGR. Table integers this small are rare and harmless
# (they only make the shape more specific).
_STRUCTURAL = frozenset([*range(0, 13), 100, 1000])
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


# --- operands and shapes ---------------------------------------------------------------------

def _is_operand(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return True
    # A number written with a decimal point (`4.0`, `10.0`) is a table value whatever its size.
    return (isinstance(node, ast.Constant) and isinstance(node.value, int | float)
            and not isinstance(node.value, bool)
            and (isinstance(node.value, float) or node.value not in _STRUCTURAL))


def _key(node: ast.AST) -> tuple[str, object]:
    return ("n", node.id) if isinstance(node, ast.Name) else ("c", node.value)


def operands(tree: ast.AST) -> list[ast.AST]:
    """Operand nodes in source order (ast.walk is breadth-first; this is left to right)."""
    found: list[ast.AST] = []

    class Visit(ast.NodeVisitor):
        def generic_visit(self, node: ast.AST) -> None:
            if _is_operand(node):
                found.append(node)
            super().generic_visit(node)

    Visit().visit(tree)
    return found


def shape(expr: str) -> str | None:
    """`(revenue_2019 - revenue_2018) / revenue_2018 * 100` -> `(a-b)/b*100`; None when
    `expr` is not an expression."""
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError:
        return None
    letters: dict[tuple[str, object], str] = {}

    class Rename(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.AST:
            return self._letter(node)

        def visit_Constant(self, node: ast.Constant) -> ast.AST:
            return self._letter(node) if _is_operand(node) else node

        def _letter(self, node: ast.AST) -> ast.AST:
            k = _key(node)
            if k not in letters:
                letters[k] = _LETTERS[len(letters) % len(_LETTERS)]
            return ast.Name(letters[k], ast.Load())

    return ast.unparse(Rename().visit(tree)).replace(" ", "")


# --- formula rewrites (on an expression tree; None: the rewrite does not apply) --------------

def _same(a: ast.AST, b: ast.AST) -> bool:
    return ast.dump(a) == ast.dump(b)


def _binops(tree: ast.AST, op: type) -> list[ast.BinOp]:
    out: list[ast.BinOp] = []

    class Visit(ast.NodeVisitor):
        def visit_BinOp(self, node: ast.BinOp) -> None:
            if isinstance(node.op, op):
                out.append(node)
            self.generic_visit(node)

    Visit().visit(tree)
    return out


def _sum_terms(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _sum_terms(node.left) + [node.right]
    return [node]


def _has_operand(node: ast.AST) -> bool:
    return bool(operands(node))


def percent_change_over_new(tree: ast.Expression) -> ast.Expression | None:
    """(new - old) / old -> (new - old) / new; new / old - 1 -> 1 - old / new."""
    for div in _binops(tree, ast.Div):
        if isinstance(div.left, ast.BinOp) and isinstance(div.left.op, ast.Sub) and \
                _same(div.right, div.left.right) and not _same(div.left.left, div.right):
            div.right = copy.deepcopy(div.left.left)
            return tree
    for sub in _binops(tree, ast.Sub):
        if isinstance(sub.left, ast.BinOp) and isinstance(sub.left.op, ast.Div) and \
                isinstance(sub.right, ast.Constant) and sub.right.value == 1 and \
                _has_operand(sub.left.left) and _has_operand(sub.left.right):
            num, den = sub.left.left, sub.left.right
            sub.left = ast.Constant(1)
            sub.right = ast.BinOp(den, ast.Div(), num)
            return tree
    return None


def _averages(tree: ast.Expression) -> list[tuple[ast.BinOp, list[ast.AST], int]]:
    """(division, summed terms, count) of every `(t1 + ... + tn) / n`."""
    out = []
    for div in _binops(tree, ast.Div):
        terms = _sum_terms(div.left)
        if isinstance(div.right, ast.Constant) and div.right.value == len(terms) >= 2:
            out.append((div, terms, len(terms)))
    return out


def average_of_endpoints(tree: ast.Expression) -> ast.Expression | None:
    """(a + b + c) / 3 -> (a + c) / 2: the average of a range over its first and last year."""
    for div, terms, n in _averages(tree):
        if n >= 3:
            div.left = ast.BinOp(terms[0], ast.Add(), terms[-1])
            div.right = ast.Constant(2)
            return tree
    return None


def average_over_intervals(tree: ast.Expression) -> ast.Expression | None:
    """(a + b + c) / 3 -> (a + b + c) / 2: divided by the years between, not the years."""
    for div, _, n in _averages(tree):
        div.right = ast.Constant(n - 1)
        return tree
    return None


def cagr_as_simple_rate(tree: ast.Expression) -> ast.Expression | None:
    """(x ** (1 / n) - 1) -> (x - 1) / n: growth spread evenly, not compounded."""
    for sub in _binops(tree, ast.Sub):
        pw = sub.left
        if isinstance(pw, ast.BinOp) and isinstance(pw.op, ast.Pow) and \
                isinstance(sub.right, ast.Constant) and sub.right.value == 1 and \
                isinstance(pw.right, ast.BinOp) and isinstance(pw.right.op, ast.Div) and \
                isinstance(pw.right.left, ast.Constant) and pw.right.left.value == 1:
            years = pw.right.right
            sub.left = ast.BinOp(pw.left, ast.Sub(), ast.Constant(1))
            sub.op, sub.right = ast.Div(), years
            return tree
    return None


def _swap_first(tree: ast.Expression, op: type[ast.operator]) -> ast.Expression | None:
    """Swap the operands of the first `op` between two different expressions over values."""
    for node in _binops(tree, op):
        if _has_operand(node.left) and _has_operand(node.right) and \
                not _same(node.left, node.right):
            node.left, node.right = node.right, node.left
            return tree
    return None


def swapped_change(tree: ast.Expression) -> ast.Expression | None:
    """a - b -> b - a (the first subtraction of two different operands' expressions)."""
    return _swap_first(tree, ast.Sub)


def inverted_ratio(tree: ast.Expression) -> ast.Expression | None:
    """a / b -> b / a (the first division of two expressions over table values)."""
    return _swap_first(tree, ast.Div)


FORMULA: dict[str, Callable[[ast.Expression], ast.Expression | None]] = {
    "percent_change_over_new": percent_change_over_new,
    "average_of_endpoints": average_of_endpoints,
    "cagr_as_simple_rate": cagr_as_simple_rate,
    "swapped_change": swapped_change,
    "inverted_ratio": inverted_ratio,
    "average_over_intervals": average_over_intervals,
}


# --- which mistakes fit a formula type -------------------------------------------------------

def _value(tree: ast.AST, env: dict[str, float]) -> float | None:
    try:
        return evaluate(parse_arithmetic(ast.unparse(tree), env), env)
    except (ArithmeticError, ValueError, KeyError):
        return None


def changes_answer(new: float | None, old: float | None, scale: str | None = None) -> bool:
    """Whether `new` is an answer the check tells from `old`. A program that fails (None)
    does not count: its mistake would be caught by execution, not by the answer check."""
    if old is None or new is None or not math.isfinite(new):
        return False
    return not answers_match(new, repr(round(old, 6)), scale=scale or None)


@lru_cache(maxsize=4096)
def fitting(formula_shape: str) -> tuple[str, ...]:
    """The mistakes that change the answer of every question of this shape: each must apply
    to the shape and move its value past every tolerance of the answer check (scale words,
    percent vs fraction) on three random draws of positive operands."""
    tree = ast.parse(formula_shape, mode="eval")
    letters = sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)})
    rng = random.Random(0)
    draws = [{x: rng.uniform(10, 1000) for x in letters} for _ in range(3)]
    out = []
    for name in MISTAKES:
        if name == "wrong_header_level" or not letters:
            continue  # a reading type's mistake, not a formula's
        ok = True
        for env in draws:
            old = _value(tree, env)
            if name == "dropped_scale":
                first = operands(tree)[0].id
                new = _value(tree, {**env, first: env[first] * 1000})
            else:
                made = FORMULA[name](copy.deepcopy(tree))
                if made is None:
                    ok = False
                    break
                new = _value(made, env)
            if not all(changes_answer(new, old, s)
                       for s in (None, "thousand", "million", "billion", "percent")):
                ok = False
                break
        if ok:
            out.append(name)
    return tuple(out)


# --- the wrong header level ------------------------------------------------------------------

def header_siblings(context: str) -> dict[float, float]:
    """|value| of a table cell -> |value| of the cell in its row under the same bottom
    heading but another group (`Domestic 2019` -> `International 2019`); cells whose value
    appears with different siblings are left out (the reading would be ambiguous)."""
    out: dict[float, float] = {}
    clash: set[float] = set()
    for rows in markdown_tables(context):
        layout = read_table(rows)
        if len(layout.levels) < 2:
            continue
        leaf, width = layout.levels[-1], len(layout.columns)
        for row in layout.body:
            for j in range(1, width):
                k = next((k for k in range(1, width) if k != j and leaf[k] and
                          leaf[k] == leaf[j] and layout.columns[k] != layout.columns[j]), None)
                v = parse_number(row[j]) if j < len(row) else None
                w = parse_number(row[k]) if k is not None and k < len(row) else None
                if v is None or w is None or abs(v) == abs(w):
                    continue
                if out.get(abs(v), abs(w)) != abs(w):
                    clash.add(abs(v))
                out[abs(v)] = abs(w)
    return {v: w for v, w in out.items() if v not in clash}


# --- programs --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Made:
    """A program with the plan's mistakes in it."""

    program: str
    mistakes: tuple[str, ...]


def _literal(expr: str) -> float | None:
    try:
        value = ast.literal_eval(expr)
    except (ValueError, SyntaxError):
        return None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(round(value, 6))


def _replace_operand(lines: list[tuple[str, str]], tree: ast.Expression, target: ast.AST,
                     new: Callable[[float], float]) -> ast.Expression:
    """`tree` with `target`'s value read as `new(value)` everywhere it stands: on its literal
    line for a name (a computed name is multiplied in place: dropped scale), at every equal
    constant of the answer expression for a number."""
    if isinstance(target, ast.Name):
        for i, (name, expr) in enumerate(lines[:-1]):
            value = _literal(expr)
            if name == target.id and value is not None:
                lines[i] = (name, _number_text(new(value)))
                return tree
        factor = new(1.0)

        class Scale(ast.NodeTransformer):
            def visit_Name(self, node: ast.Name) -> ast.AST:
                if node.id != target.id:
                    return node
                return ast.BinOp(node, ast.Mult(), ast.Constant(_literal(
                    _number_text(factor))))

        return Scale().visit(tree)
    old = target.value
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and _is_operand(node) and node.value == old:
            value = new(old)
            node.value = int(value) if isinstance(old, int) and float(value).is_integer() \
                else float(value)
    return tree


def _operand_value(lines: list[tuple[str, str]], node: ast.AST) -> float | None:
    if isinstance(node, ast.Constant):
        return float(node.value)
    return next((_literal(e) for n, e in lines[:-1] if n == node.id), None)


def question_types(q: Question, program: str) -> tuple[str | None, str | None]:
    """(formula type, reading type or None) of a question whose reference program is
    `program`; (None, None) when the program is not straight-line arithmetic."""
    lines = straight_lines(program)
    form = shape(lines[-1][1]) if lines else None
    if form is None or not operands(ast.parse(form, mode="eval")):
        return None, None
    kind = q.meta.get("kind") if q.source == "procedural" else None
    formula = f"{q.source}:{kind}:{form}" if kind else f"{q.source}:{form}"
    reading = None
    siblings = header_siblings(q.context) if q.context and "|" in q.context else {}
    if siblings:
        tree = ast.parse(lines[-1][1], mode="eval")
        if any(abs(v) in siblings for v in (_operand_value(lines, n) for n in operands(tree))
               if v is not None):
            reading = f"{q.source}:{READING_TYPE}"
    return formula, reading


def apply_mistakes(q: Question, program: str, mistakes: Sequence[str]) -> Made | None:
    """The reference program with `mistakes` made in it (formula rewrites first, then the
    misread value); None when one of them does not apply to this program."""
    lines = straight_lines(program)
    if lines is None:
        return None
    tree = ast.parse(lines[-1][1], mode="eval")
    unknown = set(mistakes) - set(MISTAKES)
    if unknown:
        raise ValueError(f"unknown mistakes {sorted(unknown)}; known: {', '.join(MISTAKES)}")
    # The formula first: its rewrite is decided on the program's structure, which is its
    # type's shape. Then the misread values: the wrong header level by the value a cell holds,
    # a dropped scale on the formula's first operand. So each applies to every program of
    # its type, whatever the others did.
    order = {"wrong_header_level": 1, "dropped_scale": 2}
    for name in sorted(mistakes, key=lambda m: order.get(m, 0)):
        if name in FORMULA:
            made = FORMULA[name](tree)
            if made is None:
                return None
            tree = made
            continue
        targets = operands(tree)
        if name == "dropped_scale" and targets:
            tree = _replace_operand(lines, tree, targets[0], lambda v: v * 1000)
            continue
        siblings = header_siblings(q.context) if q.context else {}
        pick = next((n for n in targets
                     if abs(_operand_value(lines, n) or math.nan) in siblings), None)
        if pick is None or (isinstance(pick, ast.Name) and _operand_value(lines, pick) is None):
            return None
        other = siblings  # bound now: the reading is this question's table's

        tree = _replace_operand(lines, tree, pick,
                                lambda v, other=other: math.copysign(other[abs(v)], v))
    lines[-1] = ("ans", ast.unparse(tree))
    return Made("\n".join(f"{n} = {e}" for n, e in lines), tuple(mistakes))


# --- the plan --------------------------------------------------------------------------------

def _uniform(*parts: object) -> float:
    return int(stable_hash(*parts)[:13], 16) / 16 ** 13


@dataclass(frozen=True)
class MistakePlan:
    """Which question types a teacher misunderstands and how: a pure function of the seed,
    the share and the type (module docstring). `wrong_types` pins the misunderstood types
    instead of drawing them (an entry names a type or a prefix of types: `procedural:ratio`)."""

    share: float
    seed: int = 0
    mistakes: tuple[str, ...] = MISTAKES
    wrong_types: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"share of question types must be in [0, 1], got {self.share}")
        unknown = set(self.mistakes) - set(MISTAKES)
        if unknown or not self.mistakes:
            raise ValueError(f"mistakes must be some of {MISTAKES}, got {list(self.mistakes)}")

    def misunderstands(self, qtype: str) -> bool:
        if self.wrong_types is not None:
            return any(qtype == t or qtype.startswith(t + ":") for t in self.wrong_types)
        return _uniform(PLAN_VERSION, "type", self.seed, qtype) < self.share

    def mistake(self, qtype: str) -> str | None:
        """The mistake made on every question of `qtype`; None when the type is understood
        or no allowed mistake fits it."""
        if not self.misunderstands(qtype):
            return None
        if qtype.endswith(":" + READING_TYPE):
            options = [m for m in self.mistakes if m == "wrong_header_level"]
        else:
            fit = fitting(qtype.rsplit(":", 1)[-1])
            options = [m for m in self.mistakes if m in fit]
            specific = [m for m in options if m in SPECIFIC]
            options = specific or options
        if not options:
            return None
        return random.Random(stable_hash(PLAN_VERSION, "mistake", self.seed, qtype)
                             ).choice(sorted(options))

    def for_question(self, q: Question, program: str) -> dict[str, str]:
        """{type: mistake} for the types of `q` that the plan gets wrong."""
        out = {}
        for qtype in question_types(q, program):
            mistake = self.mistake(qtype) if qtype else None
            if mistake:
                out[qtype] = mistake
        return out
