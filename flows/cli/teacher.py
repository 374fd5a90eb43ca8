"""CLI commands of the teacher flows; they register on the shared typer app."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.app import Warehouse, app, table

runs_app = typer.Typer(no_args_is_help=True, help="What runs did and what they cost.")
app.add_typer(runs_app, name="runs")


@runs_app.command("cost")
def runs_cost(
    run_id: Annotated[str | None, typer.Option("--run", help="one run only")] = None,
    warehouse: Warehouse = None,
) -> None:
    """Requests, tokens and dollars per run and model (what each run paid: cache hits are
    free and are not counted)."""
    from warehouse.llm import LLMStore

    columns, rows = LLMStore(warehouse).cost_by_run(run_id)
    if not rows:
        typer.echo("no LLM requests recorded")
        return
    typer.echo(table(columns, rows, max_rows=200, width=36))
    total = sum(r[columns.index("cost_usd")] or 0 for r in rows)
    tokens = sum((r[columns.index("tokens_in")] or 0) + (r[columns.index("tokens_out")] or 0)
                 for r in rows)
    typer.echo(f"total: {tokens} tokens, ${total:.4f}")
