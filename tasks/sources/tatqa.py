"""TAT-QA seed file loader: hybrid table + text questions over financial reports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tasks.answers import format_answer
from tasks.errors import InputError
from tasks.types import Question

SOURCE = "tatqa"
NUMERIC_TYPES = frozenset({"arithmetic", "count"})
_OPERATOR = re.compile(r"(?<=[\d)\]%\s])[-+*/\u2212](?=[\s\d(\[$.-])")


def _cell(value: object) -> str:
    # A pipe would end the cell and a newline the row in GitHub markdown.
    return " ".join(str(value).split()).replace("|", "\\|")


def render_table(rows: list[list[Any]]) -> str:
    """GitHub markdown table, first row as header; ragged rows are padded."""
    if not rows:
        return ""
    width = max(len(row) for row in rows) or 1
    lines = []
    for i, row in enumerate(rows):
        cells = [_cell(c) for c in row] + [""] * (width - len(row))
        lines.append("| " + " | ".join(cells) + " |")
        if i == 0:
            lines.append("|" + " --- |" * width)
    return "\n".join(lines)


def render_context(table: list[list[Any]], paragraphs: list[dict[str, Any]]) -> str:
    """The table, a blank line, then the paragraphs in their `order`, one per block."""
    ordered = sorted(paragraphs, key=lambda p: (p.get("order") is None, p.get("order") or 0))
    parts = [render_table(table)] + [str(p.get("text", "")).strip() for p in ordered]
    return "\n\n".join(p for p in parts if p)


def _gold(answer: object, answer_type: str) -> str | None:
    if answer_type in NUMERIC_TYPES:
        formatted = format_answer(answer)
        if formatted is not None:
            return formatted
    return json.dumps(answer)


def _difficulty(derivation: str, answer_type: str) -> int:
    # Operators in the derivation approximate the number of reasoning steps.
    if answer_type != "arithmetic":
        return 1
    return max(1, len(_OPERATOR.findall(derivation)))


def _context_parts(block: object, where: str) -> tuple[str, list[list[Any]], list[dict]]:
    if not isinstance(block, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(block).__name__}")
    table = block.get("table")
    if not isinstance(table, dict):
        raise InputError(f"{where}: missing field 'table'")
    rows = table.get("table")
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise InputError(f"{where}: field 'table.table' must be a list of rows")
    paragraphs = block.get("paragraphs", [])
    if not isinstance(paragraphs, list) or not all(isinstance(p, dict) for p in paragraphs):
        raise InputError(f"{where}: field 'paragraphs' must be a list of objects")
    if not isinstance(block.get("questions"), list):
        raise InputError(f"{where}: missing field 'questions'")
    return str(table.get("uid", "")), rows, paragraphs


def _question(raw: object, where: str, context: str, table_uid: str) -> Question:
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    uid = raw.get("uid")
    if not isinstance(uid, str) or not uid:
        raise InputError(f"{where}: missing field 'uid'")
    where = f"{where} (uid {uid})"
    for name in ("question", "answer"):
        if name not in raw:
            raise InputError(f"{where}: missing field {name!r}")
    text = raw["question"]
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{where}: field 'question' must be a non-empty string")
    answer_type = str(raw.get("answer_type", ""))
    derivation = str(raw.get("derivation") or "")
    meta = {
        "uid": uid,
        "answer_type": answer_type,
        "answer_from": str(raw.get("answer_from", "")),
        "scale": str(raw.get("scale") or ""),
        "derivation": derivation,
        "answer": raw["answer"],
        "table_uid": table_uid,
        "rel_paragraphs": raw.get("rel_paragraphs", []),
        "req_comparison": bool(raw.get("req_comparison", False)),
    }
    return Question(
        text=text,
        source=SOURCE,
        context=context,
        gold_answer=_gold(raw["answer"], answer_type),
        difficulty=_difficulty(derivation, answer_type),
        source_id=f"{SOURCE}:{uid}",
        meta=meta,
    )


def load_tatqa(path: str | Path, limit: int | None = None) -> list[Question]:
    """One Question per TAT-QA question, in file order, sharing its block's rendered context.

    Raises InputError (one line naming file, position and field) on malformed input.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        blocks = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason})") from None
    if not isinstance(blocks, list):
        raise InputError(f"{path}: expected a JSON array of contexts")
    questions: list[Question] = []
    for ci, block in enumerate(blocks):
        where = f"{path}: context {ci}"
        table_uid, rows, paragraphs = _context_parts(block, where)
        context = render_context(rows, paragraphs)
        for qi, raw in enumerate(block["questions"]):
            if limit is not None and len(questions) >= limit:
                return questions
            questions.append(_question(raw, f"{where} question {qi}", context, table_uid))
    return questions
