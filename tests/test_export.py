"""Export: a stored subset as TRL-format data, round-tripped through datasets/pandas/JSONL."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from datasets import load_from_disk
from trl.data_utils import is_conversational
from typer.testing import CliRunner

from flows.cli.main import app
from flows.refresh import RefreshConfig, refresh
from flows.subsets import ExportConfig, SubsetConfig, create_subsets, export_flow, export_subset
from tasks.errors import InputError
from tasks.experiments.export import export_examples
from tasks.render import SYSTEM_PROMPT, render_completion, render_prompt
from warehouse import Store

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(scope="module")
def subset(tmp_path_factory, prefect_harness) -> tuple[Path, str, str]:
    path = tmp_path_factory.mktemp("export") / "w.duckdb"
    refresh(RefreshConfig(source="procedural", n=120, seed=8, warehouse=str(path)))
    out = create_subsets(SubsetConfig(sizes=[15, 40], strategy="random", seed=0,
                                      warehouse=str(path)))
    return path, out.subsets[1].subset_id, out.subsets[0].subset_id


@pytest.mark.parametrize("fmt", ["messages", "prompt_completion"])
def test_round_trip(subset, tmp_path, fmt):
    path, subset_id, _ = subset
    out = tmp_path / fmt
    result = export_subset(ExportConfig(subset_id=subset_id, format=fmt, out=str(out),
                                        warehouse=str(path)))
    examples = Store(path).subsets.subset_examples(subset_id)
    assert result.n == len(examples) == 40

    ds = load_from_disk(str(out / "hf"))
    assert len(ds) == 40
    assert [r["question_id"] for r in ds] == [e.question_id for e in examples]  # rank order
    for row, ex in zip(ds, examples, strict=True):
        turns = row["messages"] if fmt == "messages" else row["prompt"] + row["completion"]
        assert [t["role"] for t in turns] == ["system", "user", "assistant"]
        assert turns[0]["content"] == SYSTEM_PROMPT
        assert turns[1]["content"] == render_prompt(ex.text, ex.context)
        assert turns[2]["content"] == render_completion(ex.program)
        assert "| Line item |" in turns[1]["content"]  # the table, as markdown
        assert (row["sample_id"], row["source"], row["kind"], row["difficulty"]) == (
            ex.sample_id, ex.source, ex.kind, ex.difficulty)
        assert is_conversational(row)  # what TRL's SFTTrainer dispatches on
    if fmt == "prompt_completion":
        assert set(ds.column_names) >= {"prompt", "completion"}
        assert "messages" not in ds.column_names
    else:
        assert "prompt" not in ds.column_names

    frame = pd.read_parquet(out / "data.parquet")
    assert frame["question_id"].tolist() == ds["question_id"]
    assert frame["difficulty"].tolist() == ds["difficulty"]
    lines = [json.loads(x) for x in (out / "data.jsonl").read_text().splitlines()]
    assert lines == ds.to_list()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metadata"]["subset_id"] == subset_id
    assert manifest["metadata"]["seed"] == 0 and manifest["format"] == fmt


def test_export_flow_cli_spelling_and_replace(subset, tmp_path):
    path, big, small = subset
    out = tmp_path / "x"
    first = export_flow(ExportConfig(subset_id=big, format="prompt-completion", out=str(out),
                                     warehouse=str(path)))
    assert first.format == "prompt_completion" and first.n == 40
    # Exporting another subset into the same folder replaces it, never mixes the two.
    runner = CliRunner()
    res = runner.invoke(app, ["export", "--subset", small, "--format", "messages", "--out",
                              str(out), "--warehouse", str(path)])
    assert res.exit_code == 0, res.output
    assert f"exported 15 examples of subset {small}" in res.output
    assert len(load_from_disk(str(out / "hf"))) == 15
    assert len(pd.read_parquet(out / "data.parquet")) == 15
    default = export_subset(ExportConfig(subset_id=small, warehouse=str(path)))
    assert Path(default.out) == path.parent / "exports" / small
    bad = runner.invoke(app, ["export", "--subset", "nope", "--warehouse", str(path)])
    assert bad.exit_code == 2 and "subset 'nope' not found" in bad.output


def test_export_examples_takes_plain_mappings(tmp_path):
    rows = [{"question_id": "a", "sample_id": "b", "text": "What is 2 + 3?", "context": "",
             "program": "ans = 2 + 3", "source": "jsonl", "kind": None, "difficulty": None,
             "answer": 5}]
    res = export_examples(rows, tmp_path, "prompt-completion")
    ds = load_from_disk(res["hf"])
    assert ds[0]["prompt"][1]["content"] == render_prompt("What is 2 + 3?")
    assert ds[0]["kind"] is None and ds[0]["answer"] == "5"
    assert ds.features["difficulty"].dtype == "int32"
    with pytest.raises(InputError, match="export format 'chatml'"):
        export_examples(rows, tmp_path, "chatml")
    with pytest.raises(InputError, match="no program"):
        export_examples([{**rows[0], "program": None}], tmp_path)
