"""`distillery` command line. Each command is a thin shell over a flow or the warehouse."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from tasks.errors import InputError

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
    # Ephemeral mode is enough for the CLI; keep Prefect's own chatter off the terminal.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    import logging

    logging.getLogger("great_expectations").setLevel(logging.WARNING)


@app.command()
def refresh(
    source: Annotated[str, typer.Option(help="procedural | gsm8k:PATH | tatqa:PATH | "
                                        "jsonl:PATH | hf:NAME[:SPLIT]")] = "procedural",
    n: Annotated[int | None, typer.Option(help="items (file sources: the first n)")] = None,
    seed: Annotated[int, typer.Option(help="procedural generator seed")] = 0,
    teacher: Annotated[str, typer.Option(help="reference | openai (any OpenAI-compatible "
                                         "endpoint)")] = "reference",
    threshold: Annotated[float, typer.Option(help="semantic dedup cosine threshold")] = 0.95,
    embedding_model: Annotated[str | None, typer.Option(help="sentence-transformers id or "
                                                        "path")] = None,
    exec_timeout: Annotated[float, typer.Option(help="seconds per program")] = 2.0,
    exec_workers: Annotated[int | None, typer.Option(help="sandbox processes")] = None,
    task_runner: Annotated[str, typer.Option(help="threads | dask (embedding and execution "
                                             "batches on Dask workers)")] = "threads",
    dask_address: Annotated[str | None, typer.Option(help="existing Dask scheduler, e.g. "
                                                     "tcp://host:8786 (implies --task-runner "
                                                     "dask; default: a LocalCluster)")] = None,
    decontaminate: Annotated[list[str] | None, typer.Option(
        help="benchmark test set (source spec) to keep out of the data; repeatable, e.g. "
             "gsm8k:../shared/data/gsm8k/test.jsonl")] = None,
    warehouse: Warehouse = None,
    model: Annotated[str | None, typer.Option(help="LLM teacher model", rich_help_panel="LLM "
                                              "teacher")] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible endpoint (default "
                                                 "$OPENAI_BASE_URL)",
                                                 rich_help_panel="LLM teacher")] = None,
    api_key_env: Annotated[str | None, typer.Option(help="env var holding the API key "
                                                    "(default OPENAI_API_KEY)",
                                                    rich_help_panel="LLM teacher")] = None,
    api_key_secret: Annotated[str | None, typer.Option(help="Prefect Secret block with the "
                                                       "API key",
                                                       rich_help_panel="LLM teacher")] = None,
    samples: Annotated[int | None, typer.Option(help="samples per question",
                                                rich_help_panel="LLM teacher")] = None,
    temperature: Annotated[float | None, typer.Option(rich_help_panel="LLM teacher")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="pot | cot",
                                            rich_help_panel="LLM teacher")] = None,
    max_concurrency: Annotated[int | None, typer.Option(help="requests in flight",
                                                        rich_help_panel="LLM teacher")] = None,
    rpm: Annotated[int | None, typer.Option(help="requests/minute cap",
                                            rich_help_panel="LLM teacher")] = None,
    tpm: Annotated[int | None, typer.Option(help="tokens/minute cap",
                                            rich_help_panel="LLM teacher")] = None,
    request_timeout: Annotated[float | None, typer.Option(help="seconds per LLM request",
                                                          rich_help_panel="LLM teacher")
                               ] = None,
    max_retries: Annotated[int | None, typer.Option(rich_help_panel="LLM teacher")] = None,
    min_agreement: Annotated[float | None, typer.Option(help="majority share without gold",
                                                        rich_help_panel="LLM teacher")] = None,
    keep_per_question: Annotated[int | None, typer.Option(help="correct samples kept",
                                                          rich_help_panel="LLM teacher")
                                 ] = None,
    batch: Annotated[bool, typer.Option("--batch", help="OpenAI Batch API",
                                        rich_help_panel="LLM teacher")] = False,
    judge: Annotated[bool, typer.Option("--judge", help="solvability judge on synthesized "
                                        "questions", rich_help_panel="LLM teacher")] = False,
    seed_source: Annotated[str | None, typer.Option(help="seeds of synth:fewshot/evolve",
                                                    rich_help_panel="LLM teacher")] = None,
) -> None:
    """Load questions, dedup, solve, verify, validate and publish a snapshot."""
    _quiet_prefect()
    from pydantic import ValidationError

    from flows.refresh import RefreshConfig
    from tasks.sources import load_questions

    try:
        fields = dict(source=source, n=n, seed=seed, teacher=teacher,
                      semantic_threshold=threshold, exec_timeout_s=exec_timeout,
                      exec_workers=exec_workers,
                      task_runner="dask" if dask_address else task_runner,
                      dask_address=dask_address,
                      warehouse=str(warehouse) if warehouse else None, progress=True)
        if embedding_model:
            fields["embedding_model"] = embedding_model
        if decontaminate:
            fields["decontaminate"] = decontaminate
        llm = dict(model=model, base_url=base_url, api_key_env=api_key_env,
                   api_key_secret=api_key_secret, samples=samples, temperature=temperature,
                   format=fmt, max_concurrency=max_concurrency, rpm=rpm, tpm=tpm,
                   request_timeout_s=request_timeout, max_retries=max_retries,
                   min_agreement=min_agreement, keep_per_question=keep_per_question,
                   batch=batch or None, judge=judge or None, seed_source=seed_source)
        fields.update({k: v for k, v in llm.items() if v is not None})
        config = RefreshConfig(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        _fail(f"--{'-'.join(str(p) for p in err['loc']).replace('_', '-')}: {err['msg']}")
    try:
        # Validate the input before the flow starts, so a bad file is one clear line and
        # nothing reaches the warehouse.
        if not config.source.startswith("synth:"):  # synthesis needs the teacher: in the flow
            load_questions(config.source, n=config.n, seed=config.seed)
        for spec in config.decontaminate:
            load_questions(spec)
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


# Commands of the other flows live in their own modules and register on `app` on import.
from flows import cli_experiments, cli_serve, cli_teacher  # noqa: E402, F401


def main() -> None:  # pragma: no cover - console entry point
    try:
        app()
    except InputError as exc:
        _fail(str(exc))


if __name__ == "__main__":  # pragma: no cover
    main()
