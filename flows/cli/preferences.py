"""`distillery preferences`: distinct-solution sets, preference pairs and verifier labels
from the samples of a warehouse (flows/preferences.py), and their exports. DPO on the stored
pairs is `distillery dpo` (flows/cli/experiments.py)."""

from __future__ import annotations

import typer

from flows.cli.app import app, run_flow
from flows.cli.options import options_from
from flows.preferences import PreferencesConfig
from warehouse.connection import resolve_path


def _check(config: PreferencesConfig) -> None:
    # Reading a warehouse that is not there would create an empty one: refuse instead.
    path = resolve_path(config.warehouse)
    if not path.exists():
        raise ValueError(f"--warehouse {path}: no such file (run `distillery refresh` first)")


@app.command()
@options_from(PreferencesConfig, extra_flags={"warehouse": ["-w"]},
              envvars={"warehouse": "DISTILLERY_WAREHOUSE"}, check=_check)
def preferences(config: PreferencesConfig) -> None:
    """Distinct-solution sets (RFT), outcome and step preference pairs, verifier labels;
    with --out, export them (TRL preference and KTO rows, SFT rows, verifier rows)."""
    from flows.preferences import preferences as preferences_flow

    out = run_flow(preferences_flow, config)
    typer.echo(f"run {out.run_id}: "
               + ", ".join(f"{k}={v}" for k, v in {**out.counts, **out.tables}.items()))
    for name, made in out.exports.items():
        typer.echo(f"  {name}: {made['n']} rows -> {made['jsonl']}")
    typer.echo("  browse: distillery sql \"select * from pair_browser limit 5\"")
