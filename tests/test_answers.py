"""Unit tests for tasks.answers: parsing, matching and formatting of answers."""

from __future__ import annotations

import math

import pytest

from tasks.answers import answers_match, format_answer, normalize_span, parse_number, parse_scaled


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("72", 72.0),
        ("1,234", 1234.0),
        ("1,234,567.89", 1234567.89),
        ("$1,496.5", 1496.5),
        ("$  1,452.4", 1452.4),
        ("USD 5", 5.0),
        ("€3.50", 3.5),
        ("£7", 7.0),
        ("12.5%", 12.5),
        ("(1,234)", -1234.0),
        ("($5)", -5.0),
        ("\u22123", -3.0),
        ("-$5", -5.0),
        ("$-5", -5.0),
        ("+4", 4.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("1e3", 1000.0),
        ("  42  ", 42.0),
        (3, 3.0),
        (2.5, 2.5),
    ],
)
def test_parse_number_accepts(text: object, expected: float) -> None:
    assert parse_number(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text",
    [None, "", "abc", "1,2", "1, 2", "nan", "inf", "-inf", "1_000", "1.5 million", "--5",
     "2+3", True, False, float("nan"), float("inf"), [1], "__import__('os')"],
)
def test_parse_number_rejects(text: object) -> None:
    assert parse_number(text) is None


def test_parse_scaled_keeps_the_scale_word_separate() -> None:
    assert parse_scaled("1.5 million") == (1.5, "million")
    assert parse_scaled("$2bn") == (2.0, "billion")
    assert parse_scaled("300 thousands") == (300.0, "thousand")
    assert parse_scaled("300") == (300.0, None)
    assert parse_scaled("many millions") is None


@pytest.mark.parametrize(
    ("predicted", "gold", "kwargs"),
    [
        (72, "72", {}),
        (72.0, "72", {}),
        ("72", "72", {}),
        ("1,080", "1080", {}),
        (1080, "1,080", {}),
        ("$5", "5", {}),
        (0.1 + 0.2, "0.3", {}),
        (1.6390, "1.64", {}),  # TAT-QA golds are rounded
        (-22.2222, "-22.22", {}),
        (-1234, "(1,234)", {}),
        (0.125, "12.5", {"scale": "percent"}),  # fraction against a percentage
        (12.5, "12.5", {"scale": "percent"}),
        (0.125, "12.5%", {}),
        ("12.5%", "0.125", {}),
        ("12.5%", "12.5", {"scale": "percent"}),
        (0.60997, "61", {"scale": "percent"}),  # percentages are rounded to two decimals
        (1.5e6, "1.5", {"scale": "million"}),  # raw units against the table's units
        (1.5, "1.5", {"scale": "million"}),
        ("1.5 million", "1500", {"scale": "thousand"}),
        ("1.5 million", "1500000", {}),
        (92437000, "92437", {"scale": "thousand"}),
        (1496.5, '["$1,496.5"]', {"scale": "million"}),  # a numeric one-span answer
        (["fixed-price type", "cost-plus type"], '["Cost-plus type", "fixed-price type"]', {}),
        ('["b", "a"]', '["a", "b"]', {}),
        ("2019", '["2019"]', {}),
        ("  The Company. ", '["the company"]', {}),
        ("Fixed price", "fixed  price", {}),
    ],
)
def test_answers_match(predicted: object, gold: str, kwargs: dict) -> None:
    assert answers_match(predicted, gold, **kwargs)


@pytest.mark.parametrize(
    ("predicted", "gold", "kwargs"),
    [
        (15.36, "15", {}),  # integer golds are exact: no rounding to 0 decimals
        (73, "72", {}),
        (1.66, "1.64", {}),
        (0.125, "12.5", {}),  # no percent context
        (True, "1", {}),  # booleans are not numbers
        (False, "0", {}),
        (None, "0", {}),
        (float("nan"), "1", {}),
        (float("inf"), "1", {}),
        ("nan", "nan", {}),
        (5, None, {}),
        ("abc", "5", {}),
        (1.5e6, "1.5", {}),  # no scale given
        (["a"], '["a", "b"]', {}),
        ("a", '["a", "b"]', {}),
        (2018, '["2019"]', {}),
        ({"x": 1}, "1", {}),
    ],
)
def test_answers_do_not_match(predicted: object, gold: str, kwargs: dict) -> None:
    assert not answers_match(predicted, gold, **kwargs)


def test_tolerances_are_configurable() -> None:
    assert not answers_match(100.5, "100")
    assert answers_match(100.5, "100", rel_tol=0.01)
    assert answers_match(1e-7, "0", abs_tol=1e-6)
    assert not answers_match(1e-5, "0", abs_tol=1e-6)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (35.0, "35"),
        (35, "35"),
        (0.1 + 0.2, "0.3"),
        (2 / 3, "0.666667"),
        (-12.6, "-12.6"),
        (425855.5, "425855.5"),
        (1e20, "100000000000000000000"),
        (1.23e-7, "1.23e-07"),
        (0.0, "0"),
        ("1,080", "1080"),
        (" 72 ", "72"),
        ("fixed-price type", "fixed-price type"),
        (True, "True"),
        ([1.0, "a", 2.5], '[1, "a", 2.5]'),
        (("x",), '["x"]'),
        (None, None),
        (float("nan"), None),
        (math.inf, None),
    ],
)
def test_format_answer(value: object, expected: str | None) -> None:
    assert format_answer(value) == expected


def test_formatted_numbers_parse_back() -> None:
    for value in (1.23e-7, 2 / 3, 1e20, -0.5):
        assert answers_match(parse_number(format_answer(value)), format_answer(value) or "")


def test_normalize_span() -> None:
    assert normalize_span("  The  Company. ") == "the company"
    assert normalize_span("$1,496.5") == "1496.5"
    assert normalize_span(3.0) == "3"
