"""Tables as the student reads them (tasks/tables.py), on real TAT-QA tables of each header
shape, picked by uid from ../shared/data and rendered through the same path as training and
evaluation (load_questions -> Question.context -> student_prompt). Shapes and counts:
bench/table_shapes.py, BENCHMARKS.md "TAT-QA header shapes"."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from tasks.render import render_prompt, student_prompt
from tasks.sources import load_questions
from tasks.tables import is_number, is_units, is_value, read_table, split_cells, tables_as_rows

FILES = {"dev": "tatqa_dataset_dev.json", "test": "tatqa_dataset_test_gold.json"}


@cache
def _contexts(path: Path) -> dict[str, str]:
    return {q.meta["table_uid"]: q.context for q in load_questions(f"tatqa:{path}")}


def _student_lines(shared_data: Path, split: str, uid: str) -> list[str]:
    context = _contexts(shared_data / "tatqa" / FILES[split])[uid]
    prompt = student_prompt("Q?", context)
    return prompt.split("\n\nQuestion:")[0].splitlines()


# (shape, split, table uid, caption lines said before the rows, a rendered row)
CASES = [
    ("one header row, label cell empty", "dev", "285a1ced-709e-4f45-a227-b6cd04e725f9", [],
     "Impairment charges: 2019 (1) = $94.2; 2018 = $394.0; 2017 (2) = $211.4"),
    ("one header row naming the label column (dropped, as before)", "dev",
     "e9a946ce-72a9-4b42-86d6-4d91fceb14db", [],
     "Cash and equivalents: 2019 = $130; 2018 = $91"),
    ("one header row, units in the label cell", "dev",
     "8749fc7b-19fb-4014-8eed-f96a05da50cf", ["(In Millions)"],
     "Mobileye: Dec 29, 2018 = 10,290; Acquisitions = —; Transfers = —; Other = —; "
     "Dec 28, 2019 = 10,290"),
    ("group cell centred over the years", "dev", "3ffd9053-a45d-491c-957a-1b2fa0af0570",
     ["Years Ended September 30,"],
     "Fixed Price: 2019 = $ 1,452.4; 2018 = $ 1,146.2; 2017 = $ 1,036.9"),
    ("two groups over repeated years, three rows", "dev",
     "52164b70-6973-4844-af6a-76e8f1298d64", ["September 30,"],
     "Discount rate: Domestic 2019 = 4.00%; Domestic 2018 = 3.75%; International 2019 = "
     "1.90%; International 2018 = 2.80%"),
    ("centred groups over years then changes", "dev", "98db5a3a-5b9e-4f91-aea4-bdc2672f1661",
     [], "Net sales: December 31, 2019 = $ 93,662; December 31, 2018 = $ 103,350; "
         "Change $ = $ (9,688); Change % = (9.4%)"),
    ("groups, then a units row in the value columns", "test",
     "718c2f0e3e14824e3366330fd18eb128", ["£m"],
     "Performance Share Plan (‘PSP’): Group 2019 = 2.1; Group 2018 = 1.8; Company 2019 = "
     "1.3; Company 2018 = 0.7"),
    ("three rows with a centred units row", "dev", "53474060-2736-46cb-bd97-1eb42f0ff3c1",
     ["Fiscal", "(in millions)"], "Automotive: 2019 = $ 5,686; 2018 = $ 6,092; 2017 = $ 5,228"),
    ("four rows: years over amount and share", "dev",
     "65264b50-696b-4a33-ab5b-16210448870f",
     ["Fiscal years ended July 31,", "(In thousands, except percentages)"],
     "License and subscription: 2019 Amount = $ 64,798; 2019 % of total revenue = 9%; "
     "2018 Amount = $ 35,452; 2018 % of total revenue = 5%; Change ($) = 29,346; "
     "Change (%) = 83"),
    ("title row: only the first cell", "dev", "6bf238a5-0a3e-492d-91f8-7f62d3b37fba",
     ["Income statement expense"], "Defined contribution schemes: 2019 €m = 166; "
                                   "2018 €m = 178; 2017 €m = 192"),
    ("label-column cells beside the headings", "dev", "22f634eb-a76a-424d-b8d3-3994dab52826",
     ["($ in millions)", "For the year ended December 31:"],
     "Cost: 2019 = $100; 2018 = $82; 2017 = $91"),
    ("years with footnote marks under a shared group", "test",
     "0e833c1fe5fb6e786cd372c7255eaf6e",
     ["2018 FULL-YEAR RESULTS COMPARED TO 2017", "Years ended December 31",
      "(In millions of dollars, except margins)"], "Wireless: 2018 1 = 9,200; 2017 1 = 8,569; "
                                                   "%Chg = 7"),
    ("first body row of words (`None`) is not a header", "dev",
     "89cf13a2-6d08-48be-a45d-2346422d5c38", ["For the Year Ended",
                                              "VMware Employee Stock Purchase Plan"],
     "Dividend yield: January 31, 2020 = None; February 1, 2019 = None; "
     "February 2, 2018 = None"),
]


@pytest.mark.parametrize("shape,split,uid,captions,row", CASES, ids=[c[0] for c in CASES])
def test_real_table_cells_are_named_by_their_full_header_path(
        shared_data: Path, shape: str, split: str, uid: str, captions: list[str],
        row: str) -> None:
    lines = _student_lines(shared_data, split, uid)
    assert lines[:len(captions)] == captions
    assert row in lines
    # No value is left unnamed, and no header row shows up as a row of its own.
    assert not any(re.search(r"\bcolumn \d+ =", line) for line in lines)


def test_every_value_of_a_group_table_names_group_and_year(shared_data: Path) -> None:
    """Each value cell of the Domestic/International table, read from the raw file, is in the
    student's text under `<group> <year> = <value>` on its row's line."""
    import json

    blocks = json.loads((shared_data / "tatqa" / FILES["dev"]).read_text())
    [block] = [b for b in blocks if b["table"]["uid"] == "52164b70-6973-4844-af6a-76e8f1298d64"]
    rows = block["table"]["table"]
    lines = _student_lines(shared_data, "dev", block["table"]["uid"])
    names = ["Domestic 2019", "Domestic 2018", "International 2019", "International 2018"]
    checked = 0
    for label, *values in rows[3:]:
        [line] = [x for x in lines if x.startswith(f"{label}:") or x == label]
        for name, value in zip(names, values, strict=True):
            if value.strip():
                assert f"{name} = {' '.join(value.split())}" in line
                checked += 1
    assert checked >= 8


def test_teacher_view_keeps_the_markdown_table(shared_data: Path) -> None:
    context = _contexts(shared_data / "tatqa" / FILES["dev"])[
        "52164b70-6973-4844-af6a-76e8f1298d64"]
    teacher = render_prompt("Q?", context)
    assert teacher.startswith(context.strip() + "\n\nQuestion: Q?")
    assert "|  | Domestic |  | International |  |\n| --- |" in teacher
    assert "|  | 2019 | 2018 | 2019 | 2018 |" in teacher
    assert "Domestic 2019 =" not in teacher


def _one_row_reading(context: str) -> str:
    """tasks/render.py:tables_as_rows as it was before multi-row headers (commit 4da45ea),
    verbatim: the reference procedural tables must still match."""
    separator = re.compile(r"\s*\|?[\s:|-]+\|?\s*")

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    lines = context.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        if (lines[i].lstrip().startswith("|") and i + 1 < len(lines)
                and "-" in lines[i + 1] and separator.fullmatch(lines[i + 1])):
            header = cells(lines[i])
            i += 2
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                label, *values = cells(lines[i])
                pairs = [f"{(header[j] if j < len(header) else '') or f'column {j}'} = {v}"
                         for j, v in enumerate(values, start=1) if v]
                out.append(f"{label}: {'; '.join(pairs)}" if pairs else label)
                i += 1
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


@pytest.mark.parametrize("spec,n,seed", [("procedural", 2000, 7),
                                         ("procedural:heldout", 500, 0),
                                         ("procedural", 400, 3)])
def test_procedural_tables_render_exactly_as_before(spec: str, n: int, seed: int) -> None:
    """Procedural tables have one header row (checked), so `make run` and the learning
    curves on procedural data see the same prompts as before."""
    questions = load_questions(spec, n=n, seed=seed)
    contexts = {q.context for q in questions}
    for context in contexts:
        table = [split_cells(x) for x in context.splitlines() if x.startswith("|")]
        assert read_table([table[0], *table[2:]]).header_rows == 1
        assert tables_as_rows(context) == _one_row_reading(context)


def test_cell_kinds() -> None:
    assert all(is_number(c) for c in ["$ 1,452.4", "(3.1)", "4.00%", "-34.8", "$(304,397)",
                                      "(38)%", "1,234"])
    assert not any(is_number(c) for c in ["2019", "2 0 1 8", "2018 1", "2019 (1)",
                                          "December 31, 2019", "F18 (3)", "1 to 4", ""])
    assert all(is_value(c) for c in ["—", "$ -", "n/a", "None", "- - %", "12"])
    assert all(is_units(c) for c in ["£m", "$ million", "(In thousands)", "US$000", "$'000",
                                     "S$ Mil", "(in millions, except per share data)"])
    assert not any(is_units(c) for c in ["2019", "Domestic", "Change", "% Change", ""])
    # A table of words only keeps its markdown header as the only header row.
    words = [["Name", "Role"], ["A. Smith", "Chair"], ["B. Jones", "Director"]]
    assert read_table(words).header_rows == 1
    assert split_cells(r"| a \| b | c |") == ["a | b", "c"]
