"""A real `prefect server start` on a free loopback port and a real `distillery serve`
against it, as a user would run them (see `make serve`).

One server per test session (conftest.py): booted as soon as the collected tests need it,
waited for by the `prefect_server` fixture; `prefect_harness` points this process's flows at
it; `live_prefect` adds the serve process (started by the first test that needs the served
deployments)."""

from __future__ import annotations

import inspect
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
DEPLOYMENTS = ("refresh/nightly-refresh", "finetune/finetune", "ladder/ladder",
               "evaluate/evaluate")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, wait_s: float = 20) -> None:
    """Stop a process this module started (its own session): ask, then insist."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    except ProcessLookupError:
        pass


@dataclass
class LivePrefect:
    root: Path
    port: int
    warehouse: Path
    workdir: Path
    server_log: Path
    serve_log: Path
    procs: list[subprocess.Popen] = field(default_factory=list)
    seed_run: Any = None  # the refresh run that published the first snapshot

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def env(self, **extra: str) -> dict[str, str]:
        """Environment of a process that talks to this server (and only to it)."""
        env = {**os.environ, "PREFECT_API_URL": self.api_url,
               "PREFECT_HOME": str(self.root / "home"), "HF_HUB_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
               "PREFECT_LOGGING_LEVEL": "INFO", **extra}
        env.pop("PYTEST_CURRENT_TEST", None)
        return env

    def logs(self) -> str:
        text = f"--- server log ---\n{_tail(self.server_log)}"
        if self.serve_log.exists():
            text += f"\n--- serve log ---\n{_tail(self.serve_log, 8000)}"
        return text

    @contextmanager
    def settings(self) -> Iterator[None]:
        """Point this process's Prefect client at the live server."""
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: self.api_url}):
            yield

    @contextmanager
    def as_default(self) -> Iterator[None]:
        """This server as the process-wide API for flows run in this process, the way
        `prefect_test_harness` installs its own (settings, and the global settings context
        that contexts copied earlier see); log and event workers are drained on the way out
        so that nothing is left to send to a server about to stop."""
        import prefect.context
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker
        from prefect.utilities.asyncutils import run_coro_as_sync

        with self.settings(), prefect.context._temporary_global_settings_context(
                prefect.context.get_settings_context()):
            yield

            async def drain() -> None:
                try:
                    result = APILogWorker.instance().drain()
                    if inspect.isawaitable(result):
                        await result
                except RuntimeError:  # never started
                    pass
                result = EventsWorker.drain_all()
                if inspect.isawaitable(result):
                    await result

            run_coro_as_sync(drain())

    def client(self) -> Any:
        from prefect.client.orchestration import get_client

        return get_client(sync_client=True)

    def deployment(self, name: str) -> Any:
        with self.settings(), self.client() as c:
            return c.read_deployment_by_name(name)

    def run_deployment(self, name: str, parameters: dict[str, Any], timeout_s: float = 180,
                       run_name: str | None = None) -> Any:
        """Create a run of a served deployment and wait until it is final."""
        with self.settings(), self.client() as c:
            dep = c.read_deployment_by_name(name)
            run = c.create_flow_run_from_deployment(dep.id, parameters=parameters,
                                                    name=run_name)
        return self.wait_for_run(run.id, timeout_s)

    def wait_for_run(self, run_id: Any, timeout_s: float = 180) -> Any:
        deadline = time.monotonic() + timeout_s
        with self.settings(), self.client() as c:
            while True:
                run = c.read_flow_run(run_id)
                if run.state is not None and run.state.is_final():
                    return run
                if time.monotonic() > deadline:
                    raise AssertionError(f"run {run.name} still {run.state_name} after "
                                         f"{timeout_s:.0f}s\n{self.logs()}")
                time.sleep(0.5)

    def seed_snapshot(self, n: int = 80, seed: int = 31) -> Any:
        """Publish one snapshot through the scheduled deployment (run now), once."""
        if self.seed_run is None:
            run = self.run_deployment(REFRESH, {"config": {"source": {"n": n, "seed": seed}}})
            assert run.state.is_completed(), f"{run.state}\n{self.logs()}"
            self.seed_run = run
        return self.seed_run


REFRESH = DEPLOYMENTS[0]


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not up after {timeout_s:.0f}s:\n{_tail(log)}")


def boot_server(root: Path) -> LivePrefect:
    """Launch `prefect server start` (SQLite under `root`) and return at once: the server
    boots while other work goes on; `wait_until_up` before using it, `stop_all` at the end."""
    (root / "home").mkdir(parents=True, exist_ok=True)
    workdir = root / "work"
    workdir.mkdir(exist_ok=True)
    port = free_port()
    live = LivePrefect(root=root, port=port, warehouse=workdir / "data" / "wh.duckdb",
                       workdir=workdir, server_log=root / "server.log",
                       serve_log=root / "serve.log")
    server_env = live.env(PREFECT_UI_API_URL=live.api_url, PREFECT_LOGGING_LEVEL="WARNING")
    server_env.pop("PREFECT_API_URL")  # the server serves the API; it is no client of one
    with live.server_log.open("w") as log:
        live.procs.append(subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port",
             str(port)], env=server_env, cwd=root, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True))
    return live


def wait_until_up(live: LivePrefect, startup_timeout_s: float = 120) -> None:
    _wait_http(f"{live.api_url}/health", live.procs[0], live.server_log, startup_timeout_s)


def stop_all(live: LivePrefect) -> None:
    """Stop the serve process (if any), then the server."""
    for proc in reversed(live.procs):
        _stop(proc)


@contextmanager
def prefect_server(root: Path, startup_timeout_s: float = 120) -> Iterator[LivePrefect]:
    """A server for the length of the block (and what was added to `procs` after it)."""
    live = boot_server(root)
    try:
        wait_until_up(live, startup_timeout_s)
        yield live
    finally:
        stop_all(live)


def start_serve(live: LivePrefect, startup_timeout_s: float = 120) -> None:
    """Start `distillery serve` against the server; `stop_all` stops it first."""
    with live.serve_log.open("w") as log:
        # Poll every second (default 10 s) so triggered runs start at once in tests.
        live.procs.append(subprocess.Popen(
            [str(BIN / "distillery"), "serve", "--warehouse", str(live.warehouse)],
            env=live.env(PREFECT_RUNNER_POLL_FREQUENCY="1"), cwd=live.workdir, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True))
    deadline = time.monotonic() + startup_timeout_s
    while not live.serve_log.read_text(errors="replace").count("being served"):
        if live.procs[-1].poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"distillery serve did not start:\n{live.logs()}")
        time.sleep(0.3)
