"""The Prefect UI in a real headless Chromium: find the finetune deployment, start a custom run
with changed parameters through the form, watch it complete, keep a screenshot.

Needs Debian's `chromium` (CI installs it in .ci/run) and Playwright for Python (dev extras);
Playwright drives the system browser, nothing is downloaded."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from browser import SHOTS, browser_page

from warehouse import Store

pytestmark = pytest.mark.slow  # Chromium, and a finetune run through the served deployment


def _field(page, label: str):  # noqa: ANN001, ANN202 - playwright Page -> Locator
    # The form's inputs carry no accessible name: take the first input after the label.
    return page.locator(f"xpath=(//*[normalize-space(text())='{label} (Optional)'])[1]"
                        "/following::input[1]")


def _run_id_by_name(live, name: str, timeout_s: float = 30) -> str:  # noqa: ANN001
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    deadline = time.monotonic() + timeout_s
    with live.settings(), live.client() as c:
        while time.monotonic() < deadline:
            runs = c.read_flow_runs(flow_run_filter=FlowRunFilter(
                name=FlowRunFilterName(any_=[name])))
            if runs:
                return str(runs[0].id)
            time.sleep(0.3)
    raise AssertionError(f"the form created no run named {name}")


def test_custom_finetune_run_from_the_ui(live_prefect):
    live_prefect.seed_snapshot()
    run_name = f"ui-finetune-{uuid.uuid4().hex[:6]}"
    shot = SHOTS / "ui-finetune-run.png"
    with browser_page(shot) as page:
        page.goto(f"{live_prefect.url}/deployments")
        page.get_by_role("link", name="finetune", exact=True).first.click()
        page.get_by_role("button", name="Run", exact=True).click()
        page.get_by_text("Custom run").click()
        page.get_by_text("Max Steps (Optional)").first.wait_for()

        page.get_by_role("textbox").first.fill(run_name)  # Run Name
        # Plain-typed fields (0 = not set): a value is typed at once, no type
        # chooser to click first.
        for label, value in [("Max Steps", "3"), ("Batch Size", "2"), ("Subset Size", "40"),
                             ("Eval N", "4"), ("Max New Tokens", "32")]:
            _field(page, label).fill(value)
        page.get_by_role("button", name="Submit").click()
        # The UI goes back to the deployment page with a toast; its list shows the
        # new run only once it leaves Scheduled. Look the run up by its name instead.
        page.wait_for_url("**/deployments/deployment/*")
        run_id = _run_id_by_name(live_prefect, run_name)
        run_page = f"{live_prefect.url}/runs/flow-run/{run_id}"
        page.goto(run_page)
        page.get_by_text(run_name).first.wait_for()
        # The open run page polls and redraws all along: leave it while the finetune
        # runs (two cores), and come back to what the API says once it is over.
        page.goto("about:blank")
        run = live_prefect.wait_for_run(run_id, timeout_s=240)
        page.goto(run_page)
        page.get_by_text("Completed", exact=True).first.wait_for()
        # Show what the form sent, for whoever looks at the screenshot.
        page.get_by_text("Parameters", exact=True).last.click()
        page.get_by_text('"max_steps": 3').first.wait_for()

    assert run.name == run_name
    assert run.state.is_completed(), f"{run.state}\n{live_prefect.logs()}"
    config = run.parameters["config"]
    assert (config["training"]["max_steps"], config["training"]["batch_size"],
            config["data"]["subset_size"], config["evaluation"]["eval_n"]) == (3, 2, 40, 4)
    # Untouched fields keep the deployment's defaults.
    assert config["training"]["base_model"] == "tiny"
    _, rows = Store(live_prefect.warehouse).query(
        "SELECT status, params, metrics FROM finetune_runs ORDER BY started_at DESC LIMIT 1")
    status, params, metrics = rows[0]
    assert status == "completed" and json.loads(params)["max_steps"] == 3
    assert json.loads(metrics)["n_examples"] == 40
    assert shot.stat().st_size > 10_000
