from __future__ import annotations

import os

# No code may reach a hub at test time: the embedding model loads from site-packages.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# Checkpoints do not rebuild the Data Docs site (each refresh would render it up to three
# times); the tests about Data Docs turn it back on with the `data_docs` fixture. Subprocesses
# (the CLI, the serve process) inherit it. DISTILLERY_DATA_DOCS=1 runs the whole suite with it.
os.environ.setdefault("DISTILLERY_DATA_DOCS", "0")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"benchmark data not found at {SHARED_DATA} (see ../shared/data/README.md)")
    return SHARED_DATA


@pytest.fixture
def data_docs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoints rebuild the Data Docs site, as they do for users."""
    monkeypatch.setenv("DISTILLERY_DATA_DOCS", "1")


@pytest.fixture(scope="session")
def prefect_harness():
    """A real Prefect API (temporary SQLite-backed server) for flow tests."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def warehouse_path(tmp_path: Path) -> Path:
    return tmp_path / "wh.duckdb"


@pytest.fixture(scope="session")
def live_prefect(tmp_path_factory):
    """A real `prefect server start` on a free loopback port with `distillery serve`
    attached to it (tests/prefect_live.py)."""
    from prefect_live import live_prefect as start

    with start(tmp_path_factory.mktemp("live-prefect")) as live:
        yield live
