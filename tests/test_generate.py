"""The evaluation decoder (tasks/experiments/generate.py) on a real tiny student in float64:
prefixes prefilled one by one and placed into the batch's cache write what the padded prefill
writes and what `model.generate` writes row by row, while rows leave the batch at different
steps (the cache moves the rows that stay inside its buffers) and no pad is computed."""

from __future__ import annotations

import pytest

from tasks.experiments.generate import greedy_generate
from tasks.experiments.student import build_tiny_student


@pytest.fixture(scope="module")
def tiny():
    import torch

    texts = [f"Revenue {y}: {v}; cost {y}: {v // 3}" for y in range(2010, 2030)
             for v in (120, 4512, 77)]
    model, tok = build_tiny_student(texts, n_layer=2, n_embd=64, n_head=4, n_positions=160,
                                    vocab_size=300, seed=3)
    # float64: a batch of another size may take another matrix kernel; in float64 that can
    # not flip a greedy choice, so any difference below is the decoder's.
    return model.to(torch.float64).eval(), tok


def _prompts():
    tables = ["Revenue 2019: 4512; cost 2019: 1504. " * k for k in (1, 2, 3)]
    questions = ["What was revenue?", "And the cost in 2019?", "Ratio?"]
    prompts, keys = [], []
    for t, table in enumerate(tables):
        for q in questions[: 3 - t % 2]:
            prompts.append(f"{table}\nQ: {q}\nA:")
            keys.append(t)
    return prompts, keys


def test_separate_prefill_writes_what_padded_prefill_and_generate_write(tiny):
    import torch

    model, tok = tiny
    prompts, keys = _prompts()
    lengths = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    # Rows run until the model's 160 positions are full: each leaves at its own step.
    assert len(set(lengths)) >= 3 and max(lengths) < 150
    runs = {}
    for prefill in ("padded", "separate"):
        stats: dict[str, int] = {}
        runs[prefill] = (greedy_generate(model, tok, prompts, keys=keys, batch_size=8,
                                         max_new_tokens=200, stats=stats, prefill=prefill),
                         stats)
    (padded, s_pad), (separate, s_sep) = runs["padded"], runs["separate"]
    assert separate == padded
    assert s_sep["prompt_tokens_computed"] == s_pad["prompt_tokens_computed"]
    # Separate prefill computes no pad in the prefixes; the padded one does.
    assert s_sep["prompt_tokens_padded"] < s_pad["prompt_tokens_padded"]
    assert 0 < s_sep["new_tokens"] <= sum(160 - n for n in lengths)
    for prompt, n, text in zip(prompts, lengths, separate, strict=True):
        enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            gen = model.generate(**enc, do_sample=False, max_new_tokens=160 - n,
                                 eos_token_id=tok.eos_token_id,
                                 pad_token_id=tok.pad_token_id)
        assert text == tok.decode(gen[0, n:], skip_special_tokens=True)
