"""CLI commands of the experiments flows; they register on the shared typer app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.app import Warehouse, app, fail, quiet_prefect
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
    from tasks.subsets import subset_params
    from warehouse import subsets as wh

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
        snap = wh.resolve_snapshot_id(config.warehouse, config.snapshot_id)
        n = wh.snapshot_size(config.warehouse, snap)
        if all_sizes[-1] > n:
            raise InputError(f"subset size {all_sizes[-1]} > {n} examples in snapshot {snap}")
    except InputError as exc:
        fail(str(exc))
    result = subset_flow(config)
    typer.echo(f"snapshot {result['snapshot_id']} ({result['snapshot_size']} examples), "
               f"strategy {result['strategy']}, seed {result['seed']}")
    for s in result["subsets"]:
        typer.echo(f"subset {s['subset_id']}  size {s['size']}  "
                   f"{'new' if s['created'] else 'existed'}"
                   + (f"  contains {s['parent_subset_id']}" if s["parent_subset_id"] else ""))
    largest = result["subsets"][-1]
    for name, counts in largest["breakdown"].items():
        items = list(counts.items())
        shown = ", ".join(f"{k}={v}" for k, v in items[:8])
        typer.echo(f"  {name}: {shown}" + (f", ... ({len(items)} values)"
                                           if len(items) > 8 else ""))
    typer.echo(f"\nExport it:\n  distillery export --subset {largest['subset_id']} "
               "--format messages")


@app.command()
def export(
    subset_id: Annotated[str, typer.Option("--subset", help="subset id")],
    fmt: Annotated[str, typer.Option("--format", help="messages | prompt-completion")
                   ] = "messages",
    out: Annotated[Path | None, typer.Option(help="folder (default: exports/<id> next to "
                                             "the warehouse)")] = None,
    warehouse: Warehouse = None,
) -> None:
    """Write a stored subset as TRL training data: HF dataset, Parquet and JSONL."""
    quiet_prefect()
    from flows.subsets import ExportConfig, export_flow
    from tasks.export import normalize_format
    from warehouse import subsets as wh

    try:
        normalize_format(fmt)
        wh.load_subset(str(warehouse) if warehouse else None, subset_id)
    except InputError as exc:
        fail(str(exc))
    result = export_flow(ExportConfig(subset_id=subset_id, format=normalize_format(fmt),
                                      out=str(out) if out else None,
                                      warehouse=str(warehouse) if warehouse else None))
    typer.echo(f"exported {result['n']} examples of subset {result['subset_id']} "
               f"(format {result['format']}) to {result['out']}")
    typer.echo(f"  hf dataset: {result['hf']}  (datasets.load_from_disk)")
    typer.echo(f"  parquet:    {result['parquet']}")
    typer.echo(f"  jsonl:      {result['jsonl']}")
# ---- end of subset / export commands --------------------------------------------------------


# ---- finetune / evaluate / ladder commands (parts 3-5 of issue 4): keep this block contiguous


def _experiment_config(cls: type, **fields: object) -> object:
    """Build a flow config; a bad value is one line naming the option."""
    from pydantic import ValidationError

    try:
        return cls(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = "-".join(str(p) for p in err["loc"][:1]).replace("_", "-")
        fail(f"--{loc}: {err['msg']}" if loc else err["msg"])


def _check_eval_set(spec: str) -> None:
    from tasks.evaluate import load_eval_set

    try:
        load_eval_set(spec, n=1)
    except InputError as exc:
        fail(str(exc))


def _echo_eval(ev: dict) -> None:
    typer.echo(f"  {ev['eval_set']} (n={ev['n']}): accuracy {ev['accuracy']:.3f}, "
               f"exec errors {ev['exec_error_rate']:.3f}, no program "
               f"{ev['no_program_rate']:.3f}  ({ev['seconds']:.1f}s)")


EvalSet = Annotated[str, typer.Option("--eval", help="procedural-heldout | gsm8k:PATH | "
                                      "tatqa:PATH | jsonl:PATH | hf:NAME[:SPLIT]")]
BaseModelOpt = Annotated[str, typer.Option(help="'tiny' (offline student built from a config), "
                                           "an HF model id or a local path")]


@app.command()
def finetune(
    subset_id: Annotated[str | None, typer.Option("--subset", help="subset id")] = None,
    subset_size: Annotated[int | None, typer.Option(help="draw a subset of this size from "
                                                    "the snapshot first")] = None,
    strategy: Annotated[str, typer.Option(help="with --subset-size: random | stratified | "
                                          "diversity | difficulty")] = "random",
    seed: Annotated[int, typer.Option(help="with --subset-size: selection seed")] = 0,
    base_model: BaseModelOpt = "tiny",
    lora: Annotated[bool, typer.Option("--lora", help="LoRA adapters (peft)")] = False,
    epochs: Annotated[float, typer.Option(help="epochs (ignored with --max-steps)")] = 1.0,
    max_steps: Annotated[int | None, typer.Option(help="fixed step budget")] = None,
    learning_rate: Annotated[float | None, typer.Option("--lr", "--learning-rate",
                                                        help="default by model/LoRA")] = None,
    batch_size: Annotated[int, typer.Option(help="examples per step")] = 8,
    eval_set: EvalSet = "procedural-heldout",
    eval_n: Annotated[int, typer.Option(help="questions to evaluate (0: skip)")] = 200,
    output_root: Annotated[Path, typer.Option(help="models go to <root>/<run_id>")
                           ] = Path("data/models"),
    warehouse: Warehouse = None,
) -> None:
    """Fine-tune a student on a subset (TRL SFT, completion-only loss) and evaluate it."""
    quiet_prefect()
    from flows.finetune import FinetuneConfig, finetune_flow

    config = _experiment_config(
        FinetuneConfig, subset_id=subset_id, subset_size=subset_size, strategy=strategy,
        seed=seed, base_model=base_model, lora=lora, epochs=epochs, max_steps=max_steps,
        learning_rate=learning_rate, batch_size=batch_size, eval_set=eval_set, eval_n=eval_n,
        output_root=str(output_root), warehouse=str(warehouse) if warehouse else None,
        progress=True)
    if eval_n:
        _check_eval_set(eval_set)
    try:
        out = finetune_flow(config)
    except InputError as exc:
        fail(str(exc))
    t = out["train"]
    typer.echo(f"run {out['run_id']}: subset {out['subset_id']} ({out['size']} examples), "
               f"{t['steps']} steps in {t['train_seconds']:.1f}s on {t['device']}, "
               f"{t['tokens_per_s']:.0f} tokens/s")
    typer.echo(f"  loss {t['first_loss']:.3f} -> {t['final_loss']:.3f}")
    if out["eval"]:
        _echo_eval(out["eval"])
    typer.echo(f"  model: {out['output_dir']}")


@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help="model directory (data/models/<run>), local "
                                       "path or HF id")],
    eval_set: EvalSet = "procedural-heldout",
    n: Annotated[int, typer.Option(help="questions (file sets: the first n)")] = 200,
    batch_size: Annotated[int, typer.Option(help="generation batch")] = 32,
    max_new_tokens: Annotated[int, typer.Option(help="tokens per answer")] = 256,
    warehouse: Warehouse = None,
) -> None:
    """Evaluate a model: it writes programs, the sandbox runs them, answers are compared."""
    quiet_prefect()
    from flows.finetune import EvaluateConfig, evaluate_flow

    config = _experiment_config(EvaluateConfig, model=model, eval_set=eval_set, eval_n=n,
                                eval_batch_size=batch_size, max_new_tokens=max_new_tokens,
                                warehouse=str(warehouse) if warehouse else None,
                                progress=True)
    _check_eval_set(eval_set)
    out = evaluate_flow(config)
    typer.echo(f"evaluation {out['eval_id']} of {out['model']}"
               + (f" (run {out['finetune_run_id']})" if out["finetune_run_id"] else ""))
    _echo_eval(out)
    for f in out["failures"][:3]:
        typer.echo(f"  failed ({f['status']}): gold {f['gold']}, got {f['predicted']}: "
                   f"{f['question'][:70]}")


@app.command()
def ladder(
    sizes: Annotated[str, typer.Option(help="subset sizes, e.g. 250,1000,4000")
                     ] = "250,1000,4000",
    strategy: Annotated[str, typer.Option(help="random | stratified | diversity | "
                                          "difficulty")] = "random",
    seed: Annotated[int, typer.Option(help="selection seed")] = 0,
    base_model: BaseModelOpt = "tiny",
    lora: Annotated[bool, typer.Option("--lora", help="LoRA adapters (peft)")] = False,
    max_steps: Annotated[int, typer.Option(help="the same step budget for every size")] = 300,
    learning_rate: Annotated[float | None, typer.Option("--lr", "--learning-rate")] = None,
    batch_size: Annotated[int, typer.Option(help="examples per step")] = 8,
    eval_set: EvalSet = "procedural-heldout",
    eval_n: Annotated[int, typer.Option(help="questions per evaluation")] = 200,
    max_new_tokens: Annotated[int, typer.Option(help="tokens per answer")] = 256,
    output_root: Annotated[Path, typer.Option(help="ladder goes to <root>/ladder-<id>")
                           ] = Path("data/models"),
    warehouse: Warehouse = None,
) -> None:
    """Learning curve: one model per nested subset size, same step budget, base model as
    the zero point; writes curve.png and Prefect artifacts."""
    quiet_prefect()
    from flows.finetune import LadderConfig, ladder_flow

    config = _experiment_config(
        LadderConfig, sizes=_parse_sizes(None, sizes), strategy=strategy, seed=seed,
        base_model=base_model, lora=lora, max_steps=max_steps, learning_rate=learning_rate,
        batch_size=batch_size, eval_set=eval_set, eval_n=eval_n,
        max_new_tokens=max_new_tokens, output_root=str(output_root),
        warehouse=str(warehouse) if warehouse else None, progress=True)
    _check_eval_set(eval_set)
    try:
        out = ladder_flow(config)
    except InputError as exc:
        fail(str(exc))
    typer.echo(f"ladder {out['ladder_id']}: {out['base_model']}, {out['max_steps']} steps "
               f"per size, snapshot {out['snapshot_id']}")
    typer.echo(f"  {'examples':>8}  {'accuracy':>8}  {'exec_err':>8}  {'train_s':>8}  run")
    for r in out["rows"]:
        typer.echo(f"  {r['examples']:>8}  {r['accuracy']:>8.3f}  {r['exec_error_rate']:>8.3f}"
                   f"  {r['train_seconds']:>8.1f}  {r['run_id']}")
    typer.echo(f"  curve: {out['curve_png']}")
# ---- end of finetune / evaluate / ladder commands --------------------------------------------
