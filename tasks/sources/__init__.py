"""Question sources behind one spec string: `procedural`, `gsm8k:PATH`, `tatqa:PATH`,
`jsonl:PATH`, `hf:NAME[:SPLIT]`."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from tasks.errors import InputError
from tasks.types import Question

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


def load_questions(spec: str, n: int | None = None, seed: int = 0) -> list[Question]:
    """All questions of a source, or its first n (procedural: n items from `seed`).
    `synth:MODE` sources are written by an LLM inside a refresh (tasks/sources/synth.py)."""
    kind, arg = parse_spec(spec)
    if kind == "synth":
        raise InputError(f"--source {spec}: synthesized questions are written inside a "
                         "refresh (with an LLM teacher), not loaded")
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


def question_batches(spec: str, n: int | None = None, seed: int = 0,
                     batch_size: int = 50_000) -> Iterator[list[Question]]:
    """The questions of `load_questions`, in the same order, a batch at a time. The
    procedural generator streams (a million items never sit in memory at once); file and
    hub sources are small and are loaded whole, then cut."""
    kind, arg = parse_spec(spec)
    if kind == "procedural":
        from .procedural import question_batches as procedural_batches

        yield from procedural_batches(n if n is not None else 1000, seed=seed,
                                      split=arg or "train", batch_size=batch_size)
        return
    questions = load_questions(spec, n=n, seed=seed)
    for start in range(0, len(questions), batch_size):
        yield questions[start:start + batch_size]




class SourceConfig(BaseModel):
    """Where questions come from."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field("procedural", description="procedural | gsm8k:PATH | tatqa:PATH | "
                        "jsonl:PATH | hf:NAME[:SPLIT] | synth:fewshot|evolve|scratch[:TOPIC]")
    n: int | None = Field(None, ge=1, description="items to draw; empty: all of a file "
                          "source, 1000 from the procedural generator, 100 synthesized")
    seed: int = Field(0, description="seed of the procedural generator and of synthesis")
    seed_source: str | None = Field(None, description="seed questions of synth:fewshot / "
                                    "synth:evolve (a source spec, e.g. gsm8k:PATH)")

    @property
    def synthesized(self) -> bool:
        """LLM-written questions: they are produced inside the run (their cost is its)."""
        return self.source.startswith("synth:")


__all__ = ["SOURCE_KINDS", "InputError", "Question", "SourceConfig", "load_questions",
           "parse_spec", "question_batches"]
