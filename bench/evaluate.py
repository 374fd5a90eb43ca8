"""Evaluation speed: our decoder (tasks/experiments/generate.py: shared prompt prefix per
context, finished rows leave the batch) against `transformers`' `model.generate` on the same
questions, batches and stopping rule, in the same run. Checks that both write the same text.

    python bench/evaluate.py --model data/models/<run> --n 100 --threads 2

The goal (issue 12): at least 1 question/s for smollm2-135m on 2 cores. A trained model is
the meaningful case: the base model rarely closes a code fence, so every row runs to
--max-new-tokens with either decoder."""

from __future__ import annotations

import argparse
import time

import _env  # noqa: F401  (offline settings and sys.path first)
from _report import markdown_table, report


def hf_generate(model, tok, questions, *, batch_size: int, max_new_tokens: int) -> list[str]:
    """The raw baseline: `model.generate`, left-padded batches in prompt-length order, the
    same program-end stopping rule, no prefix sharing."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    from tasks.experiments.evaluate import program_closed
    from tasks.experiments.student import prompt_messages

    tok.padding_side = "left"
    prompts = [tok.apply_chat_template(prompt_messages(q.text, q.context), tokenize=False,
                                       add_generation_prompt=True) for q in questions]
    order = sorted(range(len(prompts)), key=lambda i: len(tok(prompts[i])["input_ids"]))
    out = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True,
                  add_special_tokens=False)
        width = enc["input_ids"].shape[1]

        class ProgramEnd(StoppingCriteria):
            def __init__(self, width: int) -> None:
                self.width = width

            def __call__(self, ids, scores, **kwargs):
                return torch.tensor([program_closed(t) for t in tok.batch_decode(
                    ids[:, self.width:], skip_special_tokens=True)])

        with torch.inference_mode():
            gen = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens,
                                 eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                                 stopping_criteria=StoppingCriteriaList([ProgramEnd(width)]))
        for i, text in zip(idx, tok.batch_decode(gen[:, width:], skip_special_tokens=True),
                           strict=True):
            out[i] = text
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m", help="model dir, alias or HF id")
    ap.add_argument("--eval", default="procedural-heldout")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=150)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()

    import torch

    from tasks.experiments.evaluate import generate_completions, load_eval_set, score
    from tasks.experiments.student import load_student

    torch.set_num_threads(args.threads)
    model, tok = load_student(args.model)
    questions = load_eval_set(args.eval, args.n)

    t0 = time.perf_counter()
    stats: dict[str, int] = {}
    ours = generate_completions(model, tok, questions, batch_size=args.batch_size,
                                max_new_tokens=args.max_new_tokens, stats=stats)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    base = hf_generate(model, tok, questions, batch_size=args.batch_size,
                       max_new_tokens=args.max_new_tokens)
    t_base = time.perf_counter() - t0
    same = sum(a == b for a, b in zip(ours, base, strict=True))
    acc = score(questions, ours, eval_set=args.eval).accuracy
    prompt_tokens = sum(len(tok(p, add_special_tokens=False)["input_ids"])
                        for p in _prompts(tok, questions))
    n = len(questions)
    rows = [["model.generate (baseline)", round(t_base, 1), round(n / t_base, 3), prompt_tokens],
            ["ours: shared prefix, rows leave", round(t_ours, 1), round(n / t_ours, 3),
             stats.get("prompt_tokens_computed", 0)]]
    body = (f"{n} questions of `{args.eval}`, model `{args.model}`, batch {args.batch_size}, "
            f"max {args.max_new_tokens} new tokens, {args.threads} threads, greedy.\n\n"
            + markdown_table(["decoder", "seconds", "questions/s", "prompt tokens computed"],
                             rows)
            + f"\n\nSpeed-up {t_base / t_ours:.2f}x; identical text on {same} of {n} "
              f"questions; accuracy {acc:.3f}; {stats.get('new_tokens', 0)} tokens "
              f"generated. Goal: at least 1 question/s on 2 cores.")
    report("evaluate", body, args)


def _prompts(tok, questions) -> list[str]:
    from tasks.experiments.student import prompt_messages

    return [tok.apply_chat_template(prompt_messages(q.text, q.context), tokenize=False,
                                    add_generation_prompt=True) for q in questions]


if __name__ == "__main__":
    main()
