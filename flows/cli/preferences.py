"""`distillery preferences`: distinct-solution sets, preference pairs and verifier labels
from the samples of a warehouse (flows/preferences.py), and their exports."""

from __future__ import annotations

import typer

from flows.cli.app import app, run_flow
from flows.cli.options import options_from
from flows.preferences import DPOFlowConfig, DPORun, PreferencesConfig
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


@app.command()
@options_from(DPOFlowConfig, extra_flags={"warehouse": ["-w"]},
              envvars={"warehouse": "DISTILLERY_WAREHOUSE"})
def dpo(config: DPOFlowConfig) -> None:
    """DPO (TRL DPOTrainer) on exported preference pairs, from an SFT model or the tiny one."""
    from flows.preferences import dpo_flow

    out = run_flow(dpo_flow, config)
    echo_dpo(out)
    typer.echo(f"  model: {out.output_dir}")


def echo_dpo(out: DPORun) -> None:
    r = out.result
    typer.echo(f"run {out.run_id}: {out.n_pairs} pairs, {r['steps']} steps, loss "
               f"{r['first_loss']:.3f} -> {r['final_loss']:.3f}, reward accuracy "
               f"{r['reward_accuracy']:.2f}, margin {r['reward_margin']:.3f}")
