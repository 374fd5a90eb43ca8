"""Run untrusted teacher programs (Python that assigns `ans`) and return their values.

Design (measured on the 2-core CI machine, see the numbers in the docstring of
`execute_programs`):

* Programs never run in the caller's process. A `SandboxPool` holds a few worker processes
  (`python -I -S tasks/execute/sandbox_worker.py`, empty environment, cwd a temp dir, stdin a pipe
  that only carries program batches; a program's own stdin is /dev/null) behind one queue of
  program chunks. A pipeline stage uses its process's shared pool (`shared_pool`): every
  chunk of every stage, from any thread, runs on the same `workers` processes, so a run
  never holds more sandbox processes than that however many chunks are in flight (one pool
  per call used to mean 176 workers on 2 cores at 100k). A plain `execute_programs` call
  without a pool starts its own and closes it before returning: no process or temp dir
  outlives it. Starting a worker costs ~40 ms.
* Each worker receives batches of programs (one JSON line per batch, no round trip per
  program) and forks one child per program. The child applies rlimits (address space, CPU,
  file size, open files, processes), drops to uid `nobody` when we are root, installs an audit
  hook that denies sockets, process creation, ctypes, signals and file access outside its own
  temp dir, then runs the program with fresh globals and a whitelisted `__import__`. The
  worker enforces the wall-clock limit with poll() and SIGKILLs the child. A fork costs
  ~0.9 ms CPU here; in exchange nothing a program does (patching builtins, sys.modules,
  decimal contexts, leaking memory, crashing the interpreter) can reach the next program.
  The cheaper alternative, exec in a long-lived worker with fresh globals, was rejected: module
  state (math.pi = 3, getcontext().prec = 2) leaks between programs.
* The worker itself has moved into a fresh network namespace (unshare CLONE_NEWNET, allowed as
  root), so children have no network even if the audit hook were bypassed.
* Results come back one line per program on a pipe the program cannot reach (its stdout and
  stderr are discarded, its fds closed), so a worker that dies mid-batch loses only the
  program in flight: that one is reported "killed" and a fresh worker takes the rest.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from tasks.types import ExecResult

WORKER_SCRIPT = Path(__file__).with_name("sandbox_worker.py")

_MAX_CHUNK = 256     # programs per batch sent to a worker
_CHUNKS_PER_WORKER = 4  # enough chunks for load balancing when program costs differ
_START_TIMEOUT_S = 30.0
_SLACK_S = 10.0      # worker-side overhead allowed per program on top of timeout_s
_MAX_SPAWN_FAILURES = 3


def _scratch_dir() -> str | None:
    """Where program working dirs go. tmpfs (/dev/shm) when available: creating and removing a
    dir per program there costs ~10 us instead of ~120 us on the ext4 /tmp of our CI machine,
    and the worker caps what a program may write (16 files of 1 MB)."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return None  # tempfile's default (TMPDIR, /tmp)


def _cpu_count() -> int:
    # The CPUs we may run on (cgroup cpusets, taskset), not all the host has.
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class SandboxError(RuntimeError):
    """The sandbox itself could not run (worker fails to start), as opposed to a program
    failing, which is reported in its ExecResult."""


class _WorkerGone(Exception):
    """The worker process died or hung; `done` results of the current batch arrived."""

    def __init__(self, done: int, reason: str) -> None:
        super().__init__(reason)
        self.done = done
        self.reason = reason


class _Worker:
    """One sandbox worker process and the reading end of its result stream."""

    def __init__(self, root: str, timeout_s: float, memory_mb: int) -> None:
        self.timeout_s = timeout_s
        self.dir = tempfile.mkdtemp(prefix="w", dir=root)
        os.chmod(self.dir, 0o711)  # children run as `nobody` and must reach their subdir
        self.errlog = open(os.path.join(self.dir, "stderr.log"), "w+b")  # noqa: SIM115
        os.chmod(self.errlog.name, 0o600)
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(WORKER_SCRIPT), self.dir, str(os.getpid()),
             repr(float(timeout_s)), str(int(memory_mb))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errlog,
            env={}, cwd=self.dir, close_fds=True,
            start_new_session=True,  # a Ctrl-C to our process group does not hit workers
        )
        self.fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        self.buf = b""
        try:
            hello = json.loads(self._readline(time.monotonic() + _START_TIMEOUT_S))
        except (_WorkerGone, ValueError) as exc:
            self.close()
            raise SandboxError(f"sandbox worker failed to start: {self.stderr_tail()}") from exc
        self.netns = bool(hello.get("netns"))
        self.uid = int(hello.get("uid", -1))

    def _readline(self, deadline: float) -> bytes:
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line, self.buf = self.buf[:nl], self.buf[nl + 1:]
                return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _WorkerGone(0, "worker stopped responding")
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if ready:
                data = os.read(self.fd, 1 << 16)
                if not data:
                    raise _WorkerGone(0, "worker died")
                self.buf += data

    def run_batch(self, programs: list[str], out: list[ExecResult | None], offset: int) -> None:
        """Run programs[i] -> out[offset + i]; raises _WorkerGone with the count done."""
        line = json.dumps(programs, ensure_ascii=True).encode("ascii") + b"\n"
        try:
            self.proc.stdin.write(line)  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, OSError) as exc:
            raise _WorkerGone(0, "worker died") from exc
        for i in range(len(programs)):
            try:
                raw = self._readline(time.monotonic() + self.timeout_s + _SLACK_S)
                status, value, error, duration_ms = json.loads(raw)
            except _WorkerGone as exc:
                raise _WorkerGone(i, exc.reason) from None
            except (ValueError, TypeError):
                raise _WorkerGone(i, "worker sent a malformed result") from None
            out[offset + i] = ExecResult(status=status, value=value, error=error,
                                         duration_ms=float(duration_ms))

    def stderr_tail(self) -> str:
        try:
            self.errlog.seek(0)
            return self.errlog.read()[-2000:].decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""

    def kill(self) -> None:
        # The worker leads its own process group and its children stay in it: one killpg.
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def close(self) -> None:
        # Closing stdin ends the worker's loop; it never runs a program after that. Whatever
        # is left after 2 s gets SIGKILL, children included (same process group).
        with contextlib.suppress(OSError):
            self.proc.stdin.close()  # type: ignore[union-attr]
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()
        self.proc.stdout.close()  # type: ignore[union-attr]
        self.errlog.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class _Job:
    """One `run` of a pool: its programs, result slots and the chunks still out."""

    def __init__(self, programs: list[str], chunks: int) -> None:
        self.programs = programs
        self.results: list[ExecResult | None] = [None] * len(programs)
        self.pending = chunks
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.cancelled = False

    def fail(self, exc: BaseException) -> None:
        with self.lock:
            self.error = self.error or exc
        self.cancelled = True

    def chunk_done(self) -> None:
        with self.lock:
            self.pending -= 1
            if self.pending == 0:
                self.done.set()


class SandboxPool:
    """`workers` sandbox worker processes behind one queue of program chunks: however many
    threads call `run` at once, at most `workers` workers are alive (each owned by one
    feeder thread: PR_SET_PDEATHSIG fires when the *thread* that started a worker exits, so
    a feeder lives as long as its worker). `idle_s`: a feeder closes its worker after that
    long without work (None: never), so a long-lived process does not keep them around."""

    def __init__(self, timeout_s: float, memory_mb: int, workers: int,
                 idle_s: float | None = None) -> None:
        if timeout_s <= 0 or memory_mb <= 0:
            raise ValueError("timeout_s and memory_mb must be positive")
        self.timeout_s, self.memory_mb, self.workers = timeout_s, memory_mb, max(1, workers)
        self.idle_s = idle_s
        self.pid = os.getpid()
        self.root = tempfile.mkdtemp(prefix="distillery-exec-", dir=_scratch_dir())
        os.chmod(self.root, 0o711)
        self.tasks: queue.SimpleQueue[tuple[_Job, int, int] | None] = queue.SimpleQueue()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.live: set[_Worker] = set()
        self.threads = [threading.Thread(target=self._feed, name=f"sandbox-feeder-{k}",
                                         daemon=True) for k in range(self.workers)]
        for thread in self.threads:
            thread.start()

    def run(self, programs: list[str]) -> list[ExecResult]:
        """Results of `programs` in order (thread-safe; calls share the workers)."""
        if not programs:
            return []
        if self.stop.is_set():
            raise SandboxError("the sandbox pool is closed")
        size = max(1, min(_MAX_CHUNK, -(-len(programs) // (self.workers * _CHUNKS_PER_WORKER))))
        starts = range(0, len(programs), size)
        job = _Job(programs, len(starts))
        for start in starts:
            self.tasks.put((job, start, min(start + size, len(programs))))
        try:
            job.done.wait()
        except BaseException:  # e.g. Ctrl-C while waiting: the rest of the job is dropped
            job.cancelled = True
            raise
        if job.error is not None:
            raise job.error
        return job.results  # type: ignore[return-value]

    def _spawn(self) -> _Worker:
        worker = _Worker(self.root, self.timeout_s, self.memory_mb)
        with self.lock:
            self.live.add(worker)
        if self.stop.is_set():  # a close ran while we were starting
            worker.kill()
        return worker

    def _retire(self, worker: _Worker) -> None:
        with self.lock:
            self.live.discard(worker)
        worker.close()

    def _feed(self) -> None:
        """Body of one feeder thread: takes chunks, owns at most one worker at a time."""
        worker: _Worker | None = None
        try:
            while True:
                try:
                    item = self.tasks.get(timeout=self.idle_s if worker else None)
                except queue.Empty:  # idle: give the worker's memory back
                    self._retire(worker)  # type: ignore[arg-type]
                    worker = None
                    continue
                if item is None:
                    return
                job, pos, end = item
                try:
                    worker = self._chunk(worker, job, pos, end)
                except BaseException as exc:  # surfaced by run() in the caller's thread
                    job.fail(exc)
                    if worker is not None:
                        worker.kill()
                        self._retire(worker)
                        worker = None
                finally:
                    job.chunk_done()
        finally:
            if worker is not None:
                self._retire(worker)

    def _chunk(self, worker: _Worker | None, job: _Job, pos: int, end: int) -> _Worker | None:
        failures = 0
        while pos < end and not job.cancelled and not self.stop.is_set():
            if worker is None:
                try:
                    worker = self._spawn()
                except SandboxError:
                    failures += 1
                    if failures >= _MAX_SPAWN_FAILURES:
                        raise
                    continue
            try:
                worker.run_batch(job.programs[pos:end], job.results, pos)
                pos = end
            except _WorkerGone as gone:
                # Programs before `done` have results; the one in flight took the worker
                # down (or the worker hung on it): report it, respawn, go on.
                pos += gone.done
                if pos < end and not self.stop.is_set():
                    job.results[pos] = ExecResult(status="killed",
                                                  error=f"sandbox {gone.reason}")
                    pos += 1
                worker.kill()
                self._retire(worker)
                worker = None
        if pos < end and not job.cancelled:
            job.fail(SandboxError("the sandbox pool was closed during a run"))
        return worker

    def close(self, kill: bool = False) -> None:
        """Stop the feeders (after the chunks queued so far, or at once with `kill`), close
        every worker and remove the scratch dir."""
        if kill:
            self.stop.set()
            with self.lock:
                for worker in self.live:
                    worker.kill()
        for _ in self.threads:
            self.tasks.put(None)
        if os.getpid() == self.pid:
            for thread in self.threads:
                if thread is not threading.current_thread():
                    thread.join()
        self.stop.set()
        shutil.rmtree(self.root, ignore_errors=True)


_shared: dict[tuple[float, int, int], SandboxPool] = {}
_shared_lock = threading.Lock()
# A shared pool's workers close after this long without programs: a scheduled-refresh
# server keeps no sandbox processes between runs.
SHARED_IDLE_S = 30.0


def shared_pool(timeout_s: float, memory_mb: int, workers: int | None = None) -> SandboxPool:
    """This process's pool for these limits, started on first use and reused by every later
    call (every chunk of every stage in a run, from any thread): the process never holds
    more than `workers` sandbox workers per limit setting, however many chunks run at once.
    A Dask worker process gets its own. Pools of other limits are closed once idle."""
    key = (float(timeout_s), int(memory_mb), max(1, workers or _cpu_count()))
    with _shared_lock:
        pool = _shared.get(key)
        if pool is not None and pool.pid != os.getpid():  # inherited through fork: not ours
            _shared.clear()
            pool = None
        if pool is None:
            for other in list(_shared.values()):
                other.close()
            _shared.clear()
            pool = _shared[key] = SandboxPool(*key, idle_s=SHARED_IDLE_S)
        return pool


@atexit.register
def _close_shared() -> None:
    for pool in list(_shared.values()):
        if pool.pid == os.getpid():
            pool.close(kill=True)


def execute_programs(programs: Sequence[str], *, timeout_s: float = 2.0, memory_mb: int = 512,
                     workers: int | None = None, pool: SandboxPool | None = None
                     ) -> list[ExecResult]:
    """Run each program in the sandbox; results in input order.

    status per program: ok (value = JSON-able `ans`), no_ans, error (exception or syntax
    error, one-line message), timeout (wall clock `timeout_s` or CPU limit), memory
    (MemoryError under the `memory_mb` address-space limit), killed (the process died: signal,
    os._exit, ...). A non-string program is an error result, not an exception.

    `pool`: run on that pool (its limits apply; see `shared_pool`). Without one the call
    starts a pool of `workers` (default: one per core) and closes it before returning, so
    no process or temp dir outlives the call.

    Programs may import only math, cmath, fractions, decimal, statistics, itertools,
    functools, collections, datetime, re, operator, numbers, heapq, bisect, string.

    Throughput (2-core CI VM, 10,000 programs like `ans = 3*4+5`, two workers): 7.5-9 s,
    1,100-1,300 programs/s, ~1.4 ms CPU per program (mostly fork + exit); in-process `exec`
    of the same programs takes ~50 ms. Worth it for untrusted code; batch accordingly.
    """
    items = list(programs)
    if not items:
        return []
    if timeout_s <= 0 or memory_mb <= 0:
        raise ValueError("timeout_s and memory_mb must be positive")
    runnable = [i for i, p in enumerate(items) if isinstance(p, str)]
    results: list[ExecResult | None] = [
        None if isinstance(p, str) else
        ExecResult(status="error", error=f"TypeError: program is {type(p).__name__}, not str")
        for p in items
    ]
    if runnable:
        todo = [items[i] for i in runnable]
        if pool is not None:
            ran = pool.run(todo)
        else:
            own = SandboxPool(timeout_s, memory_mb,
                              max(1, min(workers or _cpu_count(), len(todo))))
            try:
                ran = own.run(todo)
            finally:
                own.close(kill=True)
        for i, result in zip(runnable, ran, strict=True):
            results[i] = result
    missing = [i for i, r in enumerate(results) if r is None]
    if missing:  # only reachable through a bug: never hand back a partial list silently
        raise SandboxError(f"no result for {len(missing)} programs (first index {missing[0]})")
    return results  # type: ignore[return-value]
