"""CLI commands of the experiments flows; they register on the shared typer app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.app import Warehouse, app, fail, quiet_prefect, run_flow
from flows.cli.options import options_from
from tasks.errors import InputError

# ---- subset / export ------------------------------------------------------------------


def _parse_sizes(size: int | None, sizes: str | None) -> list[int]:
    out: set[int] = {size} if size is not None else set()
    for part in (sizes or "").split(","):
        if part.strip():
            try:
                out.add(int(part))
            except ValueError:
                fail(f"--sizes {sizes!r}: comma-separated integers, e.g. 250,1000")
    if not out:
        fail("give --size N or --sizes N1,N2,...")
    return sorted(out)


@app.command()
def subset(
    size: Annotated[int | None, typer.Option(help="examples in the subset")] = None,
    sizes: Annotated[str | None, typer.Option(help="nested ladder, e.g. 250,1000: each "
                                              "subset contains the smaller ones")] = None,
    strategy: Annotated[str, typer.Option(help="random | stratified | diversity | "
                                          "difficulty")] = "random",
    seed: Annotated[int, typer.Option(help="selection seed")] = 0,
    mix: Annotated[str, typer.Option(help="sources in set shares, e.g. "
                                     "procedural=0.5,tatqa=0.5 (nested across sizes)")] = "",
    snapshot: Annotated[int | None, typer.Option(help="snapshot id (default: latest)")] = None,
    embedding_model: Annotated[str | None, typer.Option(help="diversity: embedding model "
                                                        "id or path")] = None,
    warehouse: Warehouse = None,
) -> None:
    """Draw a deterministic subset (or nested ladder) of a snapshot and store it."""
    quiet_prefect()
    from pydantic import ValidationError

    from flows.subsets import SubsetConfig, subset_flow
    from tasks.experiments.subsets import parse_mix, subset_params
    from warehouse import Store

    all_sizes = _parse_sizes(size, sizes)
    try:
        fields = dict(sizes=all_sizes, strategy=strategy, seed=seed, snapshot_id=snapshot,
                      mix=mix, warehouse=str(warehouse) if warehouse else "")
        if embedding_model:
            fields["embedding_model"] = embedding_model
        config = SubsetConfig(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        fail(f"--{'-'.join(str(p) for p in err['loc'][:1])}: {err['msg']}")
    try:
        # Check before the flow starts so a wrong snapshot or size is one line, not a
        # failed flow run with a traceback.
        subset_params(config.strategy, embedding_model=config.embedding_model,
                      mix=parse_mix(config.mix))
        snap = Store(config.warehouse).subsets.resolve_snapshot_id(config.snapshot_id)
        n = Store(config.warehouse).subsets.snapshot_size(snap)
        if all_sizes[-1] > n:
            raise InputError(f"subset size {all_sizes[-1]} > {n} examples in snapshot {snap}")
        # (a mix's own pool is checked when it is drawn: its sources' counts)
    except InputError as exc:
        fail(str(exc))
    result = subset_flow(config)
    typer.echo(f"snapshot {result.snapshot_id} ({result.snapshot_size} examples), "
               f"strategy {result.strategy}, seed {result.seed}")
    for s in result.subsets:
        typer.echo(f"subset {s.subset_id}  size {s.size}  "
                   f"{'new' if s.created else 'existed'}"
                   + (f"  contains {s.parent_subset_id}" if s.parent_subset_id else ""))
    largest = result.subsets[-1]
    for name, counts in largest.breakdown.items():
        items = list(counts.items())
        shown = ", ".join(f"{k}={v}" for k, v in items[:8])
        typer.echo(f"  {name}: {shown}" + (f", ... ({len(items)} values)"
                                           if len(items) > 8 else ""))
    typer.echo(f"\nExport it:\n  distillery export --subset {largest.subset_id} "
               "--format messages")


@app.command()
def export(
    subset_id: Annotated[str, typer.Option("--subset", help="subset id")],
    fmt: Annotated[str, typer.Option("--format", help="messages | prompt-completion")
                   ] = "messages",
    out: Annotated[Path | None, typer.Option(help="folder (default: exports/<id> next to "
                                             "the warehouse)")] = None,
    push_to_hub: Annotated[str | None, typer.Option(
        "--push-to-hub", metavar="REPO", help="then push the card and data.parquet to this "
        "Hugging Face dataset repo (token: HF_TOKEN or `hf auth login`)")] = None,
    warehouse: Warehouse = None,
) -> None:
    """Write a stored subset as TRL training data: HF dataset, Parquet and JSONL, and its
    dataset card (README.md)."""
    quiet_prefect()
    from flows.subsets import ExportConfig, export_flow
    from tasks.experiments.export import normalize_format
    from tasks.experiments.hub import HubError, check_repo_id, push_export
    from warehouse import Store

    try:
        normalize_format(fmt)
        Store(warehouse).subsets.load_subset(subset_id)
        if push_to_hub is not None:
            check_repo_id(push_to_hub)
    except InputError as exc:
        fail(str(exc))
    result = export_flow(ExportConfig(subset_id=subset_id, format=normalize_format(fmt),
                                      out=str(out) if out else None,
                                      warehouse=str(warehouse) if warehouse else ""))
    typer.echo(f"exported {result.n} examples of subset {result.subset_id} "
               f"(format {result.format}) to {result.out}")
    typer.echo(f"  hf dataset: {result.hf}  (datasets.load_from_disk)")
    typer.echo(f"  parquet:    {result.parquet}")
    typer.echo(f"  jsonl:      {result.jsonl}")
    typer.echo(f"  card:       {Path(result.out) / 'README.md'}")
    if push_to_hub is not None:
        try:
            url = push_export(result.out, push_to_hub)
        except (HubError, InputError) as exc:
            fail(str(exc), code=1)
        typer.echo(f"pushed to {url}")


# ---- finetune / dpo / ladder / evaluate commands ----------------------------------------


# Options generated from the flow configs (flows/cli/options.py): every field is a flag of
# the same name. Older spellings stay as aliases.
_ALIASES = {"subset_id": ["--subset"], "eval_set": ["--eval"], "learning_rate": ["--lr"],
            "warehouse": ["-w"]}
_ENV = {"warehouse": "DISTILLERY_WAREHOUSE"}


def _check_config(config: object) -> None:
    """Before a flow starts: a wrong eval set or a base model that cannot load is one line."""
    from tasks.experiments.evaluate import load_eval_set
    from tasks.experiments.student import check_base_model

    spec = getattr(config, "evaluation", None)
    training = getattr(config, "training", None)
    try:
        if spec is not None and spec.eval_n:
            load_eval_set(spec.eval_set, n=1)
        for ref in (getattr(training, "base_model", None), getattr(config, "model", None)):
            if ref:
                check_base_model(ref)
    except InputError as exc:
        raise ValueError(str(exc)) from None


def _check_dpo(config: DPOConfig) -> None:
    """Before the flow starts: pairs to train on, else one line saying how to make them."""
    from warehouse import Store

    _check_config(config)
    pair_type = config.data.pair_type
    store = Store(config.warehouse)
    if not store.path.exists() or not store.preferences.pairs(
            None if pair_type == "all" else pair_type):
        kind = "" if pair_type == "all" else f"{pair_type} "
        raise ValueError(f"{store.path}: no {kind}preference pairs; run "
                         "`distillery preferences` first")


def _echo_eval(ev: EvalResult | None) -> None:
    if ev is not None:
        typer.echo(f"  {ev.eval_set} (n={ev.n}): accuracy {ev.accuracy:.3f}, "
                   f"exec errors {ev.exec_error_rate:.3f}, no program "
                   f"{ev.no_program_rate:.3f}  ({ev.seconds:.1f}s, "
                   f"{ev.questions_per_s:.2f} questions/s)")


def _echo_model(out: Experiment) -> None:
    [m] = out.models
    t = out.models[0].train
    what = (f"subset {m.subset_id} ({m.size} examples)" if m.subset_id
            else f"{t.n_examples} preference pairs")
    typer.echo(f"run {m.run_id}: {what}, {t.steps} steps in {t.train_seconds:.1f}s on "
               f"{t.device}" + (f", {t.tokens_per_s:.0f} tokens/s" if t.tokens_per_s else ""))
    loss = (f"  loss {t.first_loss:.3f} -> {t.final_loss:.3f}"
            if t.first_loss is not None and t.final_loss is not None else "  loss n/a")
    extra = t.metrics.get("reward_accuracy")
    typer.echo(loss + (f", reward accuracy {extra:.2f}" if extra is not None else ""))
    _echo_eval(m.eval)
    typer.echo(f"  model: {m.output_dir}")


from flows.experiment_results import Experiment  # noqa: E402
from flows.experiments import DPOConfig, EvaluateConfig, FinetuneConfig, LadderConfig  # noqa: E402
from tasks.experiments.evaluate import EvalResult  # noqa: E402


@app.command()
@options_from(FinetuneConfig, fixed={"progress": True}, extra_flags=_ALIASES, envvars=_ENV,
              check=_check_config)
def finetune(config: FinetuneConfig) -> None:
    """Fine-tune a student on a subset (TRL SFT, completion-only loss) and evaluate it."""
    from flows.experiments import finetune_flow

    _echo_model(run_flow(finetune_flow, config))


@app.command()
@options_from(DPOConfig, fixed={"progress": True}, extra_flags=_ALIASES, envvars=_ENV,
              check=_check_dpo)
def dpo(config: DPOConfig) -> None:
    """DPO (TRL DPOTrainer) on the warehouse's preference pairs, from --base-model (an SFT
    run's model folder, an alias, or tiny), then the same evaluation as a finetune."""
    from flows.experiments import dpo_flow

    _echo_model(run_flow(dpo_flow, config))


@app.command()
@options_from(EvaluateConfig, fixed={"progress": True},
              extra_flags={**_ALIASES, "eval_n": ["--n"], "eval_batch_size": ["--batch-size"]},
              envvars=_ENV, check=_check_config)
def evaluate(config: EvaluateConfig) -> None:
    """Evaluate a model: it writes programs, the sandbox runs them, answers are compared."""
    from flows.experiments import evaluate_flow

    out = run_flow(evaluate_flow, config)
    typer.echo(f"evaluation {out.eval_id} of {out.model}"
               + (f" (run {out.finetune_run_id})" if out.finetune_run_id else ""))
    _echo_eval(out.result)
    for f in out.result.failures[:3]:
        typer.echo(f"  failed ({f['status']}): gold {f['gold']}, got {f['predicted']}: "
                   f"{f['question'][:70]}")


@app.command()
@options_from(LadderConfig, fixed={"progress": True},
              extra_flags={**_ALIASES, "strategies": ["--strategy"]}, envvars=_ENV,
              check=_check_config)
def ladder(config: LadderConfig) -> None:
    """Learning curves: one model per nested subset size and strategy (and an unverified
    arm), --repeats models per rung with their own seeds, the same training settings for
    every rung, the base model as the zero point; means with 95% intervals, paired
    differences; writes curve.png and Prefect artifacts."""
    from flows.experiments import ladder_flow

    out = run_flow(ladder_flow, config)
    typer.echo(f"ladder {out.experiment_id}: {out.base_model}, {out.budget}, "
               f"snapshot {out.snapshot_id}")
    typer.echo(f"  {'curve':<24} {'examples':>8} {'runs':>4}  {'accuracy [95% CI]':<22}"
               f" {'exec_err':>8} {'train_s':>8}")
    for p in out.points:
        typer.echo(f"  {p.curve:<24} {p.examples:>8} {p.runs:>4}  {p.accuracy:.3f} "
                   f"[{p.low:.3f}, {p.high:.3f}]  {p.exec_error_rate:>8.3f} "
                   f"{p.train_seconds:>8.1f}")
    for d in out.differences:
        typer.echo(f"  paired: {d.arm} vs {d.versus} at {d.examples}: {d.difference:+.3f} "
                   f"[{d.low:+.3f}, {d.high:+.3f}]{'  (gain)' if d.gain else ''}")
    typer.echo(f"  curve: {out.curve_png}")
