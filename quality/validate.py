"""Run the project's checkpoints over a candidate batch: failing rows become rejections named
after the expectation, batch-level failures refuse the batch, drift from the current snapshot
is reported (and refuses the batch when `drift_blocking`). Each checkpoint stores its results
and rebuilds the Data Docs site (quality/gx/checkpoints/*.json, action update_data_docs;
skipped when DISTILLERY_DATA_DOCS is off, see quality.context)."""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.types import Rejection

from .context import data_docs_enabled, gx_lock, quality_context
from .suites import (
    BATCH_CHECKPOINT,
    CURATED_SUITE,
    DRIFT_CHECKPOINT,
    DRIFT_SUITE,
    ROW_CHECKPOINT,
    ROW_SUITES,
    ReferenceStats,
    drift_frame,
    drift_parameters,
    measured,
)

__all__ = ["CURATED_SUITE", "RowOutcome", "ValidationOutcome", "check_batch", "check_rows",
           "validate_candidates"]

# The batch expectation on the share of rows the row suites rejected.
_REJECTED_SHARE = "expect_column_mean_to_be_between(row_rejected)"


@dataclass
class ValidationOutcome:
    kept_ids: list[str]
    rejections: list[Rejection]
    success: bool  # no blocking expectation failed: the batch may be published
    statistics: dict[str, Any] = field(default_factory=dict)
    # One entry per expectation evaluated: suite, expectation, success, severity, blocking,
    # unexpected_count or observed value.
    results: list[dict[str, Any]] = field(default_factory=list)
    blocking_failures: list[str] = field(default_factory=list)  # "suite: expectation(column)"
    warnings: list[str] = field(default_factory=list)          # failed, not blocking
    drift: list[dict[str, Any]] = field(default_factory=list)  # the drift suite's results
    reason: str | None = None  # one line, when the batch is refused
    docs_index: Path | None = None  # the Data Docs site's index.html
    docs_pages: dict[str, str] = field(default_factory=dict)  # suite -> its result page URL

    def check_table(self) -> list[dict[str, Any]]:
        """Batch-level and drift expectations, one row each (for a Prefect table artifact):
        what refused the batch, what only warned, and what passed."""
        rows = []
        for r in self.results:
            if r["suite"] in ROW_SUITES:
                continue
            observed = r.get("observed")
            if isinstance(observed, dict) and "values" in observed:
                observed = ", ".join(f"{v:.3g}" if isinstance(v, float) else str(v)
                                     for v in observed["values"])
            elif isinstance(observed, float):
                observed = round(observed, 4)
            rows.append({"suite": r["suite"], "expectation": r["expectation"],
                         "result": "pass" if r["success"] else
                         ("REFUSED" if r["blocking"] else "warning"),
                         "observed": "" if observed is None else str(observed)})
        return rows

    def suite_rows(self) -> list[tuple[str, bool, dict[str, Any], list[dict[str, Any]]]]:
        """(suite, success, statistics, results) per suite that ran: one `validations` row
        each (Store.save_validation)."""
        return [(suite, bool(stats["success"]), stats,
                 [r for r in self.results if r["suite"] == suite])
                for suite, stats in self.statistics.get("suites", {}).items()]

    def summary_markdown(self) -> str:
        """A few lines for the run's markdown artifact: verdict, why, warnings, Data Docs."""
        lines = [f"**Quality**: {'passed' if self.success else 'refused'}; "
                 f"{self.statistics.get('kept', 0)} of {self.statistics.get('rows', 0)} rows "
                 "kept by the row suites."]
        if self.reason:
            lines.append(f"Refused: {self.reason}")
        if self.warnings:
            lines.append("Warnings: " + "; ".join(self.warnings))
        if self.docs_index:
            lines.append(f"Data Docs: `{self.docs_index}`")
        return "\n\n".join(lines)


def _name(config: Any) -> str:
    column = config.kwargs.get("column")
    return f"{config.type}({column})" if column else config.type


def _severity(config: Any) -> str:
    """critical | warning | info (GE keeps a FailureSeverity enum; older suites have none)."""
    return str(getattr(config, "severity", None) or "critical").split(".")[-1].lower()


def _observed(result: dict[str, Any]) -> Any:
    value = result.get("observed_value")
    if isinstance(value, dict | list):
        return value
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return str(value)


def _results(suite: str, validation: Any, *, blocking: bool) -> list[dict[str, Any]]:
    """Rows for `ValidationOutcome.results`; `blocking` says whether a critical failure of
    this suite refuses the batch (the row-level suites reject rows instead)."""
    out = []
    for res in validation.results:
        config = res.expectation_config
        severity = _severity(config)
        entry: dict[str, Any] = {"suite": suite, "expectation": _name(config),
                                 "success": bool(res.success), "severity": severity,
                                 "blocking": blocking and severity == "critical"}
        if "unexpected_count" in res.result:
            entry["unexpected_count"] = int(res.result.get("unexpected_count") or 0)
        if "observed_value" in res.result:
            entry["observed"] = _observed(res.result)
        if res.exception_info and res.exception_info.get("raised_exception"):
            entry["error"] = str(res.exception_info.get("exception_message"))[:300]
        out.append(entry)
    return out


def row_failures(validation: Any, id_column: str = "question_id") -> dict[str, str]:
    """Row id -> the first critical row-level expectation it failed. A duplicated id keeps
    its first copy; the others fail `expect_column_values_to_be_unique`."""
    failed: dict[str, str] = {}
    for res in validation.results:
        config = res.expectation_config
        if _severity(config) != "critical":
            continue
        seen: set[str] = set()
        for entry in res.result.get("unexpected_index_list") or []:
            row_id = entry.get(id_column) if isinstance(entry, dict) else None
            if row_id is None:
                continue
            if config.type == "expect_column_values_to_be_unique" and row_id not in seen:
                seen.add(row_id)
                continue
            failed.setdefault(row_id, _name(config))
    return failed


def _run(ctx: Any, checkpoint: str, frame: pd.DataFrame, params: dict[str, Any],
         run_name: str, run_time: dt.datetime) -> dict[str, Any]:
    """Run one checkpoint; suite name -> (result key in the store, validation result)."""
    from great_expectations.core.run_identifier import RunIdentifier

    result = ctx.checkpoints.get(checkpoint).run(
        batch_parameters={"dataframe": frame}, expectation_parameters=params,
        run_id=RunIdentifier(run_name=run_name, run_time=run_time))
    return {key.expectation_suite_identifier.name: (key, res)
            for key, res in result.run_results.items()}


def _suite_stats(validation: Any) -> dict[str, Any]:
    return {"success": bool(validation.success), **dict(validation.statistics)}


def _page(ctx: Any, key: Any) -> str | None:
    urls = ctx.get_docs_sites_urls(resource_identifier=key)
    return urls[0].get("site_url") if urls else None


def validate_candidates(rows: pd.DataFrame, *, max_rejected_fraction: float = 0.2,
                        min_rows: int = 1, max_duplicate_fraction: float = 0.05,
                        reference: pd.DataFrame | ReferenceStats | None = None,
                        drift_blocking: bool = False, run_id: str | None = None,
                        docs_dir: str | os.PathLike[str] | None = None) -> ValidationOutcome:
    """Validate one candidate example per question.

    `rows`: columns question_id, question, context, program, answer (the predicted value as a
    string), source, kind, difficulty, exec_status (missing ones count as null).
    `reference`: the current snapshot's curated rows (same columns, or the `curated` view's),
    or their `ReferenceStats`; None on a first run, which skips the drift suite.
    `docs_dir`: where the Data Docs site goes (`quality.context.docs_dir_for(warehouse)`);
    GE's validation results go to the `gx-results/` folder beside it. None: a temporary
    folder (tests, ad-hoc calls).

    The same as `check_rows` then `check_batch` over its compact frame, in one call."""
    df = measured(rows).reset_index(drop=True)
    with _site(docs_dir, run_id) as (ctx, run_name, run_time):
        part = _validate_rows(ctx, df, run_name, run_time)
        df["row_rejected"] = df["question_id"].isin(part.failed).astype(float)
        outcome = _validate_batch(ctx, df, part, run_name, run_time, reference=reference,
                                  drift_blocking=drift_blocking,
                                  params=_batch_params(min_rows, max_rejected_fraction,
                                                       max_duplicate_fraction))
    return _located(outcome, docs_dir)


@dataclass
class RowOutcome:
    """What the row-level suites decided on one part of a batch (a shard)."""

    failed: dict[str, tuple[str, str]]  # question_id -> (suite, expectation) it failed first
    results: list[dict[str, Any]]       # one entry per expectation (ValidationOutcome)
    statistics: dict[str, Any]          # {"suites": {suite: stats}}
    pages: dict[str, str] = field(default_factory=dict)

    def rejections(self) -> list[Rejection]:
        return [Rejection(item_id=qid, stage="quality", reason=name,
                          detail=f"row failed the {suite} suite")
                for qid, (suite, name) in sorted(self.failed.items())]


def check_rows(rows: pd.DataFrame, *, run_id: str | None = None,
               docs_dir: str | os.PathLike[str] | None = None) -> tuple[RowOutcome,
                                                                        pd.DataFrame]:
    """The row-level suites over one part of a batch (row-local, and all copies of a
    question_id are in one part): what failed, and the part's compact frame for
    `check_batch` (the columns the batch and drift suites read, `row_rejected` set)."""
    df = measured(rows).reset_index(drop=True)
    with _site(docs_dir, run_id) as (ctx, run_name, run_time):
        part = _validate_rows(ctx, df, run_name, run_time)
    df["row_rejected"] = df["question_id"].isin(part.failed).astype(float)
    return part, df[list(COMPACT_COLUMNS)]


def check_batch(compact: pd.DataFrame, rows: Sequence[RowOutcome], *,
                max_rejected_fraction: float = 0.2, min_rows: int = 1,
                max_duplicate_fraction: float = 0.05,
                reference: pd.DataFrame | ReferenceStats | None = None,
                drift_blocking: bool = False, run_id: str | None = None,
                docs_dir: str | os.PathLike[str] | None = None) -> ValidationOutcome:
    """The batch-level and drift suites over the compact frames of every part (concatenated
    in `compact`), given the parts' row outcomes: one outcome for the whole batch, its row
    suites' results merged over the parts (`merge_rows`)."""
    merged = merge_rows(rows)
    df = measured(compact).reset_index(drop=True)
    with _site(docs_dir, run_id) as (ctx, run_name, run_time):
        outcome = _validate_batch(ctx, df, merged, run_name, run_time, reference=reference,
                                  drift_blocking=drift_blocking,
                                  params=_batch_params(min_rows, max_rejected_fraction,
                                                       max_duplicate_fraction))
    return _located(outcome, docs_dir)


def merge_rows(parts: Sequence[RowOutcome]) -> RowOutcome:
    """The row suites' outcome over all parts, as one run over the whole batch reports it:
    the row expectations are row-local, so an expectation succeeds when it succeeds on
    every part and its unexpected rows are the sum of the parts'. Statistics are GE's
    (`success_percent` = successful / evaluated * 100)."""
    if len(parts) == 1:
        return parts[0]
    out = RowOutcome({}, [], {"suites": {}})
    results: dict[tuple[str, int], dict[str, Any]] = {}
    for part in parts:
        out.failed.update(part.failed)
        out.pages.update(part.pages)
        seen: dict[str, int] = {}
        for r in part.results:
            key = (r["suite"], seen.setdefault(r["suite"], 0))
            seen[r["suite"]] += 1
            if key not in results:
                results[key] = dict(r)
                continue
            merged = results[key]
            merged["success"] = merged["success"] and r["success"]
            if "unexpected_count" in r:
                merged["unexpected_count"] = merged.get("unexpected_count", 0) + \
                    r["unexpected_count"]
            if "error" in r and "error" not in merged:
                merged["error"] = r["error"]
    out.results = list(results.values())
    for suite in dict.fromkeys(r["suite"] for r in out.results):
        entries = [r for r in out.results if r["suite"] == suite]
        good = sum(1 for r in entries if r["success"])
        out.statistics["suites"][suite] = {
            "success": good == len(entries), "evaluated_expectations": len(entries),
            "successful_expectations": good, "unsuccessful_expectations": len(entries) - good,
            "success_percent": good / len(entries) * 100 if entries else None}
    return out


# The columns of a compact candidate frame: what the batch and drift suites read, and the
# sample to publish.
COMPACT_COLUMNS = ("question_id", "sample_id", "row_rejected", "kind", "source", "difficulty",
                   "program_chars", "answer_magnitude")


def _batch_params(min_rows: int, max_rejected_fraction: float,
                  max_duplicate_fraction: float) -> dict[str, Any]:
    return {"min_rows": min_rows, "max_rejected_fraction": max_rejected_fraction,
            "min_unique_question_share": 1.0 - max_duplicate_fraction}


@contextmanager
def _site(docs_dir: str | os.PathLike[str] | None, run_id: str | None
          ) -> Iterator[tuple[Any, str, dt.datetime]]:
    """The GE context (lock held) over this docs folder, or a temporary one."""
    import tempfile

    tmp = None if docs_dir is not None else tempfile.TemporaryDirectory(prefix="gx-docs-")
    docs = Path(docs_dir if docs_dir is not None else Path(tmp.name) / "docs")
    try:
        with gx_lock:
            yield (quality_context(docs, data_docs=data_docs_enabled()), run_id or "adhoc",
                   dt.datetime.now(dt.UTC))
    finally:
        if tmp is not None:
            tmp.cleanup()


def _located(outcome: ValidationOutcome, docs_dir: str | os.PathLike[str] | None
             ) -> ValidationOutcome:
    if docs_dir is not None and data_docs_enabled():
        outcome.docs_index = Path(docs_dir).expanduser().resolve() / "index.html"
    else:  # no site was written, or it is gone with its temporary folder: point at nothing
        outcome.docs_pages = {}
    return outcome


def _validate_rows(ctx: Any, df: pd.DataFrame, run_name: str, run_time: dt.datetime
                   ) -> RowOutcome:
    runs = _run(ctx, ROW_CHECKPOINT, df, {}, run_name, run_time)
    out = RowOutcome({}, [], {"suites": {}})
    for suite, (key, res) in runs.items():
        for qid, reason in row_failures(res).items():
            out.failed.setdefault(qid, (suite, reason))
        out.results += _results(suite, res, blocking=False)
        out.statistics["suites"][suite] = _suite_stats(res)
        if page := _page(ctx, key):
            out.pages[suite] = page
    return out


def _validate_batch(ctx: Any, df: pd.DataFrame, rows: RowOutcome, run_name: str,
                    run_time: dt.datetime, *, reference: pd.DataFrame | ReferenceStats | None,
                    drift_blocking: bool, params: dict[str, Any]) -> ValidationOutcome:
    failed = rows.failed
    results = list(rows.results)
    statistics: dict[str, Any] = {"suites": dict(rows.statistics["suites"])}
    runs = _run(ctx, BATCH_CHECKPOINT, df, params, run_name, run_time)
    _, batch = runs[CURATED_SUITE]
    results += _results(CURATED_SUITE, batch, blocking=True)
    statistics["suites"][CURATED_SUITE] = _suite_stats(batch)

    kept_ids = [q for q in dict.fromkeys(df["question_id"]) if q not in failed]
    kept = df[df["question_id"].isin(set(kept_ids))].drop_duplicates("question_id")
    drift: list[dict[str, Any]] = []
    ref_rows = (reference.rows if isinstance(reference, ReferenceStats)
                else len(reference) if reference is not None else 0)
    if ref_rows and len(kept):
        suite = ctx.suites.get(DRIFT_SUITE)
        runs.update(_run(ctx, DRIFT_CHECKPOINT, drift_frame(kept),
                         drift_parameters(suite, reference), run_name, run_time))
        _, drift_res = runs[DRIFT_SUITE]
        # The drift suite's expectations are warnings; drift_blocking makes them refusals.
        drift = [dict(r, blocking=drift_blocking or r["blocking"])
                 for r in _results(DRIFT_SUITE, drift_res, blocking=True)]
        results += drift
        statistics["suites"][DRIFT_SUITE] = _suite_stats(drift_res)

    blocking = [f"{r['suite']}: {r['expectation']}" for r in results
                if not r["success"] and r["blocking"]]
    # Row-level failures are rejections, not warnings.
    warnings = [f"{r['suite']}: {r['expectation']}" for r in results
                if not r["success"] and not r["blocking"] and r["suite"] not in ROW_SUITES]
    total = len(df)
    statistics.update(rows=total, kept=len(kept_ids), rejected=total - len(kept_ids),
                      run_name=run_name)
    reason = None
    if blocking:
        reason = (f"batch refused by {len(blocking)} blocking expectation"
                  f"{'s' if len(blocking) > 1 else ''}: " + "; ".join(blocking))
        if any(_REJECTED_SHARE in b for b in blocking) and failed:
            # The share alone sends the user hunting: name the row check behind it.
            (suite, name), count = Counter(failed.values()).most_common(1)[0]
            reason += (f" (most rows rejected by {suite}: {name}, {count} of {total} rows)")
    return ValidationOutcome(
        kept_ids=kept_ids, rejections=rows.rejections(), success=not blocking,
        statistics=statistics, results=results, blocking_failures=blocking,
        warnings=warnings, drift=drift, reason=reason,
        docs_pages={**rows.pages, **{suite: page for suite, (key, _) in runs.items()
                                     if (page := _page(ctx, key))}})
