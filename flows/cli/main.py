"""`distillery`: the app with every command registered (each module adds its own)."""

from __future__ import annotations

from flows.cli import docs, experiments, refresh, serve, teacher  # noqa: F401 - registration
from flows.cli.app import app


def main() -> None:  # pragma: no cover - console entry point
    app()


__all__ = ["app", "main"]
