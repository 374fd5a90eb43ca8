"""Seed file loaders on the real benchmark files and on malformed copies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.errors import InputError
from tasks.sources.gsm8k import load_gsm8k
from tasks.sources.tatqa import load_tatqa, render_table


def test_gsm8k_real_files(shared_data: Path) -> None:
    train = load_gsm8k(shared_data / "gsm8k" / "train.jsonl")
    assert len(train) == 7473
    assert len(load_gsm8k(shared_data / "gsm8k" / "test.jsonl")) == 1319
    first = train[0]
    assert first.source == "gsm8k" and first.context == ""
    assert first.gold_answer == "72" and first.difficulty == 2
    assert first.source_id == "gsm8k:train.jsonl:1"
    assert first.meta["solution"].endswith("#### 72")
    # train.jsonl line 346 writes its final answer with a thousands separator.
    assert train[345].gold_answer == "1080"
    assert all(q.gold_answer and "," not in q.gold_answer for q in train)
    assert all(q.difficulty and q.difficulty >= 1 for q in train)


def test_gsm8k_limit(shared_data: Path) -> None:
    assert len(load_gsm8k(shared_data / "gsm8k" / "train.jsonl", limit=5)) == 5


def test_tatqa_real_files(shared_data: Path) -> None:
    dev = load_tatqa(shared_data / "tatqa" / "tatqa_dataset_dev.json")
    assert len(dev) == 1668
    assert len(load_tatqa(shared_data / "tatqa" / "tatqa_dataset_test_gold.json")) == 1663
    by_uid = {q.meta["uid"]: q for q in dev}
    change = by_uid["eb787966-fa02-401f-bfaf-ccabf3828b23"]
    assert change.gold_answer == "-12.6"
    assert change.source_id == "tatqa:eb787966-fa02-401f-bfaf-ccabf3828b23"
    assert change.meta["derivation"] == "44.1-56.7" and change.meta["scale"] == "million"
    assert change.context.startswith("|  |  | Years Ended September 30, |  |\n| --- |")
    assert "\n\nSales by Contract Type:" in change.context
    assert change.context.index("Sales by Contract") < change.context.index("On a fixed-price")
    types = {q.meta["answer_type"] for q in dev}
    assert types == {"span", "multi-span", "arithmetic", "count"}
    for q in dev:
        if q.meta["answer_type"] in ("span", "multi-span"):
            assert isinstance(json.loads(q.gold_answer), list)
        else:
            assert float(q.gold_answer) == float(q.meta["answer"])


def test_render_table_escapes_pipes_and_pads_rows() -> None:
    table = render_table([["a", "b|c"], ["1"], ["x\ny", "2", "3"]])
    assert table.splitlines() == [
        "| a | b\\|c |  |",
        "| --- | --- | --- |",
        "| 1 |  |  |",
        "| x y | 2 | 3 |",
    ]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


GOOD = json.dumps({"question": "q?", "answer": "1+1=<<1+1=2>>2\n#### 2"})


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([GOOD, "", GOOD, '{"question": "q?" "answer": "x"}'],
         ":4: invalid JSON (Expecting ',' delimiter)"),
        ([GOOD, json.dumps({"answer": "#### 2"})], ":2: missing field 'question'"),
        ([json.dumps({"question": "q?"})], ":1: missing field 'answer'"),
        ([json.dumps({"question": 5, "answer": "#### 2"})],
         ":1: field 'question' must be a non-empty string"),
        ([json.dumps({"question": "q?", "answer": "no final"})],
         ":1: field 'answer' has no '#### ' final answer"),
        ([json.dumps({"question": "q?", "answer": "#### two"})],
         ":1: field 'answer' final answer 'two' is not a number"),
        (["[1, 2]"], ":1: expected a JSON object, got list"),
    ],
)
def test_gsm8k_malformed(tmp_path: Path, lines: list[str], message: str) -> None:
    path = _write(tmp_path / "x.jsonl", "\n".join(lines) + "\n")
    with pytest.raises(InputError) as err:
        load_gsm8k(path)
    assert str(err.value) == f"{path}{message}"
    assert "\n" not in str(err.value)


def test_gsm8k_blank_lines_are_skipped_and_line_numbers_kept(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.jsonl", f"\n{GOOD}\n   \n{GOOD}\n")
    assert [q.source_id for q in load_gsm8k(path)] == ["gsm8k:x.jsonl:2", "gsm8k:x.jsonl:4"]


def test_missing_files(tmp_path: Path) -> None:
    for loader in (load_gsm8k, load_tatqa):
        with pytest.raises(InputError, match=r"nope\.json: no such file$"):
            loader(tmp_path / "nope.json")


def _block(**question: object) -> dict:
    return {
        "table": {"uid": "t1", "table": [["", "2019"], ["Revenue", "5"]]},
        "paragraphs": [{"uid": "p2", "order": 2, "text": "Second."},
                       {"uid": "p1", "order": 1, "text": "First."}],
        "questions": [question],
    }


def test_tatqa_small_file(tmp_path: Path) -> None:
    q = {"uid": "q1", "question": "Revenue?", "answer": ["5"], "answer_type": "span",
         "answer_from": "table", "scale": "", "derivation": ""}
    path = _write(tmp_path / "t.json", json.dumps([_block(**q)]))
    (question,) = load_tatqa(path)
    assert question.context == (
        "|  | 2019 |\n| --- | --- |\n| Revenue | 5 |\n\nFirst.\n\nSecond."
    )
    assert question.gold_answer == '["5"]' and question.source_id == "tatqa:q1"
    assert question.meta["uid"] == "q1" and question.meta["answer_from"] == "table"


def test_tatqa_bad_json_names_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.json", '[\n  {"table": {"uid": 1}\n  "x": 2}\n]')
    with pytest.raises(InputError) as err:
        load_tatqa(path)
    assert str(err.value) == f"{path}:3:3: invalid JSON (Expecting ',' delimiter)"


def test_tatqa_missing_question_names_uid_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.json", json.dumps([_block(uid="q7", answer=["5"])]))
    with pytest.raises(InputError) as err:
        load_tatqa(path)
    assert str(err.value) == f"{path}: context 0 question 0 (uid q7): missing field 'question'"


def test_tatqa_structure_errors(tmp_path: Path) -> None:
    cases = [
        ({"a": 1}, ": expected a JSON array of contexts"),
        ([{"paragraphs": [], "questions": []}], ": context 0: missing field 'table'"),
        ([{"table": {"table": []}, "paragraphs": []}], ": context 0: missing field 'questions'"),
    ]
    for data, message in cases:
        path = _write(tmp_path / "t.json", json.dumps(data))
        with pytest.raises(InputError) as err:
            load_tatqa(path)
        assert str(err.value) == f"{path}{message}"
