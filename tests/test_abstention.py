"""Abstention: the procedural generator's unanswerable variants (a year or line item the
table lacks, target "I don't know"), the sandbox and the check accept the target, and
evaluation scores abstention (+1 right, 0 abstain, -1 wrong) with precision and recall."""

from __future__ import annotations

import re

import pytest

from flows.refresh import RefreshConfig, refresh
from tasks.experiments.abstention import ABSTAIN, is_abstention
from tasks.experiments.evaluate import score
from tasks.sources import load_questions
from tasks.sources.procedural import generate_questions
from warehouse import Store


def test_unanswerable_variants_on_request():
    plain = generate_questions(200, seed=5)
    mixed = load_questions("procedural:train:unanswerable=0.25", n=200, seed=5)
    assert mixed == generate_questions(200, seed=5, unanswerable=0.25)  # deterministic
    unans = [q for q in mixed if q.meta.get("unanswerable")]
    assert 30 <= len(unans) <= 70
    # The others are exactly the items generated without the option.
    assert [q.question_id for q, p in zip(mixed, plain, strict=True)
            if not q.meta.get("unanswerable")] == \
        [p.question_id for q, p in zip(mixed, plain, strict=True)
         if not q.meta.get("unanswerable")]
    kinds = set()
    for q in unans:
        assert q.gold_answer == ABSTAIN and q.context
        kinds.add(q.meta["unanswerable_kind"])
        # Either the question asks for something else, or it is the same question over a
        # text without a fact it needs (a row its answerable program reads).
        assert (q.text == q.meta["answerable_text"]) == \
            (q.meta["unanswerable_kind"] == "removed_fact")
        reason = q.meta["abstain_reason"]
        table = q.meta["table"]
        if q.meta["unanswerable_kind"] == "missing_year":
            year = int(re.search(r"year (\d{4})", reason).group(1))
            assert year not in table["columns"] and str(year) in q.text
        else:
            label = re.search(r"line item '(.+)'", reason).group(1)
            assert label not in table["rows"] and f"| {label} |" not in q.context
    assert kinds == {"missing_year", "missing_line_item", "removed_fact"}
    with pytest.raises(ValueError, match="unanswerable=RATE"):
        generate_questions(5, split="train:typo=1")


def test_refresh_verifies_the_abstention_target(warehouse_path, prefect_harness):
    """The reference program of an unanswerable question says "I don't know"; the real
    sandbox runs it and the answer check accepts it against the target."""
    refresh(RefreshConfig(source="procedural:train:unanswerable=0.2", n=60, seed=2,
                          warehouse=str(warehouse_path)))
    _, rows = Store(warehouse_path).query(
        "SELECT s.exec_status, s.predicted, s.correct, q.meta ->> 'abstain_reason' "
        "FROM samples s JOIN questions q USING (question_id) WHERE q.gold_answer = ?",
        [ABSTAIN])
    assert len(rows) >= 5
    assert all(r[:3] == ("ok", ABSTAIN, True) and r[3] for r in rows)


def _fence(program: str) -> str:
    return f"```python\n{program}\n```"


def test_abstention_score_precision_recall():
    qs = load_questions("procedural:heldout:unanswerable=0.5", n=40, seed=1)
    unans = [q for q in qs if q.meta.get("unanswerable")][:4]
    ans = [q for q in qs if not q.meta.get("unanswerable")][:6]
    questions = unans + ans
    idk = _fence(f"ans = {ABSTAIN!r}")
    completions = [
        idk, idk, "I don't know: the table has no such year.",  # 3 right abstentions
        _fence("ans = 12.5"),                                   # answered an unanswerable
        _fence(ans[0].gold_program), _fence(ans[1].gold_program),  # right
        _fence("ans = -1.0e9"),                                 # wrong
        idk,                                                    # abstained, answerable
        "no program at all",                                    # wrong (no program)
        _fence("ans = 1 / 0"),                                  # wrong (error)
    ]
    out = score(questions, completions, eval_set="abstention")
    assert out.correct == 5 and out.accuracy == 0.5
    assert out.abstained == 4 and out.unanswerable == 4
    # +1 x 3 (abstained, unanswerable) - 1 (answered one) + 2 (right) - 3 (wrong) + 0
    assert out.abstention_score == pytest.approx((3 - 1 + 2 - 3) / 10)
    assert out.abstention_precision == pytest.approx(3 / 4)
    assert out.abstention_recall == pytest.approx(3 / 4)
    assert is_abstention("I do not know") and not is_abstention(3.0)


def test_answerable_only_sets_score_as_before():
    qs = generate_questions(5, seed=9, split="heldout")
    out = score(qs, [_fence(q.gold_program) for q in qs])
    assert out.accuracy == 1.0 and out.abstention_score == 1.0
    assert out.abstention_precision is None and out.abstention_recall is None


def test_a_removed_row_must_not_be_derivable():
    """A row removed from the text makes the question unanswerable only when no chain of
    identities gives it back: R&D follows from operating income once cost of sales follows
    from gross profit; without sales and marketing it does not."""
    from tasks.sources.procedural import _removable

    rows = {"revenue", "gross_profit", "research_and_development", "sales_and_marketing",
            "general_and_administrative", "operating_income"}
    assert not _removable("research_and_development", rows)
    assert _removable("research_and_development", rows - {"sales_and_marketing"})
    assert not _removable("gross_profit", {"gross_profit", "revenue", "cost_of_sales"})
    assert _removable("net_income", rows | {"net_income"})
