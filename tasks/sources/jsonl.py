"""Generic JSONL questions: `question` required; `answer`, `context`, `program`, `id` optional."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tasks.errors import InputError
from tasks.types import Question

_OPTIONAL_STR = ("answer", "context", "program", "id")


def jsonl_records(path: str | Path, limit: int | None = None
                  ) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file, at most `limit`.

    Raises InputError (one line naming the file and line) for a missing file, text that is
    not UTF-8, invalid JSON, or a line that is not a JSON object."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    seen = 0
    try:
        with path.open(encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, start=1):
                if limit is not None and seen >= limit:
                    return
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}:{line_no}: invalid JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise InputError(f"{path}:{line_no}: expected a JSON object, got "
                                     f"{type(row).__name__}")
                seen += 1
                yield line_no, row
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason})") from None


def load_jsonl(path: str | Path, limit: int | None = None) -> list[Question]:
    path = Path(path)
    return [_row_to_question(row, f"{path}:{n}", f"jsonl:{path.name}:{n}")
            for n, row in jsonl_records(path, limit)]


def _row_to_question(row: dict, where: str, default_id: str) -> Question:
    text = row.get("question")
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{where}: missing field 'question'")
    for name in _OPTIONAL_STR:
        value = row.get(name)
        if value is not None and not isinstance(value, str | int | float):
            raise InputError(f"{where}: field '{name}' must be a string or number")
    answer = row.get("answer")
    return Question(
        text=text.strip(),
        source="jsonl",
        context=str(row.get("context") or ""),
        gold_answer=None if answer is None else str(answer),
        gold_program=row.get("program") or None,
        difficulty=row.get("difficulty") if isinstance(row.get("difficulty"), int) else None,
        source_id=str(row["id"]) if row.get("id") is not None else default_id,
        meta={k: v for k, v in row.items()
              if k not in {"question", "answer", "context", "program", "id", "difficulty"}},
    )
