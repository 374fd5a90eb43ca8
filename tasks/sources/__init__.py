"""Question sources behind one spec string: `procedural`, `gsm8k:PATH`, `tatqa:PATH`,
`jsonl:PATH`, `hf:NAME[:SPLIT]`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from tasks.errors import InputError
from tasks.types import Question

if TYPE_CHECKING:
    from .synth import SynthContext

SOURCE_KINDS = ("procedural", "gsm8k", "tatqa", "jsonl", "hf", "synth")


def parse_spec(spec: str) -> tuple[str, str]:
    """'gsm8k:path/x.jsonl' -> ('gsm8k', 'path/x.jsonl'); 'procedural' -> ('procedural', '')."""
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in SOURCE_KINDS:
        raise InputError(f"--source {spec!r}: unknown source (one of {', '.join(SOURCE_KINDS)})")
    if kind != "procedural" and not arg:
        raise InputError(f"--source {spec!r}: needs a path or name after '{kind}:'")
    return kind, arg


def load_questions(spec: str, n: int | None = None, seed: int = 0, *,
                   synth: SynthContext | None = None) -> list[Question]:
    """All questions of a source, or its first n (procedural: n items from `seed`).
    `synth:MODE` sources call an LLM: they need the teacher's context (`synth`)."""
    kind, arg = parse_spec(spec)
    if kind == "synth":
        from .synth import synthesize

        if synth is None:
            raise InputError(f"--source {spec}: synthesis needs an LLM (--teacher openai)")
        return synthesize(arg, n if n is not None else 100, seed, synth)
    if kind == "procedural":
        from .procedural import generate_questions

        split = arg or "train"
        return generate_questions(n if n is not None else 1000, seed=seed, split=split)
    if kind == "gsm8k":
        from .gsm8k import load_gsm8k

        return load_gsm8k(arg, limit=n)
    if kind == "tatqa":
        from .tatqa import load_tatqa

        return load_tatqa(arg, limit=n)
    if kind == "jsonl":
        from .jsonl import load_jsonl

        return load_jsonl(arg, limit=n)
    from .hf import load_hf

    name, _, split = arg.partition(":")
    return load_hf(name, split or "train", limit=n)




class SourceConfig(BaseModel):
    """Where questions come from."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field("procedural", description="procedural | gsm8k:PATH | tatqa:PATH | "
                        "jsonl:PATH | hf:NAME[:SPLIT] | synth:fewshot|evolve|scratch[:TOPIC]")
    n: int | None = Field(None, ge=1, description="items to draw; empty: all of a file "
                          "source, 1000 from the procedural generator, 100 synthesized")
    seed: int = Field(0, description="seed of the procedural generator and of synthesis")

    @property
    def synthesized(self) -> bool:
        """LLM-written questions: they are produced inside the run (their cost is its)."""
        return self.source.startswith("synth:")


__all__ = ["SOURCE_KINDS", "InputError", "Question", "SourceConfig", "load_questions",
           "parse_spec"]
