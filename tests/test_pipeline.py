"""The stage runner with two trivial stages: no model, no GE, a real warehouse as the sink
and real Prefect tasks."""

from __future__ import annotations

from collections import Counter

import pytest
from prefect import flow

from flows.pipeline import PipelineRun, chunks
from tasks.stage import Stage, StageResult, reject
from warehouse import Store

pytestmark = pytest.mark.usefixtures("prefect_harness")


class Square(Stage[int, int]):
    """Chunked: squares numbers; remembers the chunks it saw (runs in threads here)."""

    name = "square"
    batch_size = 3

    def __init__(self) -> None:
        self.seen: list[list[int]] = []

    def group(self, item: int) -> int:
        return item // 10  # 10..19 stay in one chunk

    def run(self, items: list[int]) -> StageResult[int]:
        self.seen.append(list(items))
        return StageResult(kept=[i * i for i in items], counts=Counter(squared=len(items)))


class DropOdd(Stage[int, int]):
    """Whole-batch: odd numbers leave with a reason decided here."""

    name = "parity"
    batch_size = None

    def run(self, items: list[int]) -> StageResult[int]:
        return StageResult(kept=[i for i in items if i % 2 == 0],
                           rejections=[reject(f"n{i}", self.name, "odd", str(i))
                                       for i in items if i % 2])


class SkipKnown(Stage[int, int]):
    """Works on part of its input (`todo`); everything passes on."""

    name = "known"
    batch_size = None

    def __init__(self) -> None:
        self.worked_on: list[int] = []

    def todo(self, items: list[int]) -> list[int]:
        return [i for i in items if i > 100]

    def run(self, items: list[int]) -> StageResult[int]:
        self.worked_on = list(items)
        return StageResult(kept=[], counts=Counter(worked=len(items)))


def test_stages_are_protocol_instances_with_default_hooks():
    assert isinstance(Square(), Stage) and isinstance(DropOdd(), Stage)
    assert DropOdd().todo([1, 2]) is None and DropOdd().group(1) is None  # the defaults


def test_chunks_keep_groups_together():
    assert chunks([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    parts = chunks([1, 10, 11, 12, 13, 20, 21], 2, group=lambda i: i // 10)
    assert parts == [[1, 10, 11, 12, 13], [20, 21]]


def test_runner_keeps_the_books_and_persists_rejections(tmp_path):
    store = Store(tmp_path / "wh.duckdb")
    square, drop, known = Square(), DropOdd(), SkipKnown()

    @flow
    def two_stages() -> tuple[list[int], PipelineRun]:
        run = PipelineRun(store, "run-1", artifact_key="test", in_flight=8)
        out = run.stages([1, 2, 3, 10, 11, 12, 13, 20], [square, drop, known])
        return out, run

    out, run = two_stages()
    assert out == [4, 100, 144, 400]
    # Chunks of about 3, never splitting 10..13 (one group) across two chunks.
    assert sorted(square.seen) == [[1, 2, 3], [10, 11, 12, 13], [20]]
    assert known.worked_on == [144, 400] and out[-1] == 400  # todo part only, all pass on
    assert run.counts == Counter(squared=8, odd=4, parity_rejected=4, rejected=4, worked=2)
    assert set(run.seconds) == {"square", "parity", "known"}
    _, rows = store.query("SELECT item_id, stage, reason, detail, run_id FROM rejections "
                          "ORDER BY item_id")
    assert rows == [("n1", "parity", "odd", "1", "run-1"), ("n121", "parity", "odd", "121",
                                                             "run-1"),
                    ("n169", "parity", "odd", "169", "run-1"), ("n9", "parity", "odd", "9",
                                                                "run-1")]


def test_source_stage_rejections_are_not_input(tmp_path):
    store = Store(tmp_path / "wh.duckdb")

    @flow
    def one_stage() -> Counter:
        run = PipelineRun(store, "run-2", artifact_key="test")
        run.stage(DropOdd(), [1, 2, 3], counts_as_input=False)
        return run.counts

    counts = one_stage()
    assert counts["odd"] == 2 and counts["parity_rejected"] == 2 and "rejected" not in counts


@pytest.mark.parametrize("value", [[], None, 0, ["q1", "q2"]])
def test_a_sealed_chunk_argument_survives_pickling_even_when_empty(value):
    # Chunks reach Dask workers pickled; pickle skips __setstate__ for a false state.
    import pickle

    import cloudpickle

    from flows.pipeline import Sealed

    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, pickle.loads)):
        assert loads(dumps(Sealed(value))).value == value
