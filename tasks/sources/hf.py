"""Questions from a Hugging Face dataset (hub id when online, or a local folder of
json/jsonl/parquet/csv files) through `datasets.load_dataset`."""

from __future__ import annotations

import re

from tasks.errors import InputError
from tasks.types import Question

_QUESTION_COLS = ("question", "problem", "query", "input", "prompt")
_ANSWER_COLS = ("answer", "final_answer", "solution", "output")
_GSM8K_FINAL = re.compile(r"####\s*(.+?)\s*$", re.S)


def load_hf(name: str, split: str = "train", limit: int | None = None) -> list[Question]:
    import datasets  # slow import: only when this source is used

    try:
        ds = datasets.load_dataset(name, split=split)
    except Exception as exc:  # datasets raises many types; the user needs one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"hf:{name}:{split}: cannot load ({first[:200]})") from None
    columns = set(ds.column_names)
    q_col = next((c for c in _QUESTION_COLS if c in columns), None)
    if q_col is None:
        raise InputError(
            f"hf:{name}:{split}: missing field 'question' (columns: {sorted(columns)})"
        )
    a_col = next((c for c in _ANSWER_COLS if c in columns), None)
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    out = []
    for idx, row in enumerate(ds):
        text = row[q_col]
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"hf:{name}:{split}: row {idx}: empty field '{q_col}'")
        answer = row.get(a_col) if a_col else None
        meta: dict = {}
        gold = None if answer is None else str(answer)
        if isinstance(answer, str) and "####" in answer:
            # GSM8K-style worked solution: the reference teacher reads its annotations.
            meta["solution"] = answer
            m = _GSM8K_FINAL.search(answer)
            gold = m.group(1).replace(",", "").strip() if m else None
        out.append(Question(
            text=text.strip(),
            source=f"hf:{name}",
            context=str(row.get("context") or ""),
            gold_answer=gold,
            gold_program=row.get("program") or None,
            source_id=f"hf:{name}:{split}:{idx}",
            meta=meta,
        ))
    return out
