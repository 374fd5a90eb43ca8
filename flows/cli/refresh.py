"""`distillery refresh`, `sql`, `status`: the refresh flow and browsing the warehouse."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.app import Warehouse, app, fail, quiet_prefect, table
from flows.cli.options import options_from
from flows.refresh import RefreshConfig
from tasks.errors import InputError


def _check_inputs(config: RefreshConfig) -> None:
    """Validate the input before the flow starts, so a bad file is one clear line and
    nothing reaches the warehouse (synthesis needs the teacher: checked in the flow)."""
    from tasks.sources import load_questions, parse_spec

    src = config.source
    if not src.synthesized:
        # The generator reads no input: its first item checks the spec, and a million are
        # not drawn twice.
        procedural = parse_spec(src.source)[0] == "procedural"
        load_questions(src.source, n=1 if procedural else src.n, seed=src.seed)
    for spec in config.decontamination.decontaminate:
        load_questions(spec)


@app.command()
@options_from(RefreshConfig, fixed={"progress": True}, extra_flags={"warehouse": ["-w"]},
              envvars={"warehouse": "DISTILLERY_WAREHOUSE"})
def refresh(config: RefreshConfig) -> None:
    """Load questions, dedup, solve, verify, validate and publish a snapshot. Every option
    is a field of the refresh parameters (RefreshConfig), with the same name."""
    quiet_prefect()
    try:
        _check_inputs(config)
    except InputError as exc:
        fail(str(exc))

    from flows.refresh import refresh as refresh_flow
    from warehouse.refresh_lock import RefreshAlreadyRunning, ensure_no_refresh

    try:
        # Checked here too so that the refusal is one line, not a flow traceback; the flow
        # takes the lock itself and still refuses if another refresh got in between.
        ensure_no_refresh(config.warehouse)
    except RefreshAlreadyRunning as exc:
        fail(str(exc), code=3)
    summary = refresh_flow(config)
    c = summary.counts
    typer.echo(f"run {summary.run_id}: {summary.status}")
    typer.echo("  " + ", ".join(f"{k}={v}" for k, v in c.items()))
    if summary.failure:
        typer.echo(f"  failed: {summary.failure}")
    if summary.quality.reason:
        typer.echo(f"  refused: {summary.quality.reason}")
    for r in summary.rejection_reasons[:8]:
        typer.echo(f"  rejected at {r['stage']}: {r['reason']} x{r['count']}")
    typer.echo(f"  snapshot: {summary.snapshot_id or 'unchanged'}  "
               f"warehouse: {summary.warehouse}")
    typer.echo(_browse_hint(summary.warehouse))
    if summary.status != "completed":
        raise typer.Exit(1)


def _browse_hint(path: str) -> str:
    rel = os.path.relpath(path) if Path(path).is_relative_to(Path.cwd()) else path
    return (
        "\nBrowse it:\n"
        f"  distillery sql \"select source, kind, count(*) from curated group by all\""
        f" --warehouse {rel}\n"
        f"  distillery sql \"select stage, reason, count(*) from rejections group by all\""
        f" --warehouse {rel}\n"
        f"  .venv/bin/duckdb {rel}      # DuckDB CLI; views: curated, duplicates, run_summary"
    )


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="SQL over the warehouse tables and views")],
    fmt: Annotated[str, typer.Option("--format", help="table | csv | json")] = "table",
    max_rows: Annotated[int, typer.Option(help="rows shown in table format")] = 50,
    warehouse: Warehouse = None,
) -> None:
    """Run SQL against the warehouse and print the result."""
    import duckdb

    from warehouse import Store
    from warehouse.connection import WarehouseBusy

    store = Store(warehouse)
    try:
        columns, rows = store.query(query)
    except (duckdb.Error, WarehouseBusy) as exc:
        fail(str(exc).splitlines()[0])
    if fmt == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(columns)
        w.writerows(rows)
    elif fmt == "json":
        for row in rows:
            typer.echo(json.dumps(dict(zip(columns, row, strict=True)), default=str))
    elif fmt == "table":
        typer.echo(table(columns, rows, max_rows))
    else:
        fail(f"--format {fmt!r}: one of table, csv, json")




@app.command()
def status(warehouse: Warehouse = None) -> None:
    """Table sizes, the latest snapshot and recent runs."""
    from warehouse import Store

    store = Store(warehouse)
    typer.echo(f"warehouse: {store.path}")
    for name, count in store.counts().items():
        typer.echo(f"  {name:<12} {count}")
    columns, rows = store.recent_runs(5)
    if rows:
        typer.echo("\nrecent runs:")
        typer.echo(table(columns, rows, 5, width=36))
    from quality.context import docs_dir_for

    index = docs_dir_for(store.path) / "index.html"
    typer.echo(f"\nData Docs: {index if index.is_file() else 'none yet (written by a refresh)'}")


