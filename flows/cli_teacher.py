"""CLI commands of the teacher flows; they register on the shared typer app."""

from __future__ import annotations

from flows.cli import app  # noqa: F401
