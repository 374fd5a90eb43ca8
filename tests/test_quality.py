from __future__ import annotations

import pandas as pd

from quality.suites import curated_suite
from quality.validate import validate_candidates


def _row(i: int, **kw) -> dict:
    row = {"question_id": f"q{i}", "question": f"What is {i} times three, exactly?",
           "context": "", "program": f"ans = {i} * 3", "answer": str(i * 3)}
    row.update(kw)
    return row


def test_row_failures_become_rejections_named_after_the_expectation():
    rows = [_row(i) for i in range(20)]
    rows[1]["program"] = None
    rows[2]["program"] = "ans = (1 +"          # does not compile
    rows[3]["answer"] = "inf"                  # not finite
    rows[4]["question"] = "short"              # under the length bound
    rows[5]["question_id"] = "q6"              # duplicated id: the second copy goes
    out = validate_candidates(pd.DataFrame(rows), max_rejected_fraction=0.5)
    reasons = {r.item_id: r.reason for r in out.rejections}
    assert reasons["q1"] == "expect_column_values_to_not_be_null(program)"
    assert reasons["q2"] == "expect_column_values_to_be_in_set(program_compiles)"
    assert reasons["q3"] == "expect_column_values_to_be_in_set(answer_is_finite)"
    assert reasons["q4"] == "expect_column_value_lengths_to_be_between(question)"
    assert reasons["q6"] == "expect_column_values_to_be_unique(question_id)"
    assert all(r.stage == "quality" for r in out.rejections)
    assert out.success
    assert "q0" in out.kept_ids and "q1" not in out.kept_ids
    assert out.statistics["rows"] == 20


def test_gate_fails_when_too_many_rows_fail():
    rows = [_row(i, program=None) if i < 6 else _row(i) for i in range(10)]
    out = validate_candidates(pd.DataFrame(rows), max_rejected_fraction=0.2)
    assert not out.success
    assert any(r["expectation"].startswith("gate:") and not r["success"] for r in out.results)


def test_suite_is_real_gx():
    suite = curated_suite()
    names = {e.expectation_type for e in suite.expectations}
    assert "expect_column_values_to_not_be_null" in names
    assert len(suite.expectations) >= 8
