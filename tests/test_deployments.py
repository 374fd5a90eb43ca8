"""Deployments as a user meets them: a real `prefect server start` on a loopback port, a real
`distillery serve` against it, runs triggered through the API."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect_live import free_port

from deployments.serve import NIGHTLY, build_deployments
from warehouse import Store

REPO = Path(__file__).resolve().parents[1]
# A finetune small enough for a test: a handful of steps, a few eval questions.
TINY_FINETUNE = {"data": {"subset_size": 40},
                 "training": {"max_steps": 3, "batch_size": 2},
                 "evaluation": {"eval_n": 4, "max_new_tokens": 32}}


def test_served_deployments_have_schedule_and_forms(live_prefect):
    refresh = live_prefect.deployment("refresh/nightly-refresh")
    assert [(s.schedule.cron, s.active) for s in refresh.schedules] == [(NIGHTLY, True)]
    defs = refresh.parameter_openapi_schema["definitions"]
    # One part per stage, each rendered as a nested form with its own fields.
    assert {"source", "dedup", "near_dup", "decontamination", "teacher", "execution", "quality",
            "runner", "warehouse"} == set(defs["RefreshConfig"]["properties"])
    assert {"source", "n", "seed"} <= set(defs["SourceConfig"]["properties"])
    assert {"task_runner", "dask_address"} <= set(defs["RunnerConfig"]["properties"])
    assert "top_p" in defs["LLMTeacherConfig"]["properties"]  # settable from a run now
    # Defaults prefill the run form: empty n = the whole file, or 1000 procedural items.
    assert refresh.parameters["config"]["source"]["n"] is None
    assert refresh.parameters["config"]["dedup"]["semantic_threshold"] == 0.95

    ft = live_prefect.deployment("finetune/finetune")
    assert ft.schedules == []
    assert ft.enforce_parameter_schema
    schema = ft.parameter_openapi_schema
    assert schema["required"] == ["config"]
    defs = schema["definitions"]
    # In parts, as the refresh's form: data, training, evaluation, output, warehouse.
    assert list(defs["FinetuneConfig"]["properties"]) == ["data", "training", "evaluation",
                                                          "output", "warehouse"]
    assert {"subset_size", "strategy", "mix"} <= set(defs["SubsetData"]["properties"])
    assert {"base_model", "lora", "epochs", "max_steps"} <= set(defs["SFTParams"]["properties"])
    assert "eval_set" in defs["EvalSpec"]["properties"]
    assert defs["SubsetData"]["properties"]["strategy"]["enum"] == [
        "random", "stratified", "diversity", "difficulty"]
    assert defs["SFTParams"]["properties"]["lora"]["type"] == "boolean"
    ladder = live_prefect.deployment("ladder/ladder").parameter_openapi_schema["definitions"]
    assert {"sizes", "repeats", "mix"} <= set(ladder["LadderData"]["properties"])
    dpo = live_prefect.deployment("dpo/dpo").parameter_openapi_schema["definitions"]
    assert {"beta", "lora"} <= set(dpo["DPOParams"]["properties"])
    evaluate = live_prefect.deployment("evaluate/evaluate")
    assert "model" in evaluate.parameter_openapi_schema["definitions"]["EvaluateConfig"][
        "properties"]


def test_server_refuses_parameters_outside_the_schema(live_prefect):
    from prefect.exceptions import PrefectHTTPStatusError

    ft = live_prefect.deployment("finetune/finetune")
    with live_prefect.settings(), live_prefect.client() as c, \
            pytest.raises(PrefectHTTPStatusError, match="409|422"):
        c.create_flow_run_from_deployment(ft.id, parameters={
            "config": {**TINY_FINETUNE, "data": {"subset_size": 40,
                                                 "strategy": "alphabetical"}}})


@pytest.mark.slow
def test_finetune_triggered_through_the_api(live_prefect):
    live_prefect.seed_snapshot()
    store = Store(live_prefect.warehouse)
    before = store.query("SELECT count(*) FROM finetune_runs")[1][0][0]
    run = live_prefect.run_deployment("finetune/finetune", {"config": TINY_FINETUNE},
                                      run_name="api-finetune")
    assert run.state.is_completed(), f"{run.state}\n{live_prefect.logs()}"
    _, rows = store.query(
        "SELECT status, params, metrics, output_dir FROM finetune_runs "
        "ORDER BY started_at DESC")
    assert len(rows) == before + 1
    status, params, metrics, output_dir = rows[0]
    assert status == "completed"
    assert json.loads(params)["max_steps"] == 3
    metrics = json.loads(metrics)
    assert metrics["steps"] == 3 and metrics["n_examples"] == 40
    # Relative output_root resolves in the serve process's directory, not the repo.
    assert Path(output_dir).is_relative_to(live_prefect.workdir)


@pytest.mark.slow
def test_refresh_run_publishes_progress_and_summary_artifacts(live_prefect):
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
    )

    run = live_prefect.seed_snapshot()
    assert run.name == "refresh-procedural-n80"  # readable in the UI, not a random name
    with live_prefect.settings(), live_prefect.client() as c:
        artifacts = c.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
        task_names = {t.name.rsplit("-", 1)[0] for t in c.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))}
    by_key = {a.key: a for a in artifacts}
    assert by_key["refresh-embed"].type == "progress" and by_key["refresh-embed"].data == 100
    assert by_key["refresh-execute"].data == 100
    assert by_key["refresh-summary"].type == "markdown"
    assert "| kept |" in by_key["refresh-summary"].data
    assert by_key["refresh-rejections"].type == "table"
    # One task per stage, named as the stage (and its rejections.stage).
    assert {"load-questions", "embed", "dedup", "decontaminate", "teacher", "execute",
            "check", "quality"} <= task_names


def test_prefect_yaml_matches_serve():
    """prefect.yaml describes the same deployments as `distillery serve`; its entrypoints load
    and its parameters validate. (`prefect deploy` of this file is checked by hand: see the
    README; deploying it here would replace the served deployments of the live server.)"""
    from prefect.flows import load_flow_from_entrypoint

    spec = yaml.safe_load((REPO / "deployments" / "prefect.yaml").read_text())
    served = {(d.flow_name, d.name): d for d in build_deployments()}
    declared = {}
    for d in spec["deployments"]:
        flow = load_flow_from_entrypoint(str(REPO / d["entrypoint"]))
        declared[(flow.name, d["name"])] = d
        flow.validate_parameters(d.get("parameters") or {})
        assert d["work_pool"]["name"] == "distillery-process"
    assert set(declared) == set(served)
    yaml_cron = [s["cron"] for s in declared[("refresh", "nightly-refresh")]["schedules"]]
    served_cron = [s.schedule.cron for s in served[("refresh", "nightly-refresh")].schedules]
    assert yaml_cron == served_cron == [NIGHTLY]


def _wait_until_polling(api_url: str, deadline: float) -> None:
    """The serve process prints its banner before it registers and polls; a Ctrl-C before
    that has no schedule to pause yet. Ready means it has polled for runs."""
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as c:
        while time.monotonic() < deadline:
            try:
                if c.read_deployment_by_name("refresh/nightly-refresh").status == "READY":
                    return
            except ObjectNotFound:
                pass
            time.sleep(0.3)
    raise AssertionError("the serve process never polled the server")


@pytest.mark.slow
def test_serve_script_stops_server_and_serve_on_ctrl_c(tmp_path):
    """`make serve` runs deployments/serve_local.sh: Ctrl-C pauses the schedule and stops
    the serve process, then the server."""
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "home"), "PREFECT_PORT": str(port),
           "HF_HUB_OFFLINE": "1", "PREFECT_LOGGING_LEVEL": "INFO"}
    env.pop("PREFECT_API_URL", None)
    log = tmp_path / "serve.log"

    def as_from_a_terminal() -> None:  # a terminal delivers SIGINT; pytest may ignore it
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.setsid()

    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(REPO / "deployments" / "serve_local.sh"), "--warehouse",
             str(tmp_path / "wh.duckdb")], env=env, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=as_from_a_terminal)
    try:
        deadline = time.monotonic() + 120
        while "being served" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        assert f"http://127.0.0.1:{port}" in log.read_text()
        _wait_until_polling(f"http://127.0.0.1:{port}/api", deadline)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert "All deployments have been paused" in text, text[-3000:]
    assert "stopped the Prefect server and the serve process" in text
    with socket.socket() as s:  # the server is gone too: nothing listens on its port
        assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still served"
