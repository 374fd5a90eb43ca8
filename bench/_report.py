"""Shared by the bench scripts: print a table and replace this bench's section of
BENCHMARKS.md (each section starts with '## <name>' and runs to the next '## ')."""

from __future__ import annotations

import fcntl
import platform
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    def fmt(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(out)


def report(name: str, body: str, args: Any) -> None:
    """Print a bench's result with the machine's load, and (unless --no-write) make it its
    BENCHMARKS.md section, under the command exactly as it was run."""
    body = f"{body.rstrip()}\n\n{load_note()}"
    print(body, flush=True)
    if not getattr(args, "no_write", False):
        write_section(name, command(), body)


def command() -> str:
    """This process's command line, as `python bench/<script> ...`."""
    script = Path(sys.argv[0]).resolve()
    where = script.relative_to(BENCHMARKS.parent) if script.is_relative_to(
        BENCHMARKS.parent) else script
    return " ".join(["python", str(where), *sys.argv[1:]])


def load_note() -> str:
    """The 1-minute load average: the machine is shared, and timings depend on it."""
    import os

    return f"Load average during the run: {os.getloadavg()[0]:.1f} (the machine is shared)."


def write_section(name: str, command: str, body: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (f"## {name}\n\nCommand: `{command}`  \nMeasured {stamp} on "
               f"{platform.machine()}, {_cpus()} CPUs, Python {platform.python_version()}.\n\n"
               f"{body.strip()}\n\n")
    # Two bench processes may write their sections at the same moment.
    lock_path = BENCHMARKS.parent / "bench" / "out" / ".benchmarks.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _replace_section(name, section)


def _replace_section(name: str, section: str) -> None:
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else (
        "# Benchmarks\n\nEach section is written by the bench script it names; ratios are "
        "against a raw baseline measured in the same run.\n\n")
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text + section
    BENCHMARKS.write_text(text)


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
