"""The Great Expectations project of Distillery: a file data context whose gx/ folder is in git
(quality/gx/: suites as JSON in expectations/, checkpoints/, validation_definitions/ and the
pandas data source in great_expectations.yml).

Validation results and the Data Docs site are not in git: they belong to a warehouse. The
context is opened with both locations as GE config variables (DISTILLERY_GX_RESULTS,
DISTILLERY_DOCS_DIR, see gx/config_variables.yml), so one committed project serves every
warehouse. Opening it costs ~30 ms (measured: BENCHMARKS.md, quality section); contexts are
still kept per docs folder, because a refresh validates once per run and tests open many
warehouses.
"""

from __future__ import annotations

import logging
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent  # holds gx/
GX_DIR = PROJECT_ROOT / "gx"
DOCS_FOLDER = "docs"          # beside the DuckDB file: data/warehouse.duckdb -> data/docs/
RESULTS_FOLDER = "gx-results"  # GE's validation results store (JSON), beside the site
# Every checkpoint ends with GE's update_data_docs action (gx/checkpoints/*.json). With this
# set to 0 / false / off, validations still store their results but do not rebuild the site.
# The test suite turns it off outside the tests about Data Docs (tests/conftest.py): each
# refresh would otherwise render the site up to three times. `distillery docs --rebuild`
# renders it from the stored results whenever it is wanted.
DATA_DOCS_ENV = "DISTILLERY_DATA_DOCS"

# GE's objects (stores, the registry of data sources) are not built for concurrent use; the
# refresh flow validates from Prefect's worker threads.
gx_lock = threading.RLock()


def docs_dir_for(warehouse: str | os.PathLike[str]) -> Path:
    """The Data Docs folder of a warehouse file: `docs/` beside it."""
    return Path(warehouse).expanduser().resolve().parent / DOCS_FOLDER


def data_docs_enabled() -> bool:
    """Whether checkpoints rebuild the Data Docs site (on unless DISTILLERY_DATA_DOCS is off)."""
    return os.environ.get(DATA_DOCS_ENV, "1").strip().lower() not in ("0", "false", "off", "no")


def results_dir_for(docs_dir: str | os.PathLike[str]) -> Path:
    """Where GE keeps the validation results that a Data Docs folder is built from."""
    return Path(docs_dir).expanduser().resolve().parent / RESULTS_FOLDER


def _quiet() -> None:
    # GE logs INFO lines per context and per docs build; the pipeline's own summary says
    # what happened.
    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.WARNING)


@lru_cache(maxsize=16)
def _open(docs_dir: Path, data_docs: bool) -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    import quality.expectations  # noqa: F401 - registers the custom expectation classes

    _quiet()
    ctx = gx.get_context(mode="file", project_root_dir=str(PROJECT_ROOT), runtime_environment={
        "DISTILLERY_GX_RESULTS": str(results_dir_for(docs_dir)),
        "DISTILLERY_DOCS_DIR": str(docs_dir),
    })
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    if not data_docs:
        # No site configured: the checkpoints' update_data_docs action builds nothing. (The
        # checkpoints themselves stay as saved: GE refuses to run an edited one.)
        ctx.variables.data_docs_sites = {}
    return ctx


def quality_context(docs_dir: str | os.PathLike[str], data_docs: bool = True) -> Any:
    """The file data context with its results and Data Docs under `docs_dir`'s folder;
    `data_docs=False`: a context without the site (validations write none).
    Callers hold `gx_lock` while they use it."""
    return _open(Path(docs_dir).expanduser().resolve(), data_docs)
