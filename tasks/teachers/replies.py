"""Reading an LLM teacher's reply: the program of a PoT answer, the final answer of a CoT one.

Replies come from models of every size and habit: reasoning blocks, ```python3 or ~~~ fences,
unclosed fences, prose around unfenced code. Each parser returns None when there is nothing
usable, never raises.
"""

from __future__ import annotations

import ast
import re

from tasks.answers import parse_number
from tasks.render import ANS_STATEMENT, extract_program

_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.S | re.I)
_ODD_FENCE = re.compile(r"(```|~~~)[ \t]*(?:python3?|py|Python3?)?[ \t]*\n", re.I)
_CODE_LINE = re.compile(r"^\s*(?:[A-Za-z_]\w*\s*(?:[-+*/]?=)|ans\b|#|import\b|for\b|if\b|"
                        r"else\b|elif\b|return\b|def\b|while\b|\s+\S)")


def _compiles(program: str) -> bool:
    try:
        ast.parse(program)
    except (SyntaxError, ValueError):
        return False
    return True


def _code_run(text: str) -> str | None:
    """Unfenced code in prose: the longest run of code-looking lines ending at the last line
    that assigns `ans`, trimmed from the top until it compiles."""
    lines = text.splitlines()
    ends = [i for i, line in enumerate(lines) if ANS_STATEMENT.search(line)]
    if not ends:
        return None
    end = ends[-1]
    start = end
    while start > 0 and (_CODE_LINE.match(lines[start - 1]) or not lines[start - 1].strip()):
        start -= 1
    for s in range(start, end + 1):
        candidate = "\n".join(lines[s:end + 1]).strip()
        if candidate and _compiles(candidate):
            return candidate
    return None


def parse_program(text: str) -> str | None:
    """The program in a PoT answer, tolerating reasoning blocks, ```python3 or ~~~ fences,
    unclosed fences and prose around unfenced code; None when no compilable program."""
    if not text:
        return None
    cleaned = _ODD_FENCE.sub("```python\n", _THINK.sub("", text)).replace("~~~", "```")
    program = extract_program(cleaned)
    if program and _compiles(program) and re.search(r"\bans\b", program):
        return program
    return _code_run(cleaned)


_FINAL = re.compile(r"(?:final answer|the answer is|answer:|####)\s*[:=]?\s*\**\s*"
                    r"(?:\\boxed\{)?([^\n}]*)", re.I)
_BOXED = re.compile(r"\\boxed\{([^}]*)\}")


def parse_final_answer(text: str) -> float | None:
    """The marked final answer of a CoT answer ("Final answer: 12.8", "#### 12.8",
    "\\boxed{12.8}"), the last one when several."""
    if not text:
        return None
    body = _THINK.sub("", text)
    found = [m.group(1) for m in _FINAL.finditer(body)] or _BOXED.findall(body)
    for raw in reversed(found):
        token = raw.strip().strip("*").strip().rstrip(".")
        token = re.sub(r"\s*(?:dollars?|percent|%|units?)$", "", token, flags=re.I)
        value = parse_number(token)
        if value is None:
            m = re.search(r"-?\$?\d[\d,]*(?:\.\d+)?", token)
            value = parse_number(m.group(0)) if m else None
        if value is not None:
            return value
    return None


def parse(text: str | None, fmt: str) -> str | None:
    """A program that sets `ans`, or None (unparseable). A CoT answer becomes the one-line
    program `ans = <final answer>` so verification, selection and the curated view treat both
    formats alike; its reasoning stays in `samples.raw`."""
    if fmt == "cot":
        value = parse_final_answer(text or "")
        if value is None:
            return None
        return f"ans = {int(value)!r}\n" if float(value).is_integer() and abs(value) < 1e15 \
            else f"ans = {value!r}\n"
    return parse_program(text or "")
