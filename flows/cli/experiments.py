"""CLI commands of the experiments flows; they register on the shared typer app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.app import Warehouse, app, fail, quiet_prefect, run_flow
from flows.cli.options import options_from
from tasks.errors import InputError

# ---- subset / export commands (parts 1-2 of issue 4): keep this block contiguous --------


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
    snapshot: Annotated[int | None, typer.Option(help="snapshot id (default: latest)")] = None,
    embedding_model: Annotated[str | None, typer.Option(help="diversity: embedding model "
                                                        "id or path")] = None,
    warehouse: Warehouse = None,
) -> None:
    """Draw a deterministic subset (or nested ladder) of a snapshot and store it."""
    quiet_prefect()
    from pydantic import ValidationError

    from flows.subsets import SubsetConfig, subset_flow
    from tasks.experiments.subsets import subset_params
    from warehouse import Store

    all_sizes = _parse_sizes(size, sizes)
    try:
        fields = dict(sizes=all_sizes, strategy=strategy, seed=seed, snapshot_id=snapshot,
                      warehouse=str(warehouse) if warehouse else None)
        if embedding_model:
            fields["embedding_model"] = embedding_model
        config = SubsetConfig(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        fail(f"--{'-'.join(str(p) for p in err['loc'][:1])}: {err['msg']}")
    try:
        # Check before the flow starts so a wrong snapshot or size is one line, not a
        # failed flow run with a traceback.
        subset_params(config.strategy, embedding_model=config.embedding_model)
        snap = Store(config.warehouse).subsets.resolve_snapshot_id(config.snapshot_id)
        n = Store(config.warehouse).subsets.snapshot_size(snap)
        if all_sizes[-1] > n:
            raise InputError(f"subset size {all_sizes[-1]} > {n} examples in snapshot {snap}")
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
                                      warehouse=str(warehouse) if warehouse else None))
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
# ---- end of subset / export commands --------------------------------------------------------


# ---- finetune / evaluate / ladder commands (parts 3-5 of issue 4): keep this block contiguous


# Options generated from the flow configs (flows/cli/options.py): every field is a flag of
# the same name. Older spellings stay as aliases.
_ALIASES = {"subset_id": ["--subset"], "eval_set": ["--eval"], "learning_rate": ["--lr"],
            "warehouse": ["-w"]}
_ENV = {"warehouse": "DISTILLERY_WAREHOUSE"}


def _check_config(config: object) -> None:
    """Before a flow starts: a wrong eval set or an uninstalled model alias is one line."""
    from tasks.experiments.evaluate import load_eval_set
    from tasks.experiments.student import ALIASES, gguf_file

    try:
        if getattr(config, "eval_n", 0):
            load_eval_set(config.eval_set, n=1)
        for ref in (getattr(config, "base_model", None), getattr(config, "model", None)):
            if ref in ALIASES:
                gguf_file(ref)
    except InputError as exc:
        raise ValueError(str(exc)) from None


def _echo_eval(ev: EvalResult) -> None:
    typer.echo(f"  {ev.eval_set} (n={ev.n}): accuracy {ev.accuracy:.3f}, "
               f"exec errors {ev.exec_error_rate:.3f}, no program "
               f"{ev.no_program_rate:.3f}  ({ev.seconds:.1f}s, "
               f"{ev.questions_per_s:.2f} questions/s)")


from flows.cli.preferences import echo_dpo  # noqa: E402
from flows.finetune import EvaluateConfig, FinetuneConfig, LadderConfig  # noqa: E402
from flows.preferences import DPORun  # noqa: E402
from tasks.experiments.evaluate import EvalResult  # noqa: E402


@app.command()
@options_from(FinetuneConfig, fixed={"progress": True}, extra_flags=_ALIASES, envvars=_ENV,
              check=_check_config)
def finetune(config: FinetuneConfig) -> None:
    """Fine-tune a student and evaluate it: on a subset (TRL SFT, completion-only loss), or
    with --method dpo on the stored preference pairs (TRL DPOTrainer)."""
    from flows.finetune import finetune_flow

    out = run_flow(finetune_flow, config)
    if isinstance(out, DPORun):
        echo_dpo(out)
    else:
        t = out.train
        typer.echo(f"run {out.run_id}: subset {out.subset_id} ({out.size} examples), "
                   f"{t.steps} steps in {t.train_seconds:.1f}s on {t.device}, "
                   f"{t.tokens_per_s:.0f} tokens/s")
        typer.echo(f"  loss {t.first_loss:.3f} -> {t.final_loss:.3f}")
    if out.eval:
        _echo_eval(out.eval)
    typer.echo(f"  model: {out.output_dir}")


@app.command()
@options_from(EvaluateConfig, fixed={"progress": True},
              extra_flags={**_ALIASES, "eval_n": ["--n"], "eval_batch_size": ["--batch-size"]},
              envvars=_ENV, check=_check_config)
def evaluate(config: EvaluateConfig) -> None:
    """Evaluate a model: it writes programs, the sandbox runs them, answers are compared."""
    from flows.finetune import evaluate_flow

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
    arm), the same training settings for every rung, the base model as the zero point;
    writes curve.png and Prefect artifacts."""
    from flows.finetune import ladder_flow

    out = run_flow(ladder_flow, config)
    budget = (f"{config.max_steps} steps" if config.max_steps
              else f"{config.epochs:g} epochs")
    typer.echo(f"ladder {out.ladder_id}: {out.base_model}, {budget} per size, "
               f"snapshot {out.snapshot_id}")
    typer.echo(f"  {'curve':<22}  {'examples':>8}  {'accuracy':>8}  {'exec_err':>8}  "
               f"{'train_s':>8}  run")
    for r in out.rows:
        typer.echo(f"  {r['curve']:<22}  {r['examples']:>8}  {r['accuracy']:>8.3f}  "
                   f"{r['exec_error_rate']:>8.3f}  {r['train_seconds']:>8.1f}  {r['run_id']}")
    typer.echo(f"  curve: {out.curve_png}")
# ---- end of finetune / evaluate / ladder commands --------------------------------------------
