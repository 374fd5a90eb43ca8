"""SQL of the preferences flow: the samples it reads (grouped by question), and what it writes
(tables `solution_sets`, `preference_pairs`, views `pair_browser`, `verifier_labels`,
`distinct_solutions`; migration 020). A facet of `Store`: `store.preferences`."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from tasks.experiments.subsets import Example
from tasks.preferences.pairs import Group, PreferencePair
from tasks.types import Question, Sample

from .rows import Facet, arrow_rows, attr_columns, filtered, insert_arrow, to_json

if TYPE_CHECKING:
    pass

_PAIR_COLUMNS = {
    **attr_columns("pair_id", "pair_type", "question_id", "chosen_sample_id",
                   "rejected_sample_id", "prompt", "prefix", "chosen", "rejected", "step",
                   "rule", prefix=pa.string(), step=pa.int32()),
    "meta": (lambda p: to_json(p.meta), pa.string()),
}

# Record kinds only this facet writes (tasks/preferences/stages.py).

_SAMPLE_FIELDS = ("sample_id", "question_id", "teacher", "model", "prompt_version",
                  "sample_idx", "gen_params", "program", "exec_status", "exec_error",
                  "predicted", "correct", "meta")


class Preferences(Facet):
    """What the preferences flow reads and writes (`store.preferences`)."""

    # ------------------------------------------------------------------ read
    def groups(self, limit: int | None = None) -> list[Group]:
        """Every question with executed samples, its samples attached (sample_idx order).
        `limit`: the first N questions by question_id."""
        with self.store.connect() as con:
            qrows = con.execute(
                "SELECT question_id, text, source, context, gold_answer, gold_program, "
                "difficulty, source_id, meta FROM questions q WHERE EXISTS (SELECT 1 FROM "
                "samples s WHERE s.question_id = q.question_id AND s.exec_status IS NOT "
                "NULL) ORDER BY question_id" + (" LIMIT ?" if limit else ""),
                [limit] if limit else []).fetchall()
            con.register("g_ids", pa.table({"question_id": [r[0] for r in qrows]}))
            srows = con.execute(
                f"SELECT {', '.join('s.' + f for f in _SAMPLE_FIELDS)} FROM samples s "
                "JOIN g_ids USING (question_id) WHERE s.exec_status IS NOT NULL "
                "ORDER BY s.question_id, s.sample_idx, s.sample_id").fetchall()
        groups = {r[0]: Group(Question(
            text=r[1], source=r[2], context=r[3], gold_answer=r[4], gold_program=r[5],
            difficulty=r[6], source_id=r[7], meta=json.loads(r[8] or "{}"))) for r in qrows}
        for r in srows:
            row = dict(zip(_SAMPLE_FIELDS, r, strict=True))
            row.pop("sample_id")
            row["gen_params"] = json.loads(row["gen_params"] or "{}")
            row["meta"] = json.loads(row["meta"] or "{}")
            row["exec_error"] = row["exec_error"] or ""
            groups[row["question_id"]].samples.append(Sample(**row))
        return list(groups.values())

    def pairs(self, pair_type: str | None = None) -> list[dict[str, Any]]:
        """Stored pairs with their question's source and kind, pair_id order."""
        sql = ("SELECT p.pair_id, p.pair_type, p.question_id, p.chosen_sample_id, "
               "p.rejected_sample_id, p.prompt, p.prefix, p.chosen, p.rejected, p.step, "
               "p.rule, q.source, q.meta ->> 'kind' AS kind FROM preference_pairs p "
               "JOIN questions q USING (question_id)")
        cols, rows = self.store.query(*filtered(sql, {"p.pair_type": pair_type},
                                                "ORDER BY p.pair_id"))
        return [dict(zip(cols, r, strict=True)) for r in rows]

    def solution_examples(self) -> list[Example]:
        """The distinct-solution sets as SFT examples (several per question), by question
        and rank."""
        _, rows = self.store.query(
            "SELECT question_id, sample_id, question, context, program, answer, source, kind, "
            "difficulty FROM distinct_solutions ORDER BY question_id, rank")
        return [Example(question_id=r[0], sample_id=r[1], text=r[2], context=r[3] or "",
                        program=r[4] or "", answer=r[5], source=r[6], kind=r[7],
                        difficulty=r[8]) for r in rows]

    def verifier_rows(self, balanced: bool = False, seed: int = 0) -> list[dict[str, Any]]:
        """(question, context, solution, correct) rows of `verifier_labels`. balanced: as many
        right as wrong rows, the larger side sampled down with `seed`."""
        cols, rows = self.store.query(
            "SELECT question_id, sample_id, question, context, solution, correct, exec_status, "
            "teacher, error_kind, source, kind FROM verifier_labels ORDER BY sample_id")
        out = [dict(zip(cols, r, strict=True)) for r in rows]
        if not balanced:
            return out
        right = [r for r in out if r["correct"]]
        wrong = [r for r in out if not r["correct"]]
        n = min(len(right), len(wrong))
        rng = random.Random(seed)
        keep = {r["sample_id"] for side in (right, wrong) for r in rng.sample(side, n)}
        return [r for r in out if r["sample_id"] in keep]

    def counts(self) -> dict[str, int]:
        _, rows = self.store.query(
            "SELECT 'pairs.' || pair_type, count(*) FROM preference_pairs GROUP BY 1 "
            "UNION ALL SELECT 'solution_sets', count(*) FROM solution_sets "
            "UNION ALL SELECT 'verifier_labels', count(*) FROM verifier_labels")
        return {k: int(n) for k, n in rows}


def replace_solution_sets(con: Any, run_id: str, question_ids: Sequence[str],
                           rows: Sequence[dict[str, Any]]) -> None:
    if question_ids:
        con.register("ss_seen", pa.table({"question_id": list(question_ids)}))
        con.execute("DELETE FROM solution_sets WHERE question_id IN "
                    "(SELECT question_id FROM ss_seen)")
    insert_arrow(con, "solution_sets", pa.table({
        "question_id": pa.array([r["question_id"] for r in rows], type=pa.string()),
        "sample_id": pa.array([r["sample_id"] for r in rows], type=pa.string()),
        "rank": pa.array([r["rank"] for r in rows], type=pa.int32()),
        "signature": pa.array([r["signature"] for r in rows], type=pa.string())}),
        ignore=False, run_id=run_id)


def insert_pairs(con: Any, run_id: str, pairs: Sequence[PreferencePair]) -> None:
    insert_arrow(con, "preference_pairs", arrow_rows(pairs, _PAIR_COLUMNS), run_id=run_id)
