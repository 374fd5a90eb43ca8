"""`distillery`: the app with every command registered (each module adds its own)."""

from __future__ import annotations

from flows.cli import (  # noqa: F401 - registration
    docs,
    experiments,
    preferences,
    refresh,
    serve,
    teacher,
)
from flows.cli.app import app


def main() -> None:  # pragma: no cover - console entry point
    app()


__all__ = ["app", "main"]
