"""GSM8K seed file loader: JSONL of {"question", "answer"} with a worked solution."""

from __future__ import annotations

from pathlib import Path

from tasks.answers import ANNOTATION, format_answer, parse_number
from tasks.errors import InputError
from tasks.sources.jsonl import jsonl_records
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


def _question(record: dict, where: str, path: Path, line_no: int) -> Question:
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
    return [_question(record, f"{path}:{n}", path, n) for n, record in jsonl_records(path, limit)]
