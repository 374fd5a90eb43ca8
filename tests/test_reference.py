"""Unit tests for the reference teacher: gold annotations -> programs that set `ans`."""

from __future__ import annotations

import json

import pytest

from tasks.answers import answers_match
from tasks.sources.tatqa import load_tatqa
from tasks.teachers.reference import (
    UnsafeExpression,
    evaluate,
    parse_arithmetic,
    reference_program,
    reference_samples,
    sanitize_expression,
)
from tasks.types import Question, Rejection


def run(program: str) -> object:
    """Reference programs are generated from validated ASTs; the sandbox is tested elsewhere."""
    env: dict[str, object] = {}
    exec(program, {"__builtins__": {"len": len}}, env)  # noqa: S102 - trusted test input
    return env["ans"]


def gsm8k(question: str, solution: str) -> Question:
    final = solution.rsplit("####", 1)[1].strip().replace(",", "")
    return Question(text=question, source="gsm8k", gold_answer=final, meta={"solution": solution})


def tatqa(
    derivation: str, answer: object, answer_type: str = "arithmetic", scale: str = ""
) -> Question:
    gold = json.dumps(answer) if answer_type in ("span", "multi-span") else str(answer)
    meta = {"uid": "u1", "answer_type": answer_type, "scale": scale, "derivation": derivation}
    return Question(text="What?", source="tatqa", context="| a |", gold_answer=gold, meta=meta)


NATALIA = gsm8k(
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips "
    "in May. How many clips did Natalia sell altogether in April and May?",
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72",
)


def test_gsm8k_annotations_become_steps_and_later_literals_become_names() -> None:
    program = reference_program(NATALIA)
    assert program == "step_1 = 48 / 2\nstep_2 = 48 + step_1\nans = step_2\n"
    assert run(program) == 72


def test_gsm8k_sanitizes_leading_dots_and_zeros() -> None:
    q = gsm8k(
        "Weng earns $12 an hour. She babysat 50 minutes. How much did she earn?",
        "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\n"
        "Working 50 minutes, she earned 0.2 x 50 = $<<.2*050=10>>10.\n#### 10",
    )
    program = reference_program(q)
    assert "step_2 = step_1 * 50" in program
    assert run(program) == pytest.approx(10)


def test_gsm8k_unannotated_final_equation_is_used() -> None:
    # train.jsonl line 24: the last step "20/4 = $5" carries no <<>> annotation.
    q = gsm8k(
        "Ann spent $75: 5 shorts at $7, 2 pairs of shoes at $10 and 4 tops. How much was a top?",
        "She bought 5 shorts at $7 each so 5*7=$<<5*7=35>>35\n"
        "She bought 2 pair of shoes at $10 each so 2*10=$<<2*10=20>>20\n"
        "The shorts and shoes cost her 35+20 = $<<35+20=55>>55\n"
        "We know she spent 75 total and the shorts and shoes cost $55 which left a difference of "
        "75-55 = $<<75-55=20>>20\n"
        "She bought 4 tops for a total of $20 so 20/4 = $5\n#### 5",
    )
    program = reference_program(q)
    assert program.splitlines()[-2:] == ["step_5 = step_4 / 4", "ans = step_5"]
    assert run(program) == 5


def test_gsm8k_prose_with_units_and_unicode_minus() -> None:
    q = gsm8k(
        "Ice cream: 10 cartons at $4, yogurt: 4 cartons at $1. How much more on ice cream?",
        "The cost of the ice cream is 10 × $4 = $<<10*4=40>>40.\n"
        "The cost of the frozen yoghurt is 4 × $1 = $<<4*1=4>>4.\n"
        "Caleb spent $40 \u2212 $4 = $36 more on ice cream than on frozen yogurt.\n#### 36",
    )
    assert run(reference_program(q)) == 36


def test_gsm8k_prose_that_is_algebra_is_ignored() -> None:
    # train.jsonl line 290: "11x+15=301" is not arithmetic; the value check drops it.
    q = gsm8k(
        "There are 301 cars: Chevys, Fords, Buicks. How many Buicks?",
        "Let x represent the number of Chevys\nFords:3+2x\nBuicks:4(3+2x)=12+8x\n"
        "Total:x+3+2x+12+8x=301\n11x+15=301\n11x=286\nx=<<26=26>>26\n"
        "Buicks:12+8(26)=220\n#### 220",
    )
    program = reference_program(q)
    assert "x" not in program.replace("ans", "")
    assert run(program) == 220


def test_gsm8k_percent_in_prose() -> None:
    q = gsm8k(
        "Bill won 63% of 200 games and 57 of the next 100. What percent did he win?",
        "Wins: 200 games * 63% = <<200*63*.01=126>>126 games\n"
        "Total wins: 57 games + 126 games = <<57+126=183>>183 games\n"
        "Total: 200 games + 100 games = <<200+100=300>>300 games\n"
        "Percentage: 183 games / 300 games * 100% = 61%\n#### 61",
    )
    assert run(reference_program(q)) == pytest.approx(61)


def test_gsm8k_answer_is_the_last_step_equal_to_gold() -> None:
    q = gsm8k(
        "Tom has 3 bags of 4 apples. How many apples?",
        "He has 3*4=<<3*4=12>>12 apples.\nCheck: 12/4=<<12/4=3>>3 bags.\n#### 12",
    )
    assert reference_program(q) == "step_1 = 3 * 4\nans = step_1\n"


def test_gsm8k_rejections() -> None:
    none = reference_program(gsm8k("How many?", "Twelve eggs.\n#### 12"))
    assert isinstance(none, Rejection)
    assert (none.reason, none.stage) == ("no_annotations", "teacher")
    # The final step happens in words: no faithful program, so no guess either.
    words = reference_program(gsm8k("How many cents?", "It costs 1/4=<<1/4=0.25>>0.25\n#### 25"))
    assert isinstance(words, Rejection) and words.reason == "answer_not_in_steps"
    for evil in ("__import__('os').system('id')", "open('x').read()", "(1).real", "a+1"):
        bad = reference_program(gsm8k("?", f"So <<{evil}=1>>1\n#### 1"))
        assert isinstance(bad, Rejection)
        assert (bad.reason, bad.detail) == ("unparseable_annotation", f"{evil}=1")
    q = gsm8k("?", "So <<1/0=1>>1\n#### 1")
    zero = reference_program(q)
    assert isinstance(zero, Rejection) and zero.reason == "annotation_eval_error"
    assert zero.item_id == q.question_id
    huge = reference_program(gsm8k("?", "So <<10**10**10=1>>1\n#### 1"))
    assert isinstance(huge, Rejection) and huge.reason == "annotation_eval_error"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,234 + 5", "1234 + 5"),
        ("$40 − $4", "40 - 4"),
        ("0.2 x 50", "0.2 * 50"),
        ("6 ÷ 3", "6 / 3"),
        (".5*08", "0.5*8"),
        ("8(26)", "8*(26)"),
        ("50%*10", "(50 / 100)*10"),
        ("7 % 3", "7 % 3"),
        ("[(1+2)/2]", "((1+2)/2)"),
        ("2^3", "2**3"),
    ],
)
def test_sanitize_expression(text: str, expected: str) -> None:
    assert sanitize_expression(text) == expected


@pytest.mark.parametrize(
    "expr",
    ["abs(-1)", "x.y", "__import__('os')", "[1]", "'a'", "1 if 1 else 2", "a", "True + 1",
     "lambda: 1", "1 < 2", "1j", "(yield)"],
)
def test_parse_arithmetic_rejects_non_arithmetic(expr: str) -> None:
    with pytest.raises(UnsafeExpression):
        parse_arithmetic(expr)


def test_parse_arithmetic_allows_earlier_steps() -> None:
    tree = parse_arithmetic("-(step_1 + 2) ** 2 // 3 % 5", {"step_1"})
    assert evaluate(tree, {"step_1": 1}) == (-((1 + 2) ** 2)) // 3 % 5


@pytest.mark.parametrize(
    ("derivation", "answer", "scale", "program"),
    [
        ("44.1-56.7", -12.6, "million", "ans = 44.1 - 56.7\n"),
        ("(44.1-56.7)/56.7", -22.22, "percent", "ans = (44.1 - 56.7) / 56.7 * 100\n"),
        ("(5,829 - 5,735)/5,735", 1.64, "percent", "ans = (5829 - 5735) / 5735 * 100\n"),
        ("$255,235 + $255,269 ", 510504, "thousand", "ans = 255235 + 255269\n"),
        ("34% + 11% ", 45, "percent", "ans = 34 + 11\n"),
        ("(2.7%+2.0%+1.0%)/3", 1.9, "percent", "ans = (2.7 + 2.0 + 1.0) / 3\n"),
        ("[(166+178)/2] - [(57+44)/2]", 121.5, "million",
         "ans = (166 + 178) / 2 - (57 + 44) / 2\n"),
        ("-1.9-(-2.2)", 0.3, "million", "ans = -1.9 - -2.2\n"),
        ("(3.50\u22124.33)/4.33", -19.17, "percent", "ans = (3.5 - 4.33) / 4.33 * 100\n"),
        ("60.3 million + 32,137 thousand ", 92437, "thousand", "ans = 60.3 * 1000 + 32137\n"),
        # dev set: gold 0.08 with scale "percent" is really a fraction (3,313/39,784 = 0.0833)
        ("$3,313/$39,784", 0.08, "percent", "ans = 3313 / 39784\n"),
        # dev set: 29,816/48,881 = 60.997%, gold 61 (two-decimal rounding in the JSON float)
        ("$29,816/$48,881", 61, "percent", "ans = 29816 / 48881 * 100\n"),
    ],
)
def test_tatqa_arithmetic(derivation: str, answer: float, scale: str, program: str) -> None:
    q = tatqa(derivation, answer, scale=scale)
    assert reference_program(q) == program
    assert answers_match(run(program), q.gold_answer or "", scale=scale)


def test_tatqa_rejections() -> None:
    span = reference_program(tatqa("1,496.5>1,202.9", ["2019"], "span"))
    assert isinstance(span, Rejection)
    assert (span.reason, span.detail, span.stage) == ("non_arithmetic", "span", "teacher")
    multi = reference_program(tatqa("", ["a", "b"], "multi-span"))
    assert isinstance(multi, Rejection) and multi.detail == "multi-span"
    words = "the sum of revenue and costs"
    prose = reference_program(tatqa(words, 5))
    assert isinstance(prose, Rejection)
    assert (prose.reason, prose.detail) == ("unparseable_derivation", words)
    # dev set uid 'b992...': the derivation gives -185 but the gold says -43.
    wrong = reference_program(tatqa("-114 - (71)", -43, scale="million"))
    assert isinstance(wrong, Rejection) and wrong.reason == "derivation_mismatch"
    evil = reference_program(tatqa("__import__('os').getpid()", 5))
    assert isinstance(evil, Rejection) and evil.reason == "unparseable_derivation"


def test_tatqa_count_counts_the_listed_items() -> None:
    program = reference_program(tatqa("2018##2017", "2", "count"))
    assert program == "items = ['2018', '2017']\nans = len(items)\n"
    assert run(program) == 2
    mismatch = reference_program(tatqa("Impairment charges", "2", "count"))
    assert isinstance(mismatch, Rejection) and mismatch.reason == "non_arithmetic"


def test_gold_program_is_returned_as_given_and_others_have_none() -> None:
    given = Question(text="?", source="procedural", gold_program="ans = 1 + 1\n", gold_answer="2")
    assert reference_program(given) == "ans = 1 + 1\n"
    plain = reference_program(Question(text="?", source="jsonl", gold_answer="2"))
    assert isinstance(plain, Rejection) and plain.reason == "no_program"


def test_reference_samples() -> None:
    no_annotations = gsm8k("How many?", "Twelve.\n#### 12")
    samples, rejections = reference_samples([NATALIA, no_annotations])
    assert [r.item_id for r in rejections] == [no_annotations.question_id]
    (sample,) = samples
    assert sample.question_id == NATALIA.question_id
    assert (sample.teacher, sample.model, sample.prompt_version, sample.sample_idx) == (
        "reference", "gold", "ref-v1", 0
    )
    assert sample.raw == sample.program and sample.gen_params == {}


def test_every_tatqa_dev_arithmetic_program_reproduces_gold(shared_data) -> None:
    questions = load_tatqa(shared_data / "tatqa" / "tatqa_dataset_dev.json")
    arithmetic = [q for q in questions if q.meta["answer_type"] == "arithmetic"]
    samples, rejections = reference_samples(arithmetic)
    by_id = {q.question_id: q for q in arithmetic}
    for sample in samples:
        q = by_id[sample.question_id]
        assert answers_match(run(sample.program), q.gold_answer, scale=q.meta["scale"]), sample
    # Two dev golds contradict their own derivations (see test_tatqa_rejections).
    assert len(samples) >= 0.99 * len(arithmetic)
    assert {r.reason for r in rejections} <= {"derivation_mismatch"}


def test_gsm8k_bare_literal_annotation_takes_the_prose_in_front_of_it() -> None:
    # train.jsonl: "$20 + $10 = $<<30=30>>30" records only the result of prose arithmetic.
    q = gsm8k(
        "Gary bakes 8 cakes at $2.5 and earns $10 on cupcakes. How much does he earn?",
        "He will earn $2.5 x 8 = $<<2.5*8=20>>20 from the cakes.\n"
        "Hence, Gary will earn a total of $20 + $10 = $<<30=30>>30 from baking.\n#### 30",
    )
    program = reference_program(q)
    assert program == "step_1 = 2.5 * 8\nstep_2 = step_1 + 10\nans = step_2\n"
    assert run(program) == 30
