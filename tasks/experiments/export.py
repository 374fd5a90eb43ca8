"""Examples as SFT training data, in the dataset formats TRL's SFTTrainer takes.

- `messages`: conversational language modeling, one column `messages` = [system, user,
  assistant]; train it with `assistant_only_loss` and a chat template with generation markers.
- `prompt_completion`: conversational prompt-completion, `prompt` = [system, user] and
  `completion` = [assistant]; SFTTrainer then puts the loss on the completion only.

The user turn is `tasks.render.student_prompt`, the same function evaluation renders questions
with, so the student is trained and measured on the same text.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from tasks.errors import InputError
from tasks.render import SYSTEM_PROMPT, render_completion, student_prompt

FORMATS = ("messages", "prompt_completion")
# Columns carried next to the training text, so a trained model's data can be traced back
# and sliced (by source, kind, difficulty) without a warehouse join.
META_COLUMNS = ("question_id", "sample_id", "source", "kind", "difficulty", "answer")


def normalize_format(fmt: str) -> str:
    """'prompt-completion' (CLI spelling) and 'prompt_completion' are the same format."""
    name = fmt.strip().lower().replace("-", "_")
    if name not in FORMATS:
        raise InputError(f"export format {fmt!r}: one of messages, prompt-completion")
    return name


def _field(example: Any, name: str) -> Any:
    if isinstance(example, Mapping):
        return example.get(name)
    return getattr(example, name, None)


def example_messages(example: Any) -> list[dict[str, str]]:
    """[system, user, assistant] turns of one example (an Example or a mapping with text,
    context and program)."""
    program = _field(example, "program")
    if not program:
        raise InputError(f"example {_field(example, 'question_id')}: no program to train on")
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": student_prompt(_field(example, "text"),
                                                   _field(example, "context") or "")},
        {"role": "assistant", "content": render_completion(program)},
    ]


def example_rows(examples: Sequence[Any], fmt: str = "messages") -> list[dict[str, Any]]:
    """One TRL-format row per example, with the META_COLUMNS next to it."""
    fmt = normalize_format(fmt)
    rows = []
    for ex in examples:
        turns = example_messages(ex)
        row: dict[str, Any] = ({"messages": turns} if fmt == "messages"
                               else {"prompt": turns[:2], "completion": turns[2:]})
        for col in META_COLUMNS:
            row[col] = _field(ex, col)
        if row["difficulty"] is not None:
            row["difficulty"] = int(row["difficulty"])
        if row["answer"] is not None:
            row["answer"] = str(row["answer"])
        rows.append(row)
    return rows


def _features(fmt: str):  # noqa: ANN202 - datasets.Features
    from datasets import Features, List, Value

    turns = List({"role": Value("string"), "content": Value("string")})
    text = ({"messages": turns} if fmt == "messages"
            else {"prompt": turns, "completion": turns})
    # Explicit types: a column that is all None (e.g. no kinds) must not become type null.
    meta = {c: Value("int32") if c == "difficulty" else Value("string") for c in META_COLUMNS}
    return Features({**text, **meta})


@contextmanager
def _quiet_datasets() -> Iterator[None]:
    """No `datasets` progress bars on the terminal, and the caller's setting restored."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def export_examples(examples: Sequence[Any], out_dir: str | Path, fmt: str = "messages",
                    *, metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write `examples` to out_dir as an HF dataset (`hf/`, for `datasets.load_from_disk`),
    `data.parquet` and `data.jsonl`, plus `manifest.json` (format, count, `metadata`).

    Returns {"n", "format", "columns", "hf", "parquet", "jsonl", "manifest"} (paths as str).
    An existing export in out_dir is replaced, never mixed with or silently reused."""
    fmt = normalize_format(fmt)
    if not examples:
        raise InputError("nothing to export: no examples")
    return write_dataset(example_rows(examples, fmt), out_dir, _features(fmt), fmt,
                         metadata=metadata)


def write_dataset(rows: Sequence[dict[str, Any]], out_dir: str | Path, features: Any,
                  fmt: str, *, metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write rows to out_dir as an HF dataset (`hf/`), `data.parquet`, `data.jsonl` and
    `manifest.json`; the writer of every export (SFT rows, preference pairs, verifier
    labels). `features`: the datasets.Features of the rows (explicit, so that a column
    that happens to be all None keeps its type)."""
    from datasets import Dataset

    if not rows:
        raise InputError(f"nothing to export: no {fmt} rows")
    ds = Dataset.from_list(list(rows), features=features)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hf_dir, parquet, jsonl, manifest = (out / "hf", out / "data.parquet", out / "data.jsonl",
                                        out / "manifest.json")
    if hf_dir.exists():
        shutil.rmtree(hf_dir)
    with _quiet_datasets():
        ds.save_to_disk(str(hf_dir))
    pq.write_table(ds.data.table, str(parquet))
    with jsonl.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    result: dict[str, Any] = {
        "n": len(rows), "format": fmt, "columns": list(ds.column_names),
        "hf": str(hf_dir), "parquet": str(parquet), "jsonl": str(jsonl),
        "manifest": str(manifest),
    }
    manifest.write_text(json.dumps({**result, "metadata": dict(metadata or {})}, indent=2,
                                   sort_keys=True, default=str) + "\n", encoding="utf-8")
    return result
