"""Subset and export flows: snapshot -> subset(s) -> TRL-format dataset on disk.

`create_subsets` / `export_subset` are the plain functions (other flows call them inside
their own runs); `subset_flow` / `export_flow` wrap them as Prefect flows with an artifact.
The selection is in tasks/experiments/subsets.py, the SQL in warehouse/subsets.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field, model_validator

from flows.config_tools import WarehouseField
from tasks.embed import DEFAULT_MODEL, embed_with_cache
from tasks.experiments.card import write_card
from tasks.experiments.export import export_examples, normalize_format
from tasks.experiments.subsets import (
    DEFAULT_STRATA,
    Example,
    Strategy,
    breakdown,
    parse_mix,
    select_ladder,
    subset_id_for,
    subset_params,
)
from tasks.settings import Settings
from warehouse import Store
from warehouse.subsets import SubsetInfo


class SubsetConfig(Settings):
    """One subset, or a nested ladder of them, from a pinned snapshot."""

    size: int | None = Field(None, ge=1, description="examples in the subset")
    sizes: list[int] | None = Field(None, description="a nested ladder, e.g. [250, 1000]; "
                                    "each subset contains the smaller ones")
    strategy: Strategy = "random"
    mix: str = Field("", description="sources in set shares, e.g. procedural=0.5,tatqa=0.5; "
                     "empty: the whole snapshot")
    seed: int = 0
    snapshot_id: int | None = Field(None, description="default: the latest snapshot")
    embedding_model: str = Field(DEFAULT_MODEL, description="diversity: whose vectors")
    strata: list[Literal["source", "kind", "difficulty"]] = Field(
        default_factory=lambda: list(DEFAULT_STRATA), description="stratified: the keys")
    power: float = Field(1.0, gt=0, description="difficulty: weight = difficulty ** power")
    warehouse: WarehouseField = ""

    @model_validator(mode="after")
    def _one_size_at_least(self) -> SubsetConfig:
        if self.size is None and not self.sizes:
            raise ValueError("give size or sizes")
        if self.sizes and any(s < 1 for s in self.sizes):
            raise ValueError("sizes must be at least 1")
        return self

    def all_sizes(self) -> list[int]:
        return sorted({*(self.sizes or []), *([self.size] if self.size else [])})


class ExportConfig(Settings):
    """Write a stored subset as TRL-format training data."""

    subset_id: str
    format: Literal["messages", "prompt_completion", "prompt-completion"] = "messages"
    out: str | None = Field(None, description="folder; default <warehouse dir>/exports/<id>")
    warehouse: WarehouseField = ""


class SubsetMade(BaseModel):
    """One subset of a ladder: its id, size, the next smaller subset, and its make-up."""

    subset_id: str
    size: int
    parent_subset_id: str | None
    created: bool  # False: an identical subset was already stored
    breakdown: dict[str, dict[str, int]]


class SubsetsMade(BaseModel):
    """What `create_subsets` drew: the subsets in ascending size, from one snapshot."""

    snapshot_id: int
    snapshot_size: int
    strategy: str
    seed: int
    params: dict[str, Any]
    warehouse: str
    subsets: list[SubsetMade]


class ExportMade(BaseModel):
    """Where an export wrote a subset, and how many rows in which format."""

    subset_id: str
    snapshot_id: int
    out: str
    n: int
    format: str
    columns: list[str]
    hf: str  # save_to_disk folder
    parquet: str
    jsonl: str
    manifest: str


def create_subsets(config: SubsetConfig) -> SubsetsMade:
    """Select, store and describe the subsets of `config`. Same config -> same ids, and no
    new rows on a repeat. Subsets come in ascending size."""
    store = Store(config.warehouse)
    snapshot_id = store.subsets.resolve_snapshot_id(config.snapshot_id)
    examples = store.subsets.snapshot_examples(snapshot_id)
    mix = parse_mix(config.mix)
    params = subset_params(config.strategy, strata=config.strata, power=config.power,
                           embedding_model=config.embedding_model, mix=mix)
    embeddings = None
    if config.strategy == "diversity":
        embeddings = _embeddings(store, examples, config.embedding_model)
    sizes = config.all_sizes()
    ladder = select_ladder(examples, config.strategy, sizes, config.seed,
                           embeddings=embeddings, strata=config.strata, power=config.power,
                           snapshot_id=snapshot_id, mix=mix)
    by_id = {e.question_id: e for e in examples}
    out = []
    parent = None
    for size in sizes:
        ids = ladder[size]
        info = SubsetInfo(
            subset_id=subset_id_for(snapshot_id, config.strategy, size, config.seed, params),
            snapshot_id=snapshot_id, strategy=config.strategy, size=size, seed=config.seed,
            params=params, parent_subset_id=parent)
        created = store.subsets.save_subset(info, [(q, by_id[q].sample_id) for q in ids])
        out.append(SubsetMade(subset_id=info.subset_id, size=size, parent_subset_id=parent,
                              created=created,
                              breakdown=breakdown([by_id[q] for q in ids])))
        parent = info.subset_id
    return SubsetsMade(snapshot_id=snapshot_id, snapshot_size=len(examples),
                       strategy=config.strategy, seed=config.seed, params=params,
                       warehouse=str(store.path), subsets=out)


def _embeddings(store: Store, examples: list[Example], model: str) -> dict[str, Any]:
    """Stored vectors (keyed like the refresh's: normalized text, model); the few a refresh
    with another model did not store are computed once and stored."""
    vectors = embed_with_cache(store, [e.text for e in examples], model)
    return {e.question_id: v for e, v in zip(examples, vectors, strict=True)}


def export_subset(config: ExportConfig) -> ExportMade:
    """Write the subset's examples (rank order) with `tasks.experiments.export.export_examples`; the
    manifest records the subset's row so the export can be traced and reproduced."""
    store = Store(config.warehouse)
    info = store.subsets.load_subset(config.subset_id)
    examples = store.subsets.subset_examples(config.subset_id)
    out = Path(config.out) if config.out else store.path.parent / "exports" / info.subset_id
    meta = {"subset_id": info.subset_id, "snapshot_id": info.snapshot_id,
            "strategy": info.strategy, "size": info.size, "seed": info.seed,
            "params": info.params, "parent_subset_id": info.parent_subset_id,
            "warehouse": str(store.path)}
    result = export_examples(examples, out, normalize_format(config.format), metadata=meta)
    write_card(out, store.cards.export_provenance(info.subset_id), result)  # README.md
    return ExportMade(**{**result, "subset_id": info.subset_id,
                         "snapshot_id": info.snapshot_id, "out": str(out)})


@flow(name="subset", log_prints=True)
def subset_flow(config: SubsetConfig) -> SubsetsMade:
    """Draw a subset (or a nested ladder) of a pinned snapshot and store it."""
    result = create_subsets(config)
    create_markdown_artifact(markdown=_subset_markdown(result), key="subset-summary",
                             description="Subsets drawn and their make-up")
    return result


@flow(name="export", log_prints=True)
def export_flow(config: ExportConfig) -> ExportMade:
    """Write a stored subset as an HF dataset + Parquet + JSONL in TRL's format."""
    result = export_subset(config)
    create_markdown_artifact(
        markdown=(f"# Export of subset `{result.subset_id}`\n\n"
                  f"{result.n} examples, format `{result.format}`, snapshot "
                  f"{result.snapshot_id}.\n\n- HF dataset: `{result.hf}`\n"
                  f"- Parquet: `{result.parquet}`\n- JSONL: `{result.jsonl}`\n"),
        key="export-summary", description="Where the training data was written")
    return result


def _subset_markdown(result: SubsetsMade) -> str:
    lines = [f"# Subsets of snapshot {result.snapshot_id}",
             "",
             f"Strategy **{result.strategy}**, seed {result.seed}, params "
             f"`{result.params}`; the snapshot holds {result.snapshot_size} examples.",
             "", "| subset_id | size | parent | new |", "|---|---|---|---|"]
    lines += [f"| `{s.subset_id}` | {s.size} | {s.parent_subset_id or ''} | "
              f"{'yes' if s.created else 'no (existed)'} |" for s in result.subsets]
    largest = result.subsets[-1]
    for name, counts in largest.breakdown.items():
        lines += ["", f"Largest subset ({largest.size}) by {name}:", "",
                  f"| {name} | n | share |", "|---|---|---|"]
        lines += [f"| {k} | {n} | {n / largest.size:.1%} |" for k, n in counts.items()]
    return "\n".join(lines)
