"""GSM8K seed file loader: JSONL of {"question", "answer"} with a worked solution."""

from __future__ import annotations

import json
from pathlib import Path

from tasks.answers import ANNOTATION, format_answer, parse_number
from tasks.errors import InputError
from tasks.types import Question

SOURCE = "gsm8k"
_FINAL = "####"


def final_answer(solution: str) -> str | None:
    """The text after the last '#### ' marker of a GSM8K solution, or None."""
    if _FINAL not in solution:
        return None
    return solution.rsplit(_FINAL, 1)[1].strip()


def _field(record: dict, name: str, where: str) -> str:
    if name not in record:
        raise InputError(f"{where}: missing field {name!r}")
    value = record[name]
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: field {name!r} must be a non-empty string")
    return value


def _question(record: object, where: str, path: Path, line_no: int) -> Question:
    if not isinstance(record, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(record).__name__}")
    text = _field(record, "question", where)
    solution = _field(record, "answer", where)
    final = final_answer(solution)
    if final is None:
        raise InputError(f"{where}: field 'answer' has no '#### ' final answer")
    number = parse_number(final)
    if number is None:
        raise InputError(f"{where}: field 'answer' final answer {final!r} is not a number")
    return Question(
        text=text,
        source=SOURCE,
        context="",
        gold_answer=format_answer(number),
        # Calculator annotations count the arithmetic steps: a cheap, honest difficulty proxy.
        difficulty=max(1, len(ANNOTATION.findall(solution))),
        source_id=f"{SOURCE}:{path.name}:{line_no}",
        meta={"solution": solution},
    )


def load_gsm8k(path: str | Path, limit: int | None = None) -> list[Question]:
    """Questions from a GSM8K JSONL file, in file order; blank lines are skipped.

    Raises InputError (one line naming file, line and field) on malformed input.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    questions: list[Question] = []
    try:
        with path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if limit is not None and len(questions) >= limit:
                    break
                if not line.strip():
                    continue
                where = f"{path}:{line_no}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{where}: invalid JSON ({exc.msg})") from None
                questions.append(_question(record, where, path, line_no))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason})") from None
    return questions
