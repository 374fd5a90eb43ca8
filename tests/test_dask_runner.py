"""The refresh on Dask: batches run on worker processes, the flow process alone writes the
warehouse, and the result is the one the default runner gives."""

from __future__ import annotations

import pickle

import pytest
from distributed import LocalCluster

from flows.refresh import RefreshConfig, refresh
from warehouse import Store
from warehouse.digest import table_digests

pytestmark = pytest.mark.slow  # two LocalClusters of worker processes, each loads torch

N, SEED = 150, 23


def _curated(path) -> list[tuple]:  # noqa: ANN001
    # The curated rows and a digest of every table the refresh writes (warehouse/digest.py).
    rows = Store(path).query("SELECT question_id, sample_id, answer FROM curated "
                             "ORDER BY question_id")[1]
    return [*rows, tuple(sorted(table_digests(path).items()))]


@pytest.fixture(scope="module")
def threads_result(prefect_server, tmp_path_factory) -> tuple[dict, list[tuple]]:
    wh = tmp_path_factory.mktemp("threads") / "wh.duckdb"
    with prefect_server.settings():
        out = refresh(RefreshConfig(n=N, seed=SEED, warehouse=str(wh), batch_size=50))
    return out, _curated(wh)


def _same(out: dict, curated: list[tuple], expected: tuple[dict, list[tuple]]) -> None:
    base_out, base_curated = expected
    assert out["status"] == "completed"
    assert out["counts"] == base_out["counts"]
    assert curated == base_curated and len(curated) > 100


def test_local_cluster_gives_the_default_runners_result(prefect_server, threads_result,
                                                        tmp_path):
    """`--task-runner dask`: a LocalCluster of 2 worker processes started for the run."""
    wh = tmp_path / "wh.duckdb"
    cfg = RefreshConfig(n=N, seed=SEED, warehouse=str(wh), batch_size=50, task_runner="dask",
                        dask_workers=2)
    with prefect_server.settings():
        out = refresh(cfg)
    _same(out, _curated(wh), threads_result)


def test_existing_scheduler_runs_the_batches(prefect_server, threads_result, tmp_path):
    """`--dask-address`: the batches run on that cluster's workers, not in the flow."""
    wh = tmp_path / "wh.duckdb"
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                      dashboard_address=":0") as cluster:
        cfg = RefreshConfig(n=N, seed=SEED, warehouse=str(wh), batch_size=50,
                            task_runner="dask", dask_address=cluster.scheduler_address)
        pickle.dumps(cfg)  # the config travels to flow runs of deployments
        with prefect_server.settings():
            out = refresh(cfg)
        ran = set(cluster.scheduler.task_prefixes)
    _same(out, _curated(wh), threads_result)
    assert {"embed_stage", "execute_stage", "teacher_stage"} <= ran, ran
