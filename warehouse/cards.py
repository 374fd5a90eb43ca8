"""What a dataset card says about an export, read in one place: the subset, the snapshot and
the snapshots it grew from, the refresh runs that published them, what those runs rejected and
how their batches validated (tables `subsets`, `snapshots`, `runs`, `rejections`,
`validations`, migrations 001 and 003). A facet of `Store`: `store.cards`.

A snapshot is its parent's items plus the items one run kept (Store.publish_snapshot), so the
runs that built snapshot N are the runs of N and of its ancestors: their rejections and
validations are the history of the snapshot's items."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .rows import Facet
from .subsets import SubsetInfo


@dataclass(frozen=True)
class LineageRun:
    """One snapshot of a lineage and the run that published it."""

    snapshot_id: int
    n_items: int
    content_hash: str
    created_at: datetime
    run_id: str | None
    flow: str | None
    status: str | None
    params: dict[str, Any]
    counts: dict[str, Any]


@dataclass(frozen=True)
class RejectionCount:
    stage: str
    reason: str
    n: int


@dataclass(frozen=True)
class SuiteValidation:
    """One `validations` row: a suite's verdict on one run's batch."""

    run_id: str
    suite: str
    success: bool
    statistics: dict[str, Any]
    results: list[dict[str, Any]]


@dataclass(frozen=True)
class ExportProvenance:
    """Everything a card of one subset's export reports, as the warehouse has it."""

    subset: SubsetInfo
    lineage: list[LineageRun]                 # oldest snapshot first, the subset's last
    subset_sources: dict[str, int]            # examples of the subset by questions.source
    snapshot_sources: dict[str, int]          # examples of its snapshot by source
    teachers: list[tuple[str, str, str, int]]  # (teacher, model, prompt_version, examples)
    rejections: list[RejectionCount]          # of the lineage's runs, most frequent first
    validations: list[SuiteValidation]        # of the lineage's runs, in run order

    @property
    def run_ids(self) -> list[str]:
        return [r.run_id for r in self.lineage if r.run_id]


def _json(value: str | None, empty: Any) -> Any:
    return json.loads(value) if value else empty


class Cards(Facet):
    """Read-only: the provenance of an export (`store.cards`)."""

    def export_provenance(self, subset_id: str) -> ExportProvenance:
        """The subset's row, its snapshot's lineage with the runs that published it, the
        make-up of subset and snapshot, and those runs' rejections and validations.
        InputError when the subset is not stored."""
        subset = self.store.subsets.load_subset(subset_id)
        with self.store.connect() as con:
            lineage = [
                LineageRun(snapshot_id=int(r[0]), n_items=int(r[1]), content_hash=r[2],
                           created_at=r[3], run_id=r[4], flow=r[5], status=r[6],
                           params=_json(r[7], {}), counts=_json(r[8], {}))
                for r in con.execute(
                    "WITH RECURSIVE lineage AS ("
                    "  SELECT snapshot_id, parent_id FROM snapshots WHERE snapshot_id = ? "
                    "  UNION ALL "
                    "  SELECT s.snapshot_id, s.parent_id FROM snapshots s "
                    "  JOIN lineage l ON s.snapshot_id = l.parent_id) "
                    "SELECT s.snapshot_id, s.n_items, s.content_hash, s.created_at, s.run_id, "
                    "       r.flow, r.status, r.params, r.counts "
                    "FROM lineage l JOIN snapshots s USING (snapshot_id) "
                    "LEFT JOIN runs r ON r.run_id = s.run_id ORDER BY s.snapshot_id",
                    [subset.snapshot_id]).fetchall()]
            run_ids = [r.run_id for r in lineage if r.run_id]
            subset_sources = dict(con.execute(
                "SELECT q.source, count(*) FROM subset_items si "
                "JOIN questions q ON q.question_id = si.question_id "
                "WHERE si.subset_id = ? GROUP BY 1 ORDER BY 2 DESC, 1", [subset_id]).fetchall())
            snapshot_sources = dict(con.execute(
                "SELECT q.source, count(*) FROM snapshot_items si "
                "JOIN questions q ON q.question_id = si.question_id "
                "WHERE si.snapshot_id = ? GROUP BY 1 ORDER BY 2 DESC, 1",
                [subset.snapshot_id]).fetchall())
            teachers = [(t, m, p, int(n)) for t, m, p, n in con.execute(
                "SELECT s.teacher, s.model, s.prompt_version, count(*) FROM subset_items si "
                "JOIN samples s ON s.sample_id = si.sample_id WHERE si.subset_id = ? "
                "GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1, 2, 3", [subset_id]).fetchall()]
            rejections = [RejectionCount(stage, reason, int(n)) for stage, reason, n in
                          con.execute(
                              "SELECT stage, reason, count(*) AS n FROM rejections "
                              "WHERE list_contains(?, run_id) "
                              "GROUP BY 1, 2 ORDER BY n DESC, 1, 2", [run_ids]).fetchall()]
            validations = [
                SuiteValidation(run_id=r[0], suite=r[1], success=bool(r[2]),
                                statistics=_json(r[3], {}), results=_json(r[4], []))
                for r in con.execute(
                    "SELECT run_id, suite, success, statistics, results FROM validations "
                    "WHERE list_contains(?, run_id) "
                    "ORDER BY list_position(?, run_id), suite", [run_ids, run_ids]).fetchall()]
        return ExportProvenance(subset=subset, lineage=lineage, subset_sources=subset_sources,
                                snapshot_sources=snapshot_sources, teachers=teachers,
                                rejections=rejections, validations=validations)
