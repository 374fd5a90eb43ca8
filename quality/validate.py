"""Run the suites over a batch: failing rows become rejections named after the expectation,
and the gate decides whether the batch may be published."""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tasks.answers import parse_number
from tasks.types import Rejection

from .suites import curated_suite, gate_suite

_gx_lock = threading.Lock()


@dataclass
class ValidationOutcome:
    kept_ids: list[str]
    rejections: list[Rejection]
    success: bool  # the gate passed: the batch may be published
    statistics: dict[str, Any] = field(default_factory=dict)
    results: list[dict[str, Any]] = field(default_factory=list)


def _compiles(program: object) -> bool:
    if not isinstance(program, str):
        return False
    try:
        # Compiling parses; it runs nothing (programs only ever run in the sandbox).
        compile(program, "<program>", "exec")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


def _finite(answer: object) -> bool:
    value = parse_number(answer) if answer is not None else None
    return value is not None and math.isfinite(value)


def _context():  # noqa: ANN202 - an ephemeral gx context with its progress bars off
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # GE logs an INFO line per ephemeral context ("temporary directory for docs site").
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return ctx


def _run(ctx: Any, name: str, df: pd.DataFrame, suite: Any, id_column: str | None) -> Any:
    asset = ctx.data_sources.add_pandas(name).add_dataframe_asset(f"{name}_frame")
    batch = asset.add_batch_definition_whole_dataframe("whole").get_batch(
        batch_parameters={"dataframe": df})
    fmt: dict[str, Any] = {"result_format": "COMPLETE"}
    if id_column:
        fmt["unexpected_index_column_names"] = [id_column]
    return batch.validate(suite, result_format=fmt)


def validate_candidates(rows: pd.DataFrame, *, min_rows: int = 1,
                        max_rejected_fraction: float = 0.2) -> ValidationOutcome:
    """`rows`: one candidate example per question with columns question_id, question,
    context, program, answer."""
    df = rows.copy()
    df["answer_is_finite"] = [_finite(a) for a in df["answer"]]
    df["program_compiles"] = [_compiles(p) for p in df["program"]]
    with _gx_lock:  # gx contexts are not meant to be built concurrently in one process
        ctx = _context()
        row_result = _run(ctx, "candidates", df, curated_suite(), "question_id")

    failed: dict[str, str] = {}
    results = []
    seen_ids: set[str] = set()
    for res in row_result.results:
        cfg = res.expectation_config
        column = cfg.kwargs.get("column")
        reason = f"{cfg.type}({column})" if column else cfg.type
        unexpected = res.result.get("unexpected_index_list") or []
        results.append({"expectation": reason, "success": bool(res.success),
                        "unexpected_count": int(res.result.get("unexpected_count") or 0)})
        for entry in unexpected:
            qid = entry.get("question_id") if isinstance(entry, dict) else None
            if qid is None:
                continue
            # A duplicated id: keep its first copy, reject the others.
            if cfg.type == "expect_column_values_to_be_unique" and qid not in seen_ids:
                seen_ids.add(qid)
                continue
            failed.setdefault(qid, reason)
    rejections = [Rejection(item_id=qid, stage="quality", reason=reason,
                            detail="row failed the curated_batch suite")
                  for qid, reason in sorted(failed.items())]
    kept_ids = [q for q in dict.fromkeys(df["question_id"]) if q not in failed]

    total = len(df)
    summary = pd.DataFrame({"kept_rows": [len(kept_ids)],
                            "rejected_fraction": [(total - len(kept_ids)) / total if total
                                                  else 0.0]})
    with _gx_lock:
        gate_result = _run(ctx, "gate", summary, gate_suite(min_rows, max_rejected_fraction),
                           None)
    for res in gate_result.results:
        cfg = res.expectation_config
        results.append({"expectation": f"gate:{cfg.type}({cfg.kwargs.get('column')})",
                        "success": bool(res.success),
                        "observed": res.result.get("observed_value")})
    statistics = {
        "rows": total,
        "kept": len(kept_ids),
        "rejected": total - len(kept_ids),
        "row_suite": dict(row_result.statistics),
        "gate_suite": dict(gate_result.statistics),
    }
    return ValidationOutcome(kept_ids=kept_ids, rejections=rejections,
                             success=bool(gate_result.success), statistics=statistics,
                             results=results)
