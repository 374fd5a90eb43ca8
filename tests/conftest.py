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

import shutil  # noqa: E402
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


_booted: dict = {}  # the session's Prefect server, once booted (pytest_collection_finish)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules with the most `slow` tests run first (order otherwise kept): `make test` spreads
    whole files over two workers (pytest-xdist, --dist loadfile), and a long file started
    last would leave one worker idle at the end."""
    slow: dict[object, int] = {}
    for item in items:
        slow[item.module] = slow.get(item.module, 0) + bool(item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.module])  # stable


def pytest_collection_finish(session: pytest.Session) -> None:
    """Boot the Prefect server now if a collected test will need it: it starts up (an import
    of Prefect and a database migration) while the first tests run."""
    if session.config.option.collectonly:
        return
    if any("prefect_server" in _fixtures(item) for item in session.items):
        import tempfile

        from prefect_live import boot_server

        _booted["server"] = boot_server(Path(tempfile.mkdtemp(prefix="distillery-prefect-")))


def _fixtures(item: pytest.Item) -> tuple[str, ...]:
    return tuple(getattr(item, "fixturenames", ()))  # every fixture it uses, transitively


def _stop(server, remove: bool) -> None:  # noqa: ANN001 - prefect_live.LivePrefect
    from prefect_live import stop_all

    stop_all(server)
    if remove:  # a folder of tempfile's (the early boot); pytest's own are kept
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """The session's one Prefect API: a real `prefect server start` (SQLite) on a free
    loopback port (tests/prefect_live.py)."""
    from prefect_live import boot_server, wait_until_up

    early = _booted.pop("server", None)
    server = early or boot_server(tmp_path_factory.mktemp("prefect"))
    try:
        wait_until_up(server)
        yield server
    finally:
        _stop(server, remove=early is not None)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A server booted for tests that never ran (an early failure, -x) is stopped too."""
    if "server" in _booted:
        _stop(_booted.pop("server"), remove=True)


@pytest.fixture(scope="session")
def prefect_harness(prefect_server):
    """Flows run in this process report to the session's Prefect server."""
    with prefect_server.as_default():
        yield


@pytest.fixture(scope="session")
def live_prefect(prefect_server):
    """The session's Prefect server with `distillery serve` attached to it: the served
    deployments, runs triggered through the API (tests/prefect_live.py)."""
    from prefect_live import start_serve

    start_serve(prefect_server)
    return prefect_server


@pytest.fixture(scope="session")
def procedural_warehouse_master(prefect_harness, tmp_path_factory) -> Path:
    """One procedural refresh (n=260, seed=5: snapshot 1) for the whole session. Tests never
    open this file: they get a copy (`procedural_warehouse`)."""
    from flows.refresh import RefreshConfig, refresh

    path = tmp_path_factory.mktemp("procedural-master") / "wh.duckdb"
    out = refresh(RefreshConfig(source="procedural", n=260, seed=5, warehouse=str(path)))
    assert out["status"] == "completed" and out["snapshot_id"] == 1
    assert out["counts"]["kept"] > 200 and out["counts"]["semantic_duplicate"] > 0
    return path


def copy_warehouse(master: Path, folder: Path) -> Path:
    """A private copy of a closed warehouse file (and its WAL, if one was left)."""
    folder.mkdir(parents=True, exist_ok=True)
    for src in master.parent.glob(master.name + "*"):
        shutil.copy(src, folder / src.name)
    return folder / master.name


@pytest.fixture(scope="module")
def procedural_warehouse(procedural_warehouse_master, tmp_path_factory) -> Path:
    """This module's own copy of the session's procedural warehouse (one refresh run,
    snapshot 1): cheaper than a refresh per module, and no module sees another's writes."""
    return copy_warehouse(procedural_warehouse_master, tmp_path_factory.mktemp("wh"))


@pytest.fixture
def warehouse_path(tmp_path: Path) -> Path:
    return tmp_path / "wh.duckdb"
