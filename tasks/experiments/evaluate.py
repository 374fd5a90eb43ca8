"""Evaluate a student: it writes a program per question, the sandbox runs it, the answer
module compares the value with the gold answer.

Greedy decoding (tasks/experiments/generate.py): batched with the KV cache, the prompt prefix
computed once for the questions that share a context, prompts ordered by length so a batch
pads little. A row stops at the end of its turn (eos) or as soon as its program's code fence
closes (an untrained model otherwise writes prose until max_new_tokens), and leaves the batch
when it stops.
Questions render through the same chat template and `tasks.render` functions as the
training data.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tasks.answers import answers_match
from tasks.execute import execute_programs
from tasks.experiments.abstention import abstention_score, is_abstention, is_unanswerable
from tasks.experiments.generate import Prefill, greedy_generate
from tasks.experiments.student import prompt_messages
from tasks.render import extract_program
from tasks.sources import SOURCES, load_questions, parse_spec
from tasks.types import Question, stable_hash

EVAL_SETS_HELP = ("procedural-heldout | gsm8k:PATH | tatqa:PATH | jsonl:PATH | hf:NAME[:SPLIT] "
                  "(any --source spec)")


@dataclass
class EvalResult:
    eval_set: str
    n: int
    accuracy: float
    exec_error_rate: float
    no_program_rate: float
    correct: int
    seconds: float
    generate_seconds: float
    questions_per_s: float = 0.0
    new_tokens: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    # Abstention (tasks/experiments/abstention.py): +1 right, 0 "I don't know", -1 wrong, averaged;
    # precision/recall of the abstentions against the unanswerable questions (None: none).
    abstention_score: float = 0.0
    abstained: int = 0
    unanswerable: int = 0
    abstention_precision: float | None = None
    abstention_recall: float | None = None
    # Per question, in eval-set order (evaluation_items): the rows intervals and paired
    # differences between arms are computed from.
    question_ids: list[str] = field(default_factory=list)
    right: list[bool] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_eval_set(spec: str, n: int | None = None, seed: int = 0) -> list[Question]:
    """Questions of an eval set that an evaluation can score (its source's rule: a gold
    answer; TAT-QA: arithmetic ones). `procedural-heldout` is the generator's held-out split
    (seeds and phrasings never used for training), n items from `seed`. From a file, n
    questions are drawn by `seed` (a hash of seed and question id, so the same n and seed
    always give the same questions) and kept in file order, so questions on one context
    stay together for the decoder's shared prefixes."""
    if spec in ("procedural-heldout", "procedural:heldout"):
        spec = "procedural:heldout"
    kind, _ = parse_spec(spec)
    source = SOURCES[kind]
    if source.generated:
        return [q for q in load_questions(spec, n=n or 200, seed=seed) if source.evaluable(q)]
    questions = [q for q in load_questions(spec) if source.evaluable(q)]
    if n and n < len(questions):
        drawn = set(sorted(range(len(questions)), key=lambda i: stable_hash(
            "eval-draw", seed, questions[i].question_id))[:n])
        questions = [q for i, q in enumerate(questions) if i in drawn]
    return questions


# An opening fence line, then a closing fence: the program is complete.
_CLOSED_FENCE = re.compile(r"```[^\n`]*\n.*?```", re.S)


def program_closed(text: str) -> bool:
    """True once the generated text closes a code fence: the program is complete."""
    return bool(_CLOSED_FENCE.search(text))


def generate_completions(model: Any, tokenizer: Any, questions: Sequence[Question], *,
                         batch_size: int = 64, max_new_tokens: int = 256,
                         progress: Callable[[int], None] | None = None,
                         stats: dict[str, int] | None = None,
                         prefill: Prefill = "separate") -> list[str]:
    """Greedy completion (assistant turn text) for each question, in input order. Questions
    on the same context share its prompt prefix (tasks/experiments/generate.py).
    `stats["new_tokens"]` counts the generated tokens."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    prompts = [tokenizer.apply_chat_template(prompt_messages(q.text, q.context),
                                             tokenize=False, add_generation_prompt=True)
               for q in questions]
    return greedy_generate(model, tokenizer, prompts, keys=[q.context for q in questions],
                           batch_size=batch_size, max_new_tokens=max_new_tokens,
                           stop=program_closed, progress=progress, stats=stats,
                           prefill=prefill)


def score(questions: Sequence[Question], completions: Sequence[str], *, eval_set: str = "",
          exec_timeout_s: float = 2.0, max_failures: int = 20,
          generate_seconds: float = 0.0, new_tokens: int = 0) -> EvalResult:
    """Run the programs in `completions` in the sandbox and compare with the gold answers."""
    t0 = time.perf_counter()
    programs = [extract_program(c) for c in completions]
    runnable = [i for i, p in enumerate(programs) if p is not None]
    results = execute_programs([programs[i] for i in runnable], timeout_s=exec_timeout_s)
    by_index = dict(zip(runnable, results, strict=True))
    correct = exec_errors = no_program = 0
    failures: list[dict[str, Any]] = []
    abstained: list[bool] = []
    right: list[bool] = []
    statuses: list[str] = []
    for i, q in enumerate(questions):
        res = by_index.get(i)
        if res is None:
            no_program += 1
            status, value = "no_program", None
            abst = is_abstention(completions[i])  # "I don't know" in words, no program
        else:
            status, value = res.status, res.value
            if status != "ok":
                exec_errors += 1
            abst = status == "ok" and is_abstention(value)
        if is_unanswerable(q):
            ok = abst  # the right answer to an unanswerable question is to abstain
        else:
            ok = status == "ok" and not abst and answers_match(
                value, q.gold_answer, scale=q.meta.get("scale") or None)
        abstained.append(abst)
        right.append(ok)
        statuses.append(status)
        correct += ok
        if not ok and len(failures) < max_failures:
            failures.append({"question": q.text[:300], "gold": q.gold_answer, "status": status,
                             "predicted": None if value is None else str(value)[:100],
                             "error": (res.error[:200] if res is not None else ""),
                             "completion": completions[i][:500]})
    absten = abstention_score(questions, abstained, right)
    n = len(questions)
    seconds = generate_seconds + time.perf_counter() - t0
    return EvalResult(eval_set=eval_set, n=n, accuracy=correct / n if n else 0.0,
                      exec_error_rate=exec_errors / n if n else 0.0,
                      no_program_rate=no_program / n if n else 0.0, correct=correct,
                      seconds=round(seconds, 3), generate_seconds=round(generate_seconds, 3),
                      questions_per_s=round(n / seconds, 3) if seconds else 0.0,
                      new_tokens=new_tokens, failures=failures,
                      abstention_score=round(absten.score, 4), abstained=absten.abstained,
                      unanswerable=absten.unanswerable,
                      abstention_precision=absten.precision, abstention_recall=absten.recall,
                      question_ids=[q.question_id for q in questions], right=right,
                      statuses=statuses)


def evaluate_model(model: Any, tokenizer: Any, questions: Sequence[Question], *,
                   eval_set: str = "", batch_size: int = 64, max_new_tokens: int = 256,
                   exec_timeout_s: float = 2.0,
                   progress: Callable[[int], None] | None = None) -> EvalResult:
    t0 = time.perf_counter()
    stats: dict[str, int] = {}
    completions = generate_completions(model, tokenizer, questions, batch_size=batch_size,
                                       max_new_tokens=max_new_tokens, progress=progress,
                                       stats=stats)
    return score(questions, completions, eval_set=eval_set, exec_timeout_s=exec_timeout_s,
                 generate_seconds=time.perf_counter() - t0,
                 new_tokens=stats.get("new_tokens", 0))


def evaluate_path(model_ref: str, questions: Sequence[Question], *, threads: int = 0,
                  **kwargs: Any) -> EvalResult:
    """Evaluate a saved model (local dir, alias or HF id), on the GPU when there is one;
    `threads` > 0 sets torch's CPU threads."""
    import torch

    from tasks.experiments.finetune import device_info
    from tasks.experiments.student import load_student

    device, bf16 = device_info()
    if threads and device == "cpu":
        torch.set_num_threads(threads)
    model, tokenizer = load_student(model_ref, dtype=torch.bfloat16 if bf16 else None)
    model.to(device)
    return evaluate_model(model, tokenizer, questions, **kwargs)
