"""Imported first by every bench script (`import _env`): offline, quiet settings and the
project root on sys.path, before anything reads them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for key, value in {
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    # On a loaded machine the ephemeral Prefect server takes longer than the default 20 s.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
}.items():
    os.environ.setdefault(key, value)
# The project root goes first even when PYTHONPATH already names it: the script's own folder
# (sys.path[0]) holds bench/quality.py, which would shadow the `quality` package.
sys.path[:] = [str(ROOT), *(p for p in sys.path if p != str(ROOT))]
