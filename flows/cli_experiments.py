"""CLI commands of the experiments flows; they register on the shared typer app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli import Warehouse, _fail, _quiet_prefect, app
from tasks.errors import InputError

# ---- subset / export commands (parts 1-2 of issue 4): keep this block contiguous --------


def _parse_sizes(size: int | None, sizes: str | None) -> list[int]:
    out: set[int] = {size} if size is not None else set()
    for part in (sizes or "").split(","):
        if part.strip():
            try:
                out.add(int(part))
            except ValueError:
                _fail(f"--sizes {sizes!r}: comma-separated integers, e.g. 250,1000")
    if not out:
        _fail("give --size N or --sizes N1,N2,...")
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
    _quiet_prefect()
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
        _fail(f"--{'-'.join(str(p) for p in err['loc'][:1])}: {err['msg']}")
    try:
        # Check before the flow starts so a wrong snapshot or size is one line, not a
        # failed flow run with a traceback.
        subset_params(config.strategy, embedding_model=config.embedding_model)
        snap = wh.resolve_snapshot_id(config.warehouse, config.snapshot_id)
        n = wh.snapshot_size(config.warehouse, snap)
        if all_sizes[-1] > n:
            raise InputError(f"subset size {all_sizes[-1]} > {n} examples in snapshot {snap}")
    except InputError as exc:
        _fail(str(exc))
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
    _quiet_prefect()
    from flows.subsets import ExportConfig, export_flow
    from tasks.export import normalize_format
    from warehouse import subsets as wh

    try:
        normalize_format(fmt)
        wh.load_subset(str(warehouse) if warehouse else None, subset_id)
    except InputError as exc:
        _fail(str(exc))
    result = export_flow(ExportConfig(subset_id=subset_id, format=normalize_format(fmt),
                                      out=str(out) if out else None,
                                      warehouse=str(warehouse) if warehouse else None))
    typer.echo(f"exported {result['n']} examples of subset {result['subset_id']} "
               f"(format {result['format']}) to {result['out']}")
    typer.echo(f"  hf dataset: {result['hf']}  (datasets.load_from_disk)")
    typer.echo(f"  parquet:    {result['parquet']}")
    typer.echo(f"  jsonl:      {result['jsonl']}")
# ---- end of subset / export commands --------------------------------------------------------
