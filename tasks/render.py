"""How a question is shown to a model and how a program is read back from its answer.

One place for both, because training data (export), LLM teacher prompts and evaluation must
render a question exactly the same way: a student trained on one rendering and evaluated on
another is measured on the wrong thing."""

from __future__ import annotations

import ast
import re
from typing import Literal

from tasks.tables import tables_as_rows

TableFormat = Literal["markdown", "rows"]

INSTRUCTION = ("Write a Python program that computes the answer and stores it in a variable "
               "named `ans`.")
SYSTEM_PROMPT = ("You are a careful quantitative analyst. You answer questions by writing "
                 "short, correct Python programs.")

_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)(?:```|\Z)", re.S | re.I)
# A line (or a `;`-separated statement) that assigns `ans`: `ans = ...`, `ans: float = ...`,
# `ans += x`, indented or not. For text that is not a whole program (code inside prose).
ANS_STATEMENT = re.compile(r"(?:^|;)\s*ans\s*(?::[^=\n]*)?(?:[-+*/%@&|^]|//|\*\*|<<|>>)?=(?!=)",
                           re.M)


# How tables reach the student (training data, preference pairs, evaluation). A 135M student
# trained on markdown tables copied numbers from the wrong cell: it has to count pipes across
# lines to match a value with its column. One line per row with the column named beside each
# value makes the lookup local (BENCHMARKS.md, "table format"); a value's name is its column's
# full header path when a table stacks header rows (tasks/tables.py). Teachers keep markdown.
STUDENT_TABLES: TableFormat = "rows"

def render_prompt(question: str, context: str = "", *,
                  tables: TableFormat = "markdown") -> str:
    """The user turn: context (tables, then paragraphs), the question, the ask. `tables`:
    markdown as the source wrote them, or `rows` (tables_as_rows)."""
    parts = []
    if context and context.strip():
        parts.append(tables_as_rows(context.strip()) if tables == "rows" else context.strip())
    parts.append(f"Question: {question.strip()}")
    parts.append(INSTRUCTION)
    return "\n\n".join(parts)


def student_prompt(question: str, context: str = "") -> str:
    """The user turn as the student sees it, in training and in evaluation alike."""
    return render_prompt(question, context, tables=STUDENT_TABLES)


def render_completion(program: str) -> str:
    """The assistant turn the student learns: the program in a python code fence."""
    return f"```python\n{program.strip()}\n```"


def assigns_ans(text: str) -> bool:
    """Does this code assign `ans` anywhere, however it is written? Public programs come in
    many styles (PoT releases write `x0 = a - b; ans = x0 / b` on one line; others assign in an
    `if`, from a function call, with an annotation or `+=`). Used to pick a program out of a
    model's answer, never to judge one: whether `ans` is really set is execution's word."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return bool(ANS_STATEMENT.search(text))
    return any(isinstance(node, ast.Name) and node.id == "ans" and isinstance(node.ctx, ast.Store)
               for node in ast.walk(tree))


def extract_program(text: str) -> str | None:
    """The program in a model's answer: the last fenced block that assigns `ans`, else the
    last fenced block, else the whole text when it looks like code. None when nothing does."""
    if not text or not text.strip():
        return None
    blocks = [b.strip() for b in _FENCE.findall(text) if b.strip()]
    for block in reversed(blocks):
        if assigns_ans(block):
            return block
    if blocks:
        return blocks[-1]
    stripped = text.strip()
    return stripped if assigns_ans(stripped) else None
