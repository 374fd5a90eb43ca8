"""Programs as users bring them: public Program-of-Thought releases write `x0 = a - b; ans =
x0 / b` on one line; others assign `ans` in an `if`, from a function, with an annotation or
`+=`. A program that execution and the check have just proved right is curated, whatever its
spelling; a broken one leaves under exactly one reason, decided by execution or the check."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from flows.refresh import RefreshConfig, refresh
from tasks.render import assigns_ans, extract_program
from tasks.sources.tatqa import load_tatqa
from tasks.teachers.reference import reference_program
from tasks.teachers.replies import parse_program
from tasks.types import Rejection
from warehouse import Store

# Each is a correct program for its question (answer 20.0 unless given).
VALID = {
    "pot_one_line": "x0 = 120.5 - 100.5; ans = x0",
    "pot_chain": "x0 = 60.94 - 25.14; x1 = x0 / 25.14; ans = x1 * 100",
    "in_an_if": "a = 120.5\nb = 100.5\nif a > b:\n    ans = a - b\nelse:\n    ans = b - a",
    "function_called_at_the_end": "def solve():\n    return 120.5 - 100.5\n\nans = solve()",
    "annotated": "ans: float = 120.5 - 100.5",
    "augmented": "ans = 0\nfor v in [5.5, 6.5, 8.0]:\n    ans += v",
    "after_comments": "# growth in the segment\n# from the table: 120.5 and 100.5\n"
                      "ans = 120.5 - 100.5",
    "tuple_unpacking": "low, ans = 100.5, 120.5 - 100.5",
}
ANSWERS = {"pot_chain": str((60.94 - 25.14) / 25.14 * 100)}

# Each is broken in one way; the reason it must leave under (and only that one).
BROKEN = {
    "pot_wrong_formula": ("x0 = 120.5 - 100.5; ans = x0 / 120.5", "check", "wrong_answer"),
    "function_never_called": ("def solve():\n    ans = 20.0\n    return ans", "execute",
                              "no_ans"),
    "branch_not_taken": ("if 1 > 2:\n    ans = 20.0", "execute", "no_ans"),
    "syntax_error": ("x0 = (120.5 - ; ans = x0", "execute", "error"),
    "name_not_assigned": ("ans = x0 - 100.5", "execute", "error"),
    "ans_is_none": ("ans = None", "check", "wrong_answer"),
}

# Distinct questions, so that dedup keeps every one of them.
TOPICS = ["warehouse rent", "fleet fuel", "cloud hosting", "legal fees", "sea freight",
          "office coffee", "patent royalties", "crop insurance", "stadium lighting",
          "museum tickets", "orchard irrigation", "satellite bandwidth", "bakery flour",
          "ferry tickets"]


def _row(i: int, style: str, program: str, answer: str) -> dict:
    topic = TOPICS[i]
    return {"id": style, "question": f"By how much did spending on {topic} rise from 2018 "
            f"to 2019 at the {style.replace('_', ' ')} subsidiary?",
            "context": f"| item | 2019 | 2018 |\n| --- | --- | --- |\n| {topic} | 120.5 | 100.5 |",
            "program": program, "answer": answer}


@pytest.mark.usefixtures("prefect_harness")
def test_every_valid_style_is_curated_and_every_broken_one_leaves_once(tmp_path: Path):
    rows = [_row(i, style, program, ANSWERS.get(style, "20.0"))
            for i, (style, program) in enumerate(VALID.items())]
    rows += [_row(len(VALID) + i, style, program, "20.0")
             for i, (style, (program, _, _)) in enumerate(BROKEN.items())]
    path = tmp_path / "styles.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    wh = tmp_path / "wh.duckdb"
    out = refresh(RefreshConfig(source=f"jsonl:{path}", warehouse=str(wh)))
    store = Store(wh)
    _, curated = store.query("SELECT q.source_id FROM curated c "
                             "JOIN questions q USING (question_id)")
    assert out.status == "completed"
    assert sorted(r[0] for r in curated) == sorted(VALID)
    _, rejected = store.query("SELECT q.source_id, r.stage, r.reason FROM rejections r "
                              "JOIN questions q ON q.question_id = r.item_id")
    assert sorted(rejected) == sorted((style, stage, reason)
                                      for style, (_, stage, reason) in BROKEN.items())


_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**",
        ast.FloorDiv: "//", ast.Mod: "%"}


def _pot(program: str) -> str:
    """A straight-line `ans = <expr>` program as public PoT releases write it: one binary
    operation per step (x0, x1, ...), all statements on one line, the last one `ans`."""
    steps: list[tuple[str, str]] = []

    def emit(node: ast.expr) -> str:
        if not isinstance(node, ast.BinOp):
            return ast.unparse(node)
        expr = f"{emit(node.left)} {_OPS[type(node.op)]} {emit(node.right)}"
        steps.append((f"x{len(steps)}", expr))
        return steps[-1][0]

    tree = ast.parse(program)
    assert len(tree.body) == 1 and isinstance(tree.body[0], ast.Assign)
    last = emit(tree.body[0].value)
    steps = steps[:-1] + [("ans", steps[-1][1])] if steps else [("ans", last)]
    return "; ".join(f"{name} = {expr}" for name, expr in steps)


def test_pot_rewrite_is_what_a_pot_release_looks_like():
    assert _pot("ans = (5829 - 5735) / 5735\n") == "x0 = 5829 - 5735; ans = x0 / 5735"
    assert _pot("ans = 3\n") == "ans = 3"


@pytest.mark.usefixtures("prefect_harness")
def test_tatqa_dev_with_pot_programs_is_curated(tmp_path: Path, shared_data: Path):
    """The reported case on real data: TAT-QA dev arithmetic questions with their gold
    programs rewritten in PoT style (`x0 = a - b; ans = x0 / b`), loaded as JSONL. Before
    the fix the samples suite's regex rejected every one of them and the gate published
    nothing."""
    dev = load_tatqa(shared_data / "tatqa" / "tatqa_dataset_dev.json")
    rows = []
    for q in dev:
        if q.meta.get("answer_type") != "arithmetic":
            continue
        program = reference_program(q)
        if isinstance(program, Rejection):
            continue
        pot = _pot(program)
        if ";" not in pot:  # one operation: nothing to chain
            continue
        rows.append({"id": q.meta["uid"], "question": q.text, "context": q.context,
                     "program": pot, "answer": q.gold_answer, "scale": q.meta.get("scale")})
        if len(rows) == 40:
            break
    path = tmp_path / "tatqa_pot.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    wh = tmp_path / "wh.duckdb"
    out = refresh(RefreshConfig(source=f"jsonl:{path}", warehouse=str(wh)))
    counts = out.counts
    assert out.status == "completed" and out.snapshot_id == 1
    assert counts["exec_ok"] == counts["input"] - counts.get("dedup_rejected", 0) \
        - counts.get("decontaminate_rejected", 0)
    # Nothing that executed and matched its gold is refused by a spelling check.
    assert counts.get("quality_rejected", 0) == 0 and counts.get("wrong_answer", 0) == 0
    assert counts["kept"] == counts["exec_ok"] > 30


@pytest.mark.parametrize("text", [
    "x0 = 60.94 - 25.14; ans = x0 / 25.14",
    "The growth is:\nx0 = 60.94 - 25.14; ans = x0 / 25.14\nSo about 142%.",
    "```python\nx0 = 60.94 - 25.14; ans = x0 / 25.14\n```",
    "```python\nans: float = 35.8 / 25.14\n```",
    "```python\nans = 0\nfor v in (1, 2):\n    ans += v\n```",
])
def test_llm_replies_in_pot_style_are_read_back(text: str):
    program = parse_program(text)
    assert program is not None and "ans" in program
    scope: dict = {}
    exec(compile(program, "<test>", "exec"), scope)  # our own literal test programs
    assert "ans" in scope


def test_assigns_ans_reads_every_spelling_and_no_other_name():
    for program in [*VALID.values(), "x = 1; ans = x", "(ans := 3)", "ans, b = 1, 2"]:
        assert assigns_ans(program), program
    for program in ["answer = 3", "x = ans", "print(ans)", "ans == 3", "# ans = 3"]:
        assert not assigns_ans(program), program
    # A student's unfenced one-line PoT answer is still found in its completion.
    assert extract_program("x0 = 4 - 2; ans = x0 / 2") == "x0 = 4 - 2; ans = x0 / 2"
