"""CLI commands of the serve flows; they register on the shared typer app."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.app import Warehouse, app, fail


@app.command()
def serve(
    cron: Annotated[str, typer.Option(help="schedule of the refresh deployment (cron, "
                                      "default nightly at 02:00)")] = "0 2 * * *",
    timezone: Annotated[str | None, typer.Option(help="IANA timezone of --cron "
                                                 "(default UTC)")] = None,
    limit: Annotated[int | None, typer.Option(help="flow runs executed at once")] = None,
    warehouse: Warehouse = None,
) -> None:
    """Serve refresh (scheduled), finetune, dpo, ladder and evaluate to a Prefect server
    ($PREFECT_API_URL; `make serve` starts one) until Ctrl-C."""
    import os

    # Not quiet_prefect(): a server process should show the runs it picks up.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    try:
        CronSchedule(cron=cron, timezone=timezone)
    except ValueError as exc:
        msg = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        fail(f"--cron/--timezone: {msg.removeprefix('Value error, ')} "
              "(e.g. --cron '0 2 * * *' --timezone Europe/Berlin)")
    from deployments.serve import serve as serve_deployments

    serve_deployments(cron=cron, timezone=timezone, warehouse=warehouse, limit=limit)
