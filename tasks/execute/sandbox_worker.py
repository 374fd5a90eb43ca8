"""Sandbox worker: runs untrusted teacher programs, one forked child per program.

tasks.execute starts this file as `python -I -S sandbox_worker.py WORKDIR PARENT_PID TIMEOUT_S
MEMORY_MB` with an empty environment. It runs without site-packages, so it imports only the
standard library and nothing from the project.

Protocol (all JSON, one object per line, ASCII):
  stdin:  one line per batch: a list of program sources.
  stdout: first a hello line {"hello": 1, "netns": bool, "uid": int}, then one line per
          program, in order: [status, value, error, duration_ms].

Why fork per program: a child starts from the worker's clean, pre-imported state, so whatever a
program does to builtins, sys.modules or module globals dies with it, and rlimits / uid drop /
audit hook apply to that program only (LLM code does things like `getcontext().prec = 4` that
would otherwise leak into the next program). Measured on the 2-core CI VM: fork + exit of this
~14 MB process costs ~0.9 ms CPU, the whole per-program path ~1.4 ms CPU.
"""

from __future__ import annotations

import contextlib
import decimal
import gc
import json
import numbers
import os
import select
import shutil
import signal
import sys
import time

# Modules a program may import. Everything here is pure computation. They are imported once in
# the worker before any fork: children inherit them, so `import math` costs nothing, and a
# child that has dropped to `nobody` could not read the stdlib from disk anyway.
ALLOWED_IMPORTS = frozenset({
    "__future__", "bisect", "cmath", "collections", "datetime", "decimal", "fractions",
    "functools", "heapq", "itertools", "math", "numbers", "operator", "re", "statistics",
    "string",
})
# Imported by the allowed modules lazily (e.g. datetime.strptime); preloaded too, and the
# only module loads the audit hook lets through once a program runs.
_INTERNAL_IMPORTS = ("_strptime", "calendar", "locale", "collections.abc", "encodings.latin_1",
                     "encodings.ascii", "unicodedata")

_NOBODY = 65534
_RESULT_FD = 3          # in the child: the only open fd besides 0/1/2
_MAX_RESULT = 1 << 20   # a result line bigger than this is refused ("ans too large")
_MAX_ERROR = 300
_MAX_CREATES = 16       # files / dirs a program may open for writing or create

_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000
_PR_SET_PDEATHSIG = 1

# Audit events a program may never trigger (prefix match). The hook is installed in the child
# right before the program runs and cannot be removed from Python, so it also covers modules a
# program reaches through introspection (e.g. `().__class__.__base__.__subclasses__()`) rather
# than through `import`.
_DENY_PREFIXES = (
    "socket.", "subprocess.", "ctypes.", "os.exec", "os.spawn", "os.posix_spawn", "os.fork",
    "os.forkpty", "os.system", "os.kill", "os.killpg", "os.startfile", "os.link", "os.symlink",
    "os.chroot", "os.setxattr", "os.removexattr", "os.add_dll_directory", "pty.", "signal.",
    "resource.", "sys.addaudithook", "sys.remote_exec", "shutil.", "urllib.", "http.",
    "ftplib.", "smtplib.", "poplib.", "imaplib.", "nntplib.", "telnetlib.", "sqlite3.",
    "webbrowser.", "winreg.", "msvcrt.", "_winapi.", "mmap.",
)
# Events whose first (and for rename/replace second) argument is a path: allowed only inside
# the program's own directory; listing is also allowed in the read roots.
_PATH_EVENTS = frozenset({
    "os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate", "os.utime",
    "os.chdir", "os.chflags", "os.lchflags", "os.rename", "os.replace",
})
_LIST_EVENTS = frozenset({"os.listdir", "os.scandir", "os.getxattr", "os.listxattr"})
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


class _Sink:
    """sys.stdout / sys.stderr of a program: output is discarded (capped at zero bytes kept)
    without a syscall per print, so print spam costs little and never reaches a pipe."""

    encoding = "utf-8"

    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _one_line(exc: BaseException) -> str:
    try:
        text = f"{type(exc).__name__}: {exc}"
    except BaseException:  # a program-defined __str__ may raise
        text = type(exc).__name__
    if isinstance(exc, SyntaxError) and exc.lineno:
        text = f"{type(exc).__name__}: {exc.msg} (line {exc.lineno})"
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 3] + "..."


def _jsonable(value: object, depth: int = 0) -> object:
    """`ans` as a JSON value: exact types pass, numeric types become float, containers recurse,
    anything else becomes its repr (capped)."""
    if depth > 32:
        raise ValueError("ans nested too deeply")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (decimal.Decimal, numbers.Real)):  # Fraction, numpy scalars, ...
        return float(value)  # type: ignore[arg-type]
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return _jsonable(value.tolist(), depth + 1)
    return repr(value)[:1000]


def _make_hook(progdir: str, read_roots: tuple[str, ...]):  # noqa: ANN202 - stdlib-only file
    def inside(path: object, roots: tuple[str, ...]) -> bool:
        if isinstance(path, int) or path is None:
            return False
        real = os.path.realpath(os.fsdecode(path))  # type: ignore[arg-type]
        return any(real == r or real.startswith(r + os.sep) for r in roots)

    own = (progdir,)
    readable = own + read_roots
    # RLIMIT_FSIZE caps each file at 1 MB but not how many files a program creates; count
    # creations so a program can never put more than _MAX_CREATES MB on the disk.
    created = [0]

    def count_create() -> None:
        created[0] += 1
        if created[0] > _MAX_CREATES:
            raise PermissionError("sandbox: too many files created")

    def hook(event: str, args: tuple) -> None:
        if event.startswith(_DENY_PREFIXES):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            path, mode, flags = args
            # mode None means os.open(), whose dir_fd is not in the event: refuse it outright.
            if mode is None or isinstance(path, int):
                raise PermissionError("sandbox: raw os.open / fd open is not allowed")
            writing = (flags or 0) & _WRITE_FLAGS
            if not inside(path, own if writing else readable):
                raise PermissionError(f"sandbox: open({os.fsdecode(path)!r}) is not allowed")
            if writing:
                count_create()
        elif event in _PATH_EVENTS:
            paths = args[:2] if event in ("os.rename", "os.replace") else args[:1]
            dir_fds = [a for a in args[len(paths):] if isinstance(a, int) and a != -1]
            if dir_fds or not all(inside(p, own) for p in paths):
                raise PermissionError(f"sandbox: {event} outside the working dir")
            if event == "os.mkdir":
                count_create()
        elif event in _LIST_EVENTS:
            path = args[0] if args else "."
            if not inside("." if path is None else path, readable):
                raise PermissionError(f"sandbox: {event} outside the working dir")
        elif event == "import":
            name = str(args[0])
            if name.split(".")[0] not in ALLOWED_IMPORTS and name not in _INTERNAL_IMPORTS:
                raise PermissionError(f"sandbox: import of {name!r} is not allowed")

    return hook


def _safe_import(name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002
    # The program's `import` statements come here (it is the __import__ of the builtins dict
    # the program sees); allowed modules are already loaded, so this is a dict lookup. C code
    # importing while the program runs (datetime.strptime -> _strptime) also lands here, hence
    # the internal names.
    allowed = name.split(".")[0] in ALLOWED_IMPORTS or name in _INTERNAL_IMPORTS
    if level != 0 or not allowed:
        raise ImportError(f"import of {name!r} is not allowed in the sandbox")
    return __import__(name, globals, locals, fromlist, level)


def _encode(status: str, value: object = None, error: str = "") -> bytes:
    try:
        line = json.dumps([status, value, error], ensure_ascii=True, allow_nan=True)
    except (ValueError, TypeError, RecursionError) as exc:  # e.g. int over 4300 digits
        line = json.dumps(["error", None, _one_line(exc)])
    if len(line) > _MAX_RESULT:
        line = json.dumps(["error", None, "ValueError: ans too large"])
    return line.encode("ascii")


def _run_code(code: object, builtins_dict: dict) -> bytes:
    scope: dict = {"__builtins__": builtins_dict, "__name__": "__main__"}
    try:
        exec(code, scope)  # type: ignore[call-overload]
    except MemoryError:
        scope.clear()  # free the program's data before we need memory to report
        return _encode("memory", None, "MemoryError")
    except BaseException as exc:  # SystemExit / KeyboardInterrupt from a program are errors too
        scope.clear()
        return _encode("error", None, _one_line(exc))
    if "ans" not in scope:
        return _encode("no_ans")
    try:
        return _encode("ok", _jsonable(scope["ans"]))
    except MemoryError:
        scope.clear()
        return _encode("memory", None, "MemoryError")
    except BaseException as exc:
        return _encode("error", None, _one_line(exc))


class Worker:
    def __init__(self, workdir: str, timeout_s: float, memory_mb: int) -> None:
        import resource

        self.workdir = workdir
        self.timeout_s = timeout_s
        self.memory = memory_mb * 1024 * 1024
        self.resource = resource
        self.counter = 0
        self.current = 0  # pid of the running child
        self.devnull = os.open(os.devnull, os.O_RDWR)
        self.drop_uid = os.geteuid() == 0
        self.uid = _NOBODY if self.drop_uid else os.geteuid()
        import sysconfig

        roots = {sysconfig.get_path(k) for k in ("stdlib", "platstdlib")}
        self.read_roots = tuple(sorted(os.path.realpath(r) for r in roots if r))
        self.builtins_dict = dict(__builtins__ if isinstance(__builtins__, dict)
                                  else vars(__builtins__))
        self.builtins_dict["__import__"] = _safe_import

    def run(self, source: str) -> list:
        start = time.monotonic()
        # Compile here, before the fork: a syntax error costs no fork at all, and the parser's
        # allocations happen in the worker instead of as copy-on-write faults in the child.
        # Compiling executes nothing; CPython bounds constant folding and nesting depth, and a
        # compiler crash would only cost this worker (reported "killed", then respawned).
        try:
            code = compile(source, "<program>", "exec", dont_inherit=True)
        except MemoryError:
            return ["memory", None, "MemoryError", _ms(start)]
        except BaseException as exc:  # SyntaxError, ValueError (null bytes), RecursionError
            return ["error", None, _one_line(exc), _ms(start)]
        self.counter += 1
        progdir = os.path.join(self.workdir, f"p{self.counter}")
        os.mkdir(progdir, 0o700)
        if self.drop_uid:
            os.chown(progdir, _NOBODY, _NOBODY)
        rfd, wfd = os.pipe()
        pid = self.current = os.fork()
        if pid == 0:  # child: never returns
            try:
                os.close(rfd)
                self._child(code, wfd, progdir)
            finally:
                os._exit(70)
        os.close(wfd)
        try:
            status, value, error = self._collect(pid, rfd, start)
        finally:
            os.close(rfd)
            try:
                os.rmdir(progdir)
            except OSError:  # the program left files
                shutil.rmtree(progdir, ignore_errors=True)
        return [status, value, error, _ms(start)]

    def _child(self, code: object, wfd: int, progdir: str) -> None:
        res = self.resource
        # No setpgid and no prctl here, on purpose (measured: the ctypes prctl calls alone cost
        # ~0.15 ms CPU per child in copy-on-write faults). The child stays in the worker's
        # process group, so tasks.execute's killpg(worker) takes children down with it; the
        # worker kills its current child when its own parent dies (SIGTERM handler in main());
        # setuid() already made the child non-dumpable (no ptrace, no /proc/<pid>/mem); and a
        # child cannot create processes (audit hook + RLIMIT_NPROC as nobody), so killing the
        # child's pid is enough.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for fd in (0, 1, 2):
            os.dup2(self.devnull, fd)
        if wfd != _RESULT_FD:
            os.dup2(wfd, _RESULT_FD)
        # Close everything else (our stdin/result pipes, the devnull fd): a program must not be
        # able to write into the worker's result channel even through raw fds.
        os.closerange(_RESULT_FD + 1, 1 << 20)
        os.chdir(progdir)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over-size writes raise, not kill
        cpu = int(self.timeout_s) + 1
        res.setrlimit(res.RLIMIT_CORE, (0, 0))
        res.setrlimit(res.RLIMIT_CPU, (cpu, cpu + 1))
        res.setrlimit(res.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        res.setrlimit(res.RLIMIT_NOFILE, (16, 16))
        res.setrlimit(res.RLIMIT_NPROC, (0, 0))  # not enforced for root: hence the uid drop
        res.setrlimit(res.RLIMIT_AS, (self.memory, self.memory))
        if self.drop_uid:
            os.setgroups([])
            os.setgid(_NOBODY)
            os.setuid(_NOBODY)
        sys.stdout = sys.stderr = _Sink()  # type: ignore[assignment]
        sys.stdin = None  # type: ignore[assignment]
        sys.addaudithook(_make_hook(progdir, self.read_roots))
        line = _run_code(code, self.builtins_dict)
        view = memoryview(line + b"\n")
        while view:
            view = view[os.write(_RESULT_FD, view):]
        os._exit(0)

    def _collect(self, pid: int, rfd: int, start: float) -> tuple[str, object, str]:
        deadline = start + self.timeout_s
        chunks: list[bytes] = []
        size = 0
        timed_out = oversize = False
        poller = select.poll()
        poller.register(rfd, select.POLLIN | select.POLLHUP)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            if not poller.poll(remaining * 1000):
                continue
            data = os.read(rfd, 65536)
            if not data:
                break  # every write end closed: the child is gone (or closed fd 3)
            chunks.append(data)
            size += len(data)
            if size > _MAX_RESULT + 64:
                oversize = True
                break
        if timed_out or oversize:
            os.kill(pid, signal.SIGKILL)  # still our unreaped child: the pid cannot be reused
        _, wstatus = os.waitpid(pid, 0)
        self.current = 0
        if timed_out:
            return "timeout", None, f"wall-clock limit {self.timeout_s:g}s exceeded"
        if oversize:
            return "error", None, "ValueError: ans too large"
        raw = b"".join(chunks)
        if raw.endswith(b"\n") and os.WIFEXITED(wstatus) and os.WEXITSTATUS(wstatus) == 0:
            try:
                status, value, error = json.loads(raw)
                return str(status), value, str(error)
            except (ValueError, TypeError):
                return "error", None, "sandbox: corrupted result"
        if os.WIFSIGNALED(wstatus):
            sig = os.WTERMSIG(wstatus)
            if sig == signal.SIGXCPU:
                return "timeout", None, "CPU time limit exceeded"
            return "killed", None, f"killed by {signal.Signals(sig).name}"
        return "killed", None, f"exited with code {os.WEXITSTATUS(wstatus)} without a result"


def _ms(start: float) -> float:
    return round((time.monotonic() - start) * 1000, 3)


def _libc() -> object:
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _unshare_net(libc: object) -> bool:
    """Move the worker (and so every child) into a fresh network namespace with no interfaces
    up: no network even if the audit hook were bypassed. Needs CAP_SYS_ADMIN (we run as root
    in CI) or unprivileged user namespaces; silently skipped when neither is permitted."""
    if libc is None:
        return False
    if libc.unshare(_CLONE_NEWNET) == 0:  # type: ignore[attr-defined]
        return True
    # A user namespace makes us uid 65534 with no mapping; only try it when not root, where
    # we have no uid to drop anyway.
    flags = _CLONE_NEWUSER | _CLONE_NEWNET
    return os.geteuid() != 0 and libc.unshare(flags) == 0  # type: ignore[attr-defined]


def main(argv: list[str]) -> int:
    workdir, parent_pid = argv[1], int(argv[2])
    timeout_s, memory_mb = float(argv[3]), int(argv[4])
    # Results go to a private copy of fd 1; fd 1 itself becomes /dev/null so that a stray
    # print in this process can never corrupt the result stream.
    result_fd = os.dup(1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    libc = _libc()
    worker: Worker | None = None

    def parent_died(signum: int, frame: object) -> None:
        if worker is not None and worker.current:
            os.kill(worker.current, signal.SIGKILL)
        os._exit(1)

    # SIGTERM when the thread that started us (or our whole parent process) goes away: take
    # the running child down too, then leave. SIGTERM rather than SIGKILL so we can do that.
    signal.signal(signal.SIGTERM, parent_died)
    if libc is not None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)  # type: ignore[attr-defined]
    if os.getppid() != parent_pid:  # parent died before prctl took effect
        return 1
    netns = _unshare_net(libc)
    for name in sorted(ALLOWED_IMPORTS) + list(_INTERNAL_IMPORTS):
        with contextlib.suppress(ImportError):
            __import__(name)
    worker = Worker(workdir, timeout_s, memory_mb)
    # Everything loaded so far is shared with every child; frozen objects are never scanned by
    # a child's garbage collector, so it does not touch (and copy-on-write) those pages.
    gc.collect()
    gc.freeze()

    def emit(obj: object) -> None:
        view = memoryview(json.dumps(obj).encode("ascii") + b"\n")
        while view:
            view = view[os.write(result_fd, view):]

    emit({"hello": 1, "netns": netns, "uid": worker.uid})
    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            return 0
        for source in json.loads(line):
            emit(worker.run(source))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
