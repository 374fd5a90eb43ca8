"""Question sources behind one spec string: `procedural`, `gsm8k:PATH`, `tatqa:PATH`,
`jsonl:PATH`, `hf:NAME[:SPLIT]`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pydantic import Field

from tasks.errors import InputError
from tasks.settings import Settings
from tasks.types import Question


def _procedural(arg: str, n: int | None, seed: int) -> list[Question]:
    from .procedural import generate_questions

    return generate_questions(n if n is not None else 1000, seed=seed, split=arg or "train")


def _procedural_stream(arg: str, n: int | None, seed: int,
                       batch_size: int) -> Iterator[list[Question]]:
    from .procedural import question_batches as procedural_batches

    yield from procedural_batches(n if n is not None else 1000, seed=seed,
                                  split=arg or "train", batch_size=batch_size)


def _gsm8k(arg: str, n: int | None, seed: int) -> list[Question]:
    from .gsm8k import load_gsm8k

    return load_gsm8k(arg, limit=n)


def _tatqa(arg: str, n: int | None, seed: int) -> list[Question]:
    from .tatqa import load_tatqa

    return load_tatqa(arg, limit=n)


def _jsonl(arg: str, n: int | None, seed: int) -> list[Question]:
    from .jsonl import load_jsonl

    return load_jsonl(arg, limit=n)


def _hf(arg: str, n: int | None, seed: int) -> list[Question]:
    from .hf import load_hf

    name, _, split = arg.partition(":")
    return load_hf(name, split or "train", limit=n)


def _synth(arg: str, n: int | None, seed: int) -> list[Question]:
    raise InputError(f"--source synth:{arg}: synthesized questions are written inside a "
                     "refresh (with an LLM teacher), not loaded")


def _gold(q: Question) -> bool:
    return q.gold_answer is not None


def _tatqa_evaluable(q: Question) -> bool:
    # Span answers are not programs: TAT-QA is evaluated on its arithmetic questions.
    return _gold(q) and (q.meta.get("answer_type") == "arithmetic" or bool(q.gold_program))


@dataclass(frozen=True)
class SourceKind:
    """One kind of question source: how to load it (`arg` is what follows the colon; `n`
    items at most, `seed` for generators), how to stream it in batches when it can,
    whether it needs that argument, whether `n` reads the file's head (a file) or makes n
    items (a generator), and which of its questions an evaluation keeps."""

    load: Callable[[str, int | None, int], list[Question]]
    needs_arg: bool = True
    generated: bool = False
    evaluable: Callable[[Question], bool] = _gold
    stream: Callable[[str, int | None, int, int], Iterator[list[Question]]] | None = None


SOURCES: dict[str, SourceKind] = {
    "procedural": SourceKind(_procedural, needs_arg=False, generated=True,
                             stream=_procedural_stream),
    "gsm8k": SourceKind(_gsm8k),
    "tatqa": SourceKind(_tatqa, evaluable=_tatqa_evaluable),
    "jsonl": SourceKind(_jsonl),
    "hf": SourceKind(_hf),
    "synth": SourceKind(_synth, generated=True),
}
SOURCE_KINDS = tuple(SOURCES)


def parse_spec(spec: str) -> tuple[str, str]:
    """'gsm8k:path/x.jsonl' -> ('gsm8k', 'path/x.jsonl'); 'procedural' -> ('procedural', '')."""
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in SOURCES:
        raise InputError(f"--source {spec!r}: unknown source (one of {', '.join(SOURCES)})")
    if SOURCES[kind].needs_arg and not arg:
        raise InputError(f"--source {spec!r}: needs a path or name after '{kind}:'")
    return kind, arg


def load_questions(spec: str, n: int | None = None, seed: int = 0) -> list[Question]:
    """All questions of a source, or its first n (procedural: n items from `seed`).
    `synth:MODE` sources are written by an LLM inside a refresh (tasks/sources/synth.py)."""
    kind, arg = parse_spec(spec)
    return SOURCES[kind].load(arg, n, seed)


def question_batches(spec: str, n: int | None = None, seed: int = 0,
                     batch_size: int = 50_000) -> Iterator[list[Question]]:
    """The questions of `load_questions`, in the same order, a batch at a time. A source
    that streams (the procedural generator: a million items never sit in memory at once)
    streams; file and hub sources are small and are loaded whole, then cut."""
    kind, arg = parse_spec(spec)
    source = SOURCES[kind]
    if source.stream is not None:
        yield from source.stream(arg, n, seed, batch_size)
        return
    questions = source.load(arg, n, seed)
    for start in range(0, len(questions), batch_size):
        yield questions[start:start + batch_size]


class SourceConfig(Settings):
    """Where questions come from."""

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


__all__ = ["SOURCES", "SOURCE_KINDS", "InputError", "Question", "SourceConfig", "SourceKind",
           "load_questions", "parse_spec", "question_batches"]
