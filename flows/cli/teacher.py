"""CLI commands of the teacher flows; they register on the shared typer app."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.app import Warehouse, app, fail, table
from tasks.errors import InputError

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


teacher_app = typer.Typer(no_args_is_help=True, help="A local LLM teacher engine.")
app.add_typer(teacher_app, name="teacher")


@teacher_app.command("serve")
def teacher_serve(
    model: Annotated[str, typer.Option(help="smollm2-135m or a path to a .gguf file")
                     ] = "smollm2-135m",
    parallel: Annotated[int, typer.Option(help="sequences generated at a time (slots)")] = 4,
    port: Annotated[int, typer.Option(help="port on 127.0.0.1 (0: a free one)")] = 8080,
    ctx_per_slot: Annotated[int, typer.Option(help="context window of each slot")] = 2048,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: cores, <= 8)")
                       ] = None,
) -> None:
    """Serve a GGUF model with llama.cpp (xllamacpp) on loopback until Ctrl-C, and print the
    base URL to pass to `distillery refresh --teacher openai --base-url`."""
    import threading

    from pydantic import ValidationError

    from tasks.llm.engine import EngineConfig, LocalEngine

    try:
        engine = LocalEngine(EngineConfig(model=model, parallel=parallel, port=port,
                                          ctx_per_slot=ctx_per_slot, threads=threads))
    except ValidationError as exc:
        err = exc.errors()[0]
        fail(f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}")
        return
    except InputError as exc:
        fail(str(exc))
        return
    with engine:
        typer.echo(f"llama.cpp serving {engine.gguf.name} with {parallel} slots")
        typer.echo(f"base URL: {engine.base_url}")
        typer.echo(f"  distillery refresh --teacher openai --base-url {engine.base_url} "
                   f"--model {model if model == 'smollm2-135m' else 'local'}")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            typer.echo("stopped")
