"""The `distillery` app and what its commands share: the warehouse option, one-line
errors, quiet Prefect, plain tables. Commands live in the modules beside this one and
register on `app`; flows/cli/main.py imports them all."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

# Before Prefect is imported by any command module: ephemeral mode is enough for the CLI;
# keep Prefect's own chatter off the terminal.
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Prefect's 20 s for the ephemeral server to come up is too short on a busy 2-core machine
# (a fine-tune running beside the CLI): the command then died before doing anything.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Build verified SFT data for small reasoning models.")

Warehouse = Annotated[
    Path | None,
    typer.Option("--warehouse", "-w", envvar="DISTILLERY_WAREHOUSE",
                 help="DuckDB file (default data/warehouse.duckdb)"),
]


def fail(message: str, code: int = 2) -> None:
    """One red line on stderr and exit `code` (2: bad input, 3: refused)."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def run_flow(flow_fn: Any, config: Any) -> Any:
    """Run a flow for a command: Prefect kept quiet, a bad input one line (exit 2)."""
    from tasks.errors import InputError

    quiet_prefect()
    try:
        return flow_fn(config)
    except InputError as exc:
        fail(str(exc))


def quiet_prefect() -> None:
    import logging

    logging.getLogger("great_expectations").setLevel(logging.WARNING)


def table(columns: list[str], rows: list[tuple], max_rows: int, width: int = 60) -> str:
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
