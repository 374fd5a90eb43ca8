"""`distillery` command line. Each command is a thin shell over a flow or the warehouse."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

# Before Prefect is imported (flows.refresh): ephemeral mode is enough for the CLI; keep
# Prefect's own chatter off the terminal.
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from flows.cli_model import options_from  # noqa: E402
from flows.refresh import RefreshConfig  # noqa: E402
from tasks.errors import InputError  # noqa: E402

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Build verified SFT data for small reasoning models.")

Warehouse = Annotated[
    Path | None,
    typer.Option("--warehouse", "-w", envvar="DISTILLERY_WAREHOUSE",
                 help="DuckDB file (default data/warehouse.duckdb)"),
]


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def _quiet_prefect() -> None:
    import logging

    logging.getLogger("great_expectations").setLevel(logging.WARNING)


def _check_inputs(config: RefreshConfig) -> None:
    """Validate the input before the flow starts, so a bad file is one clear line and
    nothing reaches the warehouse (synthesis needs the teacher: checked in the flow)."""
    from tasks.sources import load_questions

    src = config.source
    if not src.synthesized:
        load_questions(src.source, n=src.n, seed=src.seed)
    for spec in config.decontamination.decontaminate:
        load_questions(spec)


@app.command()
@options_from(RefreshConfig, fixed={"progress": True}, extra_flags={"warehouse": ["-w"]},
              envvars={"warehouse": "DISTILLERY_WAREHOUSE"})
def refresh(config: RefreshConfig) -> None:
    """Load questions, dedup, solve, verify, validate and publish a snapshot. Every option
    is a field of the refresh parameters (RefreshConfig), with the same name."""
    _quiet_prefect()
    if config.runner.dask_address and config.runner.task_runner != "dask":
        config.runner.task_runner = "dask"  # an address implies Dask
    try:
        _check_inputs(config)
    except InputError as exc:
        _fail(str(exc))

    from flows.refresh import refresh as refresh_flow
    from warehouse.refresh_lock import RefreshAlreadyRunning, ensure_no_refresh

    try:
        # Checked here too so that the refusal is one line, not a flow traceback; the flow
        # takes the lock itself and still refuses if another refresh got in between.
        ensure_no_refresh(config.warehouse)
    except RefreshAlreadyRunning as exc:
        _fail(str(exc), code=3)
    summary = refresh_flow(config)
    c = summary["counts"]
    typer.echo(f"run {summary['run_id']}: {summary['status']}")
    typer.echo("  " + ", ".join(f"{k}={v}" for k, v in c.items()))
    if summary.refused:
        typer.echo(f"  refused: {summary.refused}")
    for r in summary["rejection_reasons"][:8]:
        typer.echo(f"  rejected at {r['stage']}: {r['reason']} x{r['count']}")
    typer.echo(f"  snapshot: {summary['snapshot_id'] or 'unchanged'}  "
               f"warehouse: {summary['warehouse']}")
    typer.echo(_browse_hint(summary["warehouse"]))
    if summary["status"] != "completed":
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

    store = Store(warehouse)
    try:
        columns, rows = store.query(query)
    except duckdb.Error as exc:
        _fail(str(exc).splitlines()[0])
    if fmt == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(columns)
        w.writerows(rows)
    elif fmt == "json":
        for row in rows:
            typer.echo(json.dumps(dict(zip(columns, row, strict=True)), default=str))
    elif fmt == "table":
        typer.echo(_table(columns, rows, max_rows))
    else:
        _fail(f"--format {fmt!r}: one of table, csv, json")


def _table(columns: list[str], rows: list[tuple], max_rows: int, width: int = 60) -> str:
    def cell(v: object) -> str:
        s = "" if v is None else str(v).replace("\n", " ")
        return s if len(s) <= width else s[: width - 1] + "…"

    shown = [[cell(v) for v in r] for r in rows[:max_rows]]
    widths = [max([len(c)] + [len(r[i]) for r in shown]) for i, c in enumerate(columns)]
    line = lambda vals: " | ".join(v.ljust(w) for v, w in zip(vals, widths, strict=True))  # noqa: E731
    out = [line(columns), "-+-".join("-" * w for w in widths), *[line(r) for r in shown]]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''}"
               + (f", {max_rows} shown" if len(rows) > max_rows else "") + ")")
    return "\n".join(out)


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
        typer.echo(_table(columns, rows, 5, width=36))
    from quality.context import docs_dir_for

    index = docs_dir_for(store.path) / "index.html"
    typer.echo(f"\nData Docs: {index if index.is_file() else 'none yet (written by a refresh)'}")


# Commands of the other flows live in their own modules and register on `app` on import.
from flows import cli_docs, cli_experiments, cli_serve, cli_teacher  # noqa: E402, F401


def main() -> None:  # pragma: no cover - console entry point
    try:
        app()
    except InputError as exc:
        _fail(str(exc))


if __name__ == "__main__":  # pragma: no cover
    main()
