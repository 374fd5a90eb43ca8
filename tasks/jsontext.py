"""JSON inside model replies and annotations: decoded when it is JSON of the wanted shape,
None otherwise (the caller then falls back to reading the text)."""

from __future__ import annotations

import json
from typing import Any


def json_object(text: str | None) -> dict[str, Any] | None:
    """A JSON object (a structured-output reply), else None."""
    data = _loads(text)
    return data if isinstance(data, dict) else None


def json_list(text: str | None) -> list[Any] | None:
    """A JSON list (TAT-QA span answers), else None; only text that starts with '['."""
    text = (text or "").strip()
    data = _loads(text) if text.startswith("[") else None
    return data if isinstance(data, list) else None


def _loads(text: str | None) -> Any:
    try:
        return json.loads((text or "").strip())
    except ValueError:
        return None
