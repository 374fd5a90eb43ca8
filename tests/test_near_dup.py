"""The optional near-duplicate-context stage: the same question over the same table with a
reformatted paragraph leaves with its own reason; the same question over another table
stays; off by default."""

from __future__ import annotations

import json

import pytest

from flows.refresh import RefreshConfig, refresh
from tasks.near_dup import REASON, NearDupConfig, NearDupContexts
from tasks.types import Question
from warehouse import Store

TABLE = ("| Line item | 2019 | 2020 |\n|---|---|---|\n| Revenue | 1,200 | 1,350 |\n"
         "| Cost of sales | 700 | 760 |\n| Gross profit | 500 | 590 |\n")
PARAGRAPH = ("Revenue grew in 2020 because the company opened two new stores in the northern "
             "region and raised prices on its main product line by about four percent. Cost "
             "of sales rose with volume, while freight costs stayed flat over the year.")
REWORDED = PARAGRAPH.replace("opened two new stores", "opened 2 new stores")
OTHER = TABLE.replace("1,200", "2,400").replace("1,350", "2,050").replace("500", "1,700")
TEXT = "What was the change in revenue from 2019 to 2020?"


def _q(context: str, sid: str) -> Question:
    return Question(text=TEXT, source="jsonl", context=context, gold_answer="150",
                    gold_program="ans = 1350 - 1200", source_id=sid)


def test_reformatted_paragraph_is_a_near_duplicate_another_table_is_not():
    a, b = _q(TABLE + PARAGRAPH, "a"), _q(TABLE + REWORDED, "b")
    c = _q(OTHER + PARAGRAPH.replace("four", "nine"), "c")
    d = Question(text="What was gross profit in 2020?", source="jsonl",
                 context=TABLE + REWORDED, source_id="d")  # another question: untouched
    out = NearDupContexts(NearDupConfig(near_duplicate_contexts=True)).run([a, b, c, d])
    (rej,) = out.rejections
    first, second = sorted([a, b], key=lambda q: q.question_id)
    assert rej.item_id == second.question_id and rej.reason == REASON
    assert first.question_id in rej.detail and "Jaccard" in rej.detail
    assert {q.source_id for q in out.kept} == {first.source_id, "c", "d"}


@pytest.mark.usefixtures("prefect_harness")
def test_refresh_drops_them_only_when_asked(tmp_path):
    rows = [{"question": TEXT, "context": ctx, "answer": "150",
             "program": "ans = 1350 - 1200", "id": k}
            for k, ctx in enumerate([TABLE + PARAGRAPH, TABLE + REWORDED])]
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    kept = []
    for on in (False, True):
        wh = tmp_path / f"w{on}.duckdb"
        out = refresh(RefreshConfig(source=f"jsonl:{path}", warehouse=str(wh),
                                    near_duplicate_contexts=on))
        kept.append(out.counts["kept"])
        reasons = Store(wh).rejection_reasons()
        assert (("near_dup", REASON, 1) in reasons) == on
    assert kept == [2, 1]
