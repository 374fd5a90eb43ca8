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
    ap.add_argument("--rounds", type=int, default=2, help="runs of each decoder, alternating "
                    "(the machine is shared: load drifts between runs)")
    ap.add_argument("--hf", action="store_true", help="also time `model.generate`")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()

    import torch

    from tasks.experiments.evaluate import generate_completions, load_eval_set, score
    from tasks.experiments.student import load_student

    torch.set_num_threads(args.threads)
    model, tok = load_student(args.model)
    questions = load_eval_set(args.eval, args.n)
    n = len(questions)
    # Today's decoder (padded prefill, the decoder before issue 21) and the new default,
    # alternating ABBA so that a drift in the machine's load hits both alike.
    decoders = {"padded": "today's decoder: prefixes prefilled padded together",
                "separate": "new: each prefix prefilled alone, no padding"}
    runs: dict[str, list[tuple[float, dict[str, int], list[str]]]] = {k: [] for k in decoders}
    order = [k for r in range(args.rounds)
             for k in (list(decoders) if r % 2 == 0 else list(decoders)[::-1])]
    for name in order:
        stats: dict[str, int] = {}
        t0 = time.perf_counter()
        texts = generate_completions(model, tok, questions, batch_size=args.batch_size,
                                     max_new_tokens=args.max_new_tokens, stats=stats,
                                     prefill=name)
        runs[name].append((time.perf_counter() - t0, stats, texts))
        print(f"{name}: {runs[name][-1][0]:.1f} s {stats}", flush=True)
    reference = runs["padded"][0][2]
    rows = []
    for name, label in decoders.items():
        secs = [r[0] for r in runs[name]]
        st = runs[name][-1][1]
        same = min(sum(a == b for a, b in zip(r[2], reference, strict=True))
                   for r in runs[name])
        acc = score(questions, runs[name][0][2], eval_set=args.eval).accuracy
        rows.append([label, " / ".join(f"{s:.1f}" for s in secs),
                     round(n / (sum(secs) / len(secs)), 3), st.get("prompt_tokens_computed", 0),
                     st.get("prompt_tokens_padded", 0),
                     round(st.get("prefill_ms", 0) / 1e3, 1),
                     round(st.get("decode_ms", 0) / 1e3, 1), f"{same}/{n}", round(acc, 3)])
    t_old = sum(r[0] for r in runs["padded"]) / args.rounds
    t_new = sum(r[0] for r in runs["separate"]) / args.rounds
    extra = ""
    if args.hf:
        t0 = time.perf_counter()
        base = hf_generate(model, tok, questions, batch_size=args.batch_size,
                           max_new_tokens=args.max_new_tokens)
        t_hf = time.perf_counter() - t0
        same = sum(a == b for a, b in zip(base, reference, strict=True))
        extra = (f"\n\n`model.generate` on the same questions: {t_hf:.1f} s "
                 f"({n / t_hf:.3f} questions/s), identical text on {same} of {n}.")
    prompt_tokens = sum(len(tok(p, add_special_tokens=False)["input_ids"])
                        for p in _prompts(tok, questions))
    body = (f"{n} questions of `{args.eval}` ({len({q.context for q in questions})} contexts, "
            f"{prompt_tokens} prompt tokens before sharing), model `{args.model}`, batch "
            f"{args.batch_size}, max {args.max_new_tokens} new tokens, {args.threads} threads, "
            f"greedy; {args.rounds} runs each, alternating.\n\n"
            + markdown_table(["decoder", "seconds (each run)", "questions/s (mean)",
                              "prompt tokens", "computed with pads", "prefill s", "decode s",
                              "identical text", "accuracy"], rows)
            + f"\n\nSpeed-up {t_old / t_new:.2f}x. Identical text: against the first run of "
              f"today's decoder (the worst run counts). Prefill/decode seconds: last run."
            + extra)
    report("evaluate on TAT-QA" if args.eval.startswith("tatqa:") else "evaluate", body, args)


def _prompts(tok, questions) -> list[str]:
    from tasks.experiments.student import prompt_messages

    return [tok.apply_chat_template(prompt_messages(q.text, q.context), tokenize=False,
                                    add_generation_prompt=True) for q in questions]


if __name__ == "__main__":
    main()
