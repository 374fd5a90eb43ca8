"""Serve Distillery's flows to a Prefect server: `refresh` on a cron schedule, `finetune`,
`dpo`, `ladder` and `evaluate` on demand (the UI renders their pydantic configs as run forms).

    distillery serve [--cron "0 2 * * *"] [--timezone Europe/Berlin] [--warehouse PATH]
    python -m deployments.serve        # the same with defaults

The serve process polls the server for scheduled and manual runs and executes each in a
subprocess of its own, so a long finetune does not block the nightly refresh. Point it at a
server with PREFECT_API_URL (`make serve` starts one on 127.0.0.1:4200).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron
from prefect.types.entrypoint import EntrypointType
from pydantic import BaseModel

from warehouse.connection import ENV_VAR, resolve_path

NIGHTLY = "0 2 * * *"
TAGS = ["distillery"]

# Deployment names as the UI lists them (flow/deployment).
REFRESH = "nightly-refresh"
FINETUNE = "finetune"
DPO = "dpo"
LADDER = "ladder"
EVALUATE = "evaluate"


def _defaults(model: BaseModel) -> dict[str, Any]:
    # Explicit defaults prefill the UI form; a None `warehouse` keeps $DISTILLERY_WAREHOUSE.
    return {"config": model.model_dump(mode="json")}


def build_deployments(cron: str = NIGHTLY,
                      timezone: str | None = None) -> list[RunnerDeployment]:
    """The deployments `distillery serve` serves. Module entrypoints, so a run starts the same
    whatever directory the serve process was started from."""
    from flows.experiments import (
        DPOConfig,
        EvaluateConfig,
        FinetuneConfig,
        LadderConfig,
        dpo_flow,
        evaluate_flow,
        finetune_flow,
        ladder_flow,
    )
    from flows.refresh import RefreshConfig, refresh

    common: dict[str, Any] = {"tags": TAGS, "entrypoint_type": EntrypointType.MODULE_PATH}
    return [
        refresh.to_deployment(
            name=REFRESH, schedules=[Cron(cron, timezone=timezone)],
            parameters=_defaults(RefreshConfig()),
            description="Bring new questions into the warehouse and publish a snapshot.",
            **common),
        finetune_flow.to_deployment(
            name=FINETUNE, parameters=_defaults(FinetuneConfig()),
            description="Fine-tune a student on a subset of the latest snapshot and "
                        "evaluate it.", **common),
        dpo_flow.to_deployment(
            name=DPO, parameters=_defaults(DPOConfig()),
            description="DPO on the stored preference pairs, from an SFT model, then "
                        "evaluate it.", **common),
        ladder_flow.to_deployment(
            name=LADDER, parameters=_defaults(LadderConfig()),
            description="One model per subset size (and strategy, arm, repeat) with the "
                        "same training settings: learning curves with 95% intervals.",
            **common),
        evaluate_flow.to_deployment(
            name=EVALUATE, parameters=_defaults(EvaluateConfig(model="data/models/<run_id>")),
            description="Evaluate a saved model on an eval set.", **common),
    ]


def serve(cron: str = NIGHTLY, timezone: str | None = None,
          warehouse: str | os.PathLike[str] | None = None, limit: int | None = None) -> None:
    """Register the deployments and execute their runs until interrupted (Ctrl-C pauses the
    schedule on the way out, so nothing piles up while nobody serves)."""
    from prefect import serve as prefect_serve

    # Flow runs are subprocesses that inherit this environment: an absolute path makes every
    # run (refresh or finetune) use the same file whatever its working directory.
    os.environ[ENV_VAR] = str(resolve_path(warehouse))
    Path(os.environ[ENV_VAR]).parent.mkdir(parents=True, exist_ok=True)
    prefect_serve(*build_deployments(cron, timezone), limit=limit)


if __name__ == "__main__":  # pragma: no cover
    serve()
