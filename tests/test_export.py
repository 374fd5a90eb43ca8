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
from flows.subsets import ExportConfig, SubsetConfig, create_subsets, export_flow, export_subset
from tasks.errors import InputError
from tasks.experiments.export import export_examples
from tasks.render import SYSTEM_PROMPT, render_completion, student_prompt
from warehouse import Store

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(scope="module")
def subset(procedural_warehouse) -> tuple[Path, str, str]:
    path = procedural_warehouse
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
        assert turns[1]["content"] == student_prompt(ex.text, ex.context)
        assert turns[2]["content"] == render_completion(ex.program)
        assert "| Line item |" in ex.context and "|" not in turns[1]["content"]  # as rows
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
    assert ds[0]["prompt"][1]["content"] == student_prompt("What is 2 + 3?")
    assert ds[0]["kind"] is None and ds[0]["answer"] == "5"
    assert ds.features["difficulty"].dtype == "int32"
    with pytest.raises(InputError, match="export format 'chatml'"):
        export_examples(rows, tmp_path, "chatml")
    with pytest.raises(InputError, match="no program"):
        export_examples([{**rows[0], "program": None}], tmp_path)


def test_student_tables_as_rows_keep_every_cell_with_its_row_and_column():
    """Each value of a procedural table and of a TAT-QA table ends up on its row's line,
    named by its column; the paragraphs after a table are untouched."""
    from tasks.render import render_prompt, tables_as_rows
    from tasks.sources import load_questions
    from tasks.sources.tatqa import render_context

    q = load_questions("procedural", n=1, seed=3)[0]
    table = [line for line in q.context.splitlines() if line.startswith("|")]
    years = [c.strip() for c in table[0].strip("|").split("|")][1:]
    rows = tables_as_rows(q.context).splitlines()
    for line in table[2:]:
        label, *values = [c.strip() for c in line.strip("|").split("|")]
        [mine] = [r for r in rows if r.startswith(f"{label}: ")]
        assert mine == f"{label}: " + "; ".join(
            f"{y} = {v}" for y, v in zip(years, values, strict=True))
    prose = [line for line in q.context.splitlines() if line and not line.startswith("|")]
    assert all(line in rows for line in prose)
    assert render_prompt(q.text, q.context) != render_prompt(q.text, q.context, tables="rows")

    tatqa = render_context([["", "2019", "2018"], ["Net sales", "$1,200", ""],
                            ["Total", "3.5%", "(12)"]],
                           [{"order": 1, "text": "Sales rose | slightly."}])
    assert tables_as_rows(tatqa).splitlines() == [
        "Net sales: 2019 = $1,200", "Total: 2019 = 3.5%; 2018 = (12)", "",
        "Sales rose | slightly."]
    assert tables_as_rows("| not | a table |\nplain") == "| not | a table |\nplain"
