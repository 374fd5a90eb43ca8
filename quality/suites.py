"""Great Expectations suites as code. Row-level expectations name the rows that fail (they
become rejections); batch-level expectations gate the publish of a whole batch."""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

CURATED_SUITE = "curated_batch"
GATE_SUITE = "curated_batch_gate"

# Bounds a usable SFT example stays within; beyond them an item is almost always a parse
# or source bug (an empty question, a whole document pasted as context, a runaway program).
QUESTION_CHARS = (10, 2_000)
CONTEXT_CHARS = (0, 20_000)
PROGRAM_CHARS = (5, 4_000)


def curated_suite() -> gx.ExpectationSuite:
    """Row-level checks over candidate examples (one row per question)."""
    suite = gx.ExpectationSuite(name=CURATED_SUITE)
    for column in ("question", "program", "answer"):
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column))
    suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="question_id"))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="answer_is_finite",
                                                          value_set=[True]))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="program_compiles",
                                                          value_set=[True]))
    for column, (lo, hi) in (("question", QUESTION_CHARS), ("context", CONTEXT_CHARS),
                             ("program", PROGRAM_CHARS)):
        suite.add_expectation(gxe.ExpectColumnValueLengthsToBeBetween(
            column=column, min_value=lo, max_value=hi))
    return suite


def gate_suite(min_rows: int, max_rejected_fraction: float) -> gx.ExpectationSuite:
    """Batch-level checks over a one-row summary of the validated batch."""
    suite = gx.ExpectationSuite(name=GATE_SUITE)
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="kept_rows",
                                                            min_value=min_rows))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(
        column="rejected_fraction", min_value=0.0, max_value=max_rejected_fraction))
    return suite
