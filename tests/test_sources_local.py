"""The generic sources: JSONL files and `datasets.load_dataset` on a local folder."""

from __future__ import annotations

import json

import pytest

from tasks.errors import InputError
from tasks.sources import load_questions, parse_spec


def test_jsonl_fields(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"question": " Two plus two? ", "answer": 4, "program": "ans=2+2",
                                "context": "ctx", "id": "a1", "topic": "add"}) + "\n\n"
                    + json.dumps({"question": "No extras here?"}) + "\n")
    qs = load_questions(f"jsonl:{path}")
    assert [q.text for q in qs] == ["Two plus two?", "No extras here?"]
    assert (qs[0].gold_answer, qs[0].gold_program, qs[0].context, qs[0].source_id) == \
        ("4", "ans=2+2", "ctx", "a1")
    assert qs[0].meta == {"topic": "add"}
    assert qs[1].gold_answer is None and qs[1].source_id.endswith(":3")
    assert len(load_questions(f"jsonl:{path}", n=1)) == 1


def test_jsonl_field_type_error(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"question": "Fine?", "answer": {"x": 1}}) + "\n")
    with pytest.raises(InputError, match=r"q.jsonl:1: field 'answer' must be"):
        load_questions(f"jsonl:{path}")


def test_hf_local_folder_through_datasets(tmp_path):
    folder = tmp_path / "ds"
    folder.mkdir()
    rows = [{"question": f"Tom has {i} apples and buys 2 more. How many now?",
             "answer": f"He has {i}+2=<<{i}+2={i + 2}>>{i + 2}.\n#### {i + 2}"} for i in range(5)]
    (folder / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    qs = load_questions(f"hf:{folder}:train", n=3)
    assert len(qs) == 3
    assert qs[2].gold_answer == "4" and "<<2+2=4>>" in qs[2].meta["solution"]
    assert qs[0].source == f"hf:{folder}"


def test_hf_missing_dataset_is_one_line(tmp_path):
    with pytest.raises(InputError) as err:
        load_questions(f"hf:{tmp_path / 'nothing-here'}")
    assert "\n" not in str(err.value) and "cannot load" in str(err.value)


def test_spec_errors():
    with pytest.raises(InputError, match="unknown source"):
        parse_spec("parquet:x")
    with pytest.raises(InputError, match="needs a path"):
        parse_spec("gsm8k")
