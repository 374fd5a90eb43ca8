"""Fine-tuning, evaluation and the ladder: real TRL trainer, real tiny student, real sandbox,
a real warehouse made by the real refresh flow. Sizes are tiny so the file runs in minutes."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.experiments.evaluate import evaluate_model, load_eval_set, score
from tasks.experiments.finetune import (
    IGNORE,
    ChatTemplateError,
    check_label_mask,
    completion_label_mask,
    finetune,
    make_trainer,
)
from tasks.experiments.params import SFTParams
from tasks.experiments.student import build_tiny_student, conversation_texts, example_messages
from tasks.sources import load_questions

REPO = Path(__file__).resolve().parents[1]

ARITHMETIC = [("What is 17 plus 25?", "a = 17\nb = 25\nans = a + b", "42"),
              ("What is 9 times 8?", "a = 9\nb = 8\nans = a * b", "72"),
              ("What is 100 minus 37?", "a = 100\nb = 37\nans = a - b", "63"),
              ("What is 81 divided by 3?", "a = 81\nb = 3\nans = a / b", "27")]


def _rows(questions) -> list[dict]:
    return [{"messages": example_messages(q.text, q.context, q.gold_program)}
            for q in questions]


@pytest.fixture(scope="module")
def procedural_rows() -> list[dict]:
    return _rows(load_questions("procedural", n=24, seed=5))


def test_completion_only_mask(procedural_rows, tmp_path):
    from datasets import Dataset

    model, tok = build_tiny_student(conversation_texts(procedural_rows), n_layer=1, n_embd=64,
                                    n_head=2)
    row = procedural_rows[0]
    ids, labels = completion_label_mask(tok, row)
    prompt_ids = tok.apply_chat_template(row["messages"][:2], add_generation_prompt=True,
                                         tokenize=True, return_dict=True)["input_ids"]
    n_prompt = len(prompt_ids)
    assert ids[:n_prompt] == list(prompt_ids)
    # Every prompt token (system, user, the assistant header) carries no loss ...
    assert labels[:n_prompt] == [IGNORE] * n_prompt
    # ... every completion token does, and the last one is the end-of-turn token (= eos).
    assert all(lab == tok_id for lab, tok_id in zip(labels[n_prompt:], ids[n_prompt:],
                                                    strict=True))
    assert ids[-1] == tok.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    assert labels[-1] == tok.eos_token_id
    assert "```python" in tok.decode(ids[n_prompt:])
    check_label_mask(tok, ids, labels, prompt_len=n_prompt)

    # What the SFTTrainer will really train on agrees with it (checked inside make_trainer
    # too, which would raise).
    trainer = make_trainer(Dataset.from_list(procedural_rows[:4]), tmp_path / "m",
                           SFTParams(max_steps=1, batch_size=2), model=model,
                           tokenizer=tok)
    assert trainer.train_dataset[0]["labels"] == labels

    # A template whose end-of-turn token is not in the trained part is refused.
    masked = list(labels)
    masked[-1] = IGNORE
    with pytest.raises(ChatTemplateError, match="masked out"):
        check_label_mask(tok, ids, masked)
    with pytest.raises(ChatTemplateError, match="prompt tokens carry labels"):
        check_label_mask(tok, ids, list(ids), prompt_len=n_prompt)
    # An eos the template never writes (a base model's <|endoftext|>) is refused before
    # training starts.
    tok.eos_token = "<|endoftext|>"
    with pytest.raises(ChatTemplateError, match="end-of-turn"):
        make_trainer(Dataset.from_list(procedural_rows[:4]), tmp_path / "m2",
                     SFTParams(max_steps=1, batch_size=2), model=model, tokenizer=tok)


@pytest.mark.slow
def test_evaluation_executes_generated_programs(tmp_path):
    """A student trained to recite four programs: accuracy comes from running what it
    generates in the sandbox (one gold answer is changed, so exactly 3 of 4 match)."""
    from datasets import Dataset

    path = tmp_path / "arith.jsonl"
    path.write_text("".join(json.dumps({"question": q, "program": p, "answer": a}) + "\n"
                            for q, p, a in ARITHMETIC))
    questions = load_eval_set(f"jsonl:{path}")
    rows = _rows(questions)
    model, tok = build_tiny_student(conversation_texts(rows), n_layer=2, n_embd=128, n_head=4,
                                    vocab_size=1024)
    result = finetune(Dataset.from_list(rows), tmp_path / "m",
                      SFTParams(max_steps=60, batch_size=4, learning_rate=3e-3,
                                     warmup_ratio=0.0, logging_steps=10),
                      model=model, tokenizer=tok)
    assert result.final_loss < 0.2 < 5 < result.first_loss

    wrong_gold = [*questions[:3], dataclasses.replace(questions[3], gold_answer="28")]
    ev = evaluate_model(model, tok, wrong_gold, eval_set="arith", max_new_tokens=48)
    assert (ev.n, ev.correct, ev.accuracy) == (4, 3, 0.75)
    assert ev.exec_error_rate == 0.0 and ev.no_program_rate == 0.0
    [failure] = ev.failures
    assert failure["status"] == "ok" and failure["gold"] == "28"
    assert float(failure["predicted"]) == 27.0  # 81 / 3, computed by the sandbox

    # The scoring half on its own: execution errors and missing programs are counted apart.
    completions = ["```python\nans = 17 + 25\n```", "```python\nans = 9 *\n```",
                   "I am not sure.", "```python\nimport os\nans = os.getcwd()\n```"]
    scored = score(questions, completions, eval_set="arith")
    assert (scored.correct, scored.accuracy) == (1, 0.25)
    assert scored.exec_error_rate == 0.5  # a syntax error, and an import the sandbox forbids
    assert scored.no_program_rate == 0.25


@pytest.fixture(scope="module")
def warehouse(prefect_harness, procedural_warehouse) -> Path:
    """The session's procedural refresh (snapshot 1), this module's copy (conftest.py)."""
    return procedural_warehouse


@pytest.mark.slow
def test_finetune_flow_records_run_and_loss_goes_down(warehouse, tmp_path):
    from flows.experiments import FinetuneConfig, finetune_flow
    from warehouse import Store

    experiment = finetune_flow(FinetuneConfig(
        subset_size=48, seed=1, max_steps=12, batch_size=4, eval_n=6, max_new_tokens=48,
        warehouse=str(warehouse), output_root=str(tmp_path / "models")))
    [out] = experiment.models
    curve = [p["loss"] for p in out.train.loss_curve]
    assert len(curve) >= 3
    assert sum(curve[-2:]) / 2 < curve[0] - 1.0, curve  # from ~ln(vocab) down

    row = Store(warehouse).experiments.get_finetune_run(out.run_id)
    assert row["status"] == "completed" and row["base_model"] == "tiny"
    assert row["subset_id"] == out.subset_id and row["snapshot_id"] == 1
    assert row["params"]["max_steps"] == 12
    assert [p["loss"] for p in row["loss_curve"]] == curve
    assert row["train_tokens"] > 12 * 4 * 100 and row["tokens_per_s"] > 0
    assert row["metrics"]["steps"] == 12 and row["metrics"]["n_examples"] == 48
    model_dir = Path(row["output_dir"])
    assert (model_dir / "config.json").exists() and (model_dir / "tokenizer.json").exists()
    assert (model_dir / "data" / "hf").is_dir()  # the exported training data, for the record

    [ev] = Store(warehouse).experiments.evaluations_for_run(out.run_id)
    assert ev["eval_set"] == "procedural-heldout" and ev["n"] == 6
    assert ev["accuracy"] == out.eval.accuracy == row["metrics"]["accuracy"]
    cols, rows = Store(warehouse).query(
        "select examples, max_steps, status, seed, method from experiment_results "
        "where run_id = ?", [out.run_id])
    assert rows == [(48, 12, "completed", 0, "sft")]
    assert out.run_id == experiment.experiment_id and Path(out.output_dir).name == out.run_id


@pytest.mark.slow
def test_gpu_ladder_script_cpu_mode(warehouse, prefect_server, tmp_path):
    """bench/gpu_ladder.sh without a GPU: the tiny student's ladder through the CLI."""
    env = {**os.environ, "WAREHOUSE": str(warehouse), "SIZES": "16,32", "MAX_STEPS": "4",
           "BATCH": "2",
           "EVAL_N": "4", "MAX_NEW_TOKENS": "24", "OUTPUT_ROOT": str(tmp_path / "models"),
           "BIN": str(Path(sys.executable).parent), "CUDA_VISIBLE_DEVICES": "",
           # the session's server, as after `make serve` (not an ephemeral one per command)
           "PREFECT_API_URL": prefect_server.api_url}
    out = subprocess.run(["bash", str(REPO / "bench" / "gpu_ladder.sh")], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "mode=cpu base=tiny" in out.stdout
    lines = [ln.split() for ln in out.stdout.splitlines()
             if ln.split()[:1] in (["base"], ["random"])]
    assert [(ln[0], ln[1]) for ln in lines] == [("base", "0"), ("random", "16"),
                                                ("random", "32")]
    curve = Path(out.stdout.split("curve: ")[1].split()[0])
    assert curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    from warehouse import Store

    _, runs = Store(warehouse).query(
        "select examples, max_steps, status from experiment_results "
        "where run_id like 'ladder-%' order by examples")
    assert runs == [(16, 4, "completed"), (32, 4, "completed")]
    _, base = Store(warehouse).query(
        "select count(*) from evaluations where finetune_run_id is null "
        "and params ->> 'size' = '0'")
    assert base == [(1,)]


def test_configs_fill_the_form_in_parts_and_type_plainly():
    """The UI form (the JSON schema Prefect renders) shows each config in parts, as the
    refresh's: what to train on, how to train, how to evaluate, where models go; no field
    needs a type chooser (anyOf) before a value can be typed; every field says what it is.
    The CLI offers every training field as a flag of the same name."""
    from typer.testing import CliRunner

    from flows.cli.main import app
    from flows.experiments import DPOConfig, EvaluateConfig, FinetuneConfig, LadderConfig
    from tasks.experiments.params import DPOParams, TrainingParams

    assert list(FinetuneConfig.model_fields) == ["data", "training", "evaluation", "output",
                                                 "warehouse"]
    assert list(DPOConfig.model_fields)[:2] == ["data", "training"]
    assert list(LadderConfig.model_fields)[:2] == ["data", "training"]
    assert list(SFTParams.model_fields)[:2] == ["base_model", "lora"]
    # One declaration: SFT and DPO share every TrainingParams field and add their own.
    shared = set(TrainingParams.model_fields)
    assert shared < set(SFTParams.model_fields) and shared < set(DPOParams.model_fields)
    assert set(DPOParams.model_fields) - shared == {"beta", "loss_type"}
    for cls in (FinetuneConfig, DPOConfig, LadderConfig, EvaluateConfig):
        schema = cls.model_json_schema()
        for name, part in [("", schema), *schema.get("$defs", {}).items()]:
            props = part.get("properties", {})
            assert not [k for k, v in props.items() if "anyOf" in v], (cls, name)
            assert all(v.get("description") or "$ref" in v for v in props.values()), (cls, name)
    # Flat names go to their part.
    cfg = FinetuneConfig(subset_size=5, lora_r=4, eval_n=3, warehouse="w.duckdb")
    assert (cfg.data.subset_size, cfg.training.lora_r, cfg.evaluation.eval_n) == (5, 4, 3)
    res = CliRunner().invoke(app, ["finetune", "--help"], terminal_width=250)
    for name in SFTParams.model_fields:
        assert f"--{name.replace('_', '-')}" in res.output, name
    res = CliRunner().invoke(app, ["dpo", "--help"], terminal_width=250)
    assert "--beta" in res.output and "--pair-type" in res.output
    bad = CliRunner().invoke(app, ["finetune", "--subset-size", "5", "--lora-r", "0"])
    assert bad.exit_code == 2 and "--lora-r: Input should be greater than or equal to 1" \
        in bad.output
    mix = CliRunner().invoke(app, ["ladder", "--mix", "procedural=x"])
    assert mix.exit_code == 2 and "--mix" in mix.output and "SOURCE=SHARE" in mix.output


@pytest.mark.slow
def test_ladder_strategies_and_unverified_arm(warehouse, tmp_path):
    """Two strategies and the unverified arm in one ladder: one curve each on one plot,
    every rung in experiment_results, the unverified arm's data from the noisy teacher."""
    from datasets import load_from_disk

    from flows.experiments import LadderConfig, ladder_flow
    from warehouse import Store

    out = ladder_flow(LadderConfig(
        sizes=[16, 32], strategies=["random", "difficulty"], unverified_rate=0.5,
        arm_sizes=[16], max_steps=3, batch_size=2, eval_n=4, max_new_tokens=24,
        warehouse=str(warehouse), output_root=str(tmp_path / "models")))
    curves = [(p.curve, p.examples) for p in out.points]
    assert curves == [("base", 0), ("random", 16), ("random", 32), ("difficulty", 16),
                      ("unverified (50% wrong)", 16)]
    assert Path(out.curve_png).read_bytes()[:4] == b"\x89PNG"
    arm = next(m for m in out.models if m.rung.arm == "unverified")
    data = load_from_disk(str(Path(arm.output_dir) / "data"))
    assert len(data) == 16
    _, rows = Store(warehouse).query(
        "select run_id, f.params ->> 'arm', f.params ->> 'wrong_examples', e.max_steps "
        "from experiment_results e join finetune_runs f using (run_id) "
        "where run_id like ? order by run_id",
        [out.experiment_id + "%"])
    by_arm = {r[1]: r for r in rows}
    assert len(rows) == 4 and set(by_arm) == {"verified", "unverified"}
    assert 0 < int(by_arm["unverified"][2]) < 16 and {r[3] for r in rows} == {3}


def test_generation_plan_shares_prefixes_and_packs_whole_groups():
    from tasks.experiments.generate import plan_batches

    ids = [[1, 2, 3, 4, 5], [1, 2, 3, 9], [1, 2, 3, 4, 7, 8], [6, 6], [1, 2, 3, 4, 5]]
    keys = ["a", "a", "a", "b", "c"]
    batches = plan_batches(ids, keys, batch_size=3)
    groups = [g for b in batches for g in b]
    assert sorted(i for _, rows in groups for i in rows) == [0, 1, 2, 3, 4]
    assert all(sum(len(rows) for _, rows in b) <= 3 for b in batches)
    by_rows = {tuple(rows): plen for plen, rows in groups}
    assert by_rows[(0, 1, 2)] == 3  # the common prefix of the three "a" rows
    assert by_rows[(3,)] == 1 and by_rows[(4,)] == 4  # alone: all but its last token
    # A group larger than a batch is split; every row keeps at least one token of its own.
    split = plan_batches([[1, 2]] * 5, ["k"] * 5, batch_size=2)
    assert [len(rows) for b in split for _, rows in b] == [2, 2, 1]
    assert all(plen == 1 for b in split for plen, _ in b)


def test_fused_head_scores_only_labelled_positions_with_the_same_loss(procedural_rows,
                                                                        tmp_path):
    """On a CPU TRL's fused LM head scores every position unless told otherwise; ours takes
    its compact path (labelled positions only). Loss and gradients equal the model's own
    cross-entropy over all positions with the prompt masked."""
    import torch
    import trl.trainer.utils as trl_utils
    from datasets import Dataset

    model, tok = build_tiny_student(conversation_texts(procedural_rows), n_layer=2, n_embd=64,
                                    n_head=2)
    trainer = make_trainer(Dataset.from_list(procedural_rows[:8]), tmp_path / "m",
                           SFTParams(max_steps=1, batch_size=4), model=model, tokenizer=tok)
    assert trl_utils._use_triton(torch.device("cpu")) is True  # the compact path is taken
    batch = next(iter(trainer.get_train_dataloader()))
    assert (batch["labels"] == IGNORE).float().mean() > 0.3  # a real prompt share to skip
    trainer.model.train()
    fused = trainer.compute_loss(trainer.model, dict(batch))
    fused.backward()
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    trainer.model.zero_grad()
    own = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                        labels=batch["labels"]).loss
    own.backward()
    assert torch.allclose(fused, own, rtol=1e-5, atol=1e-6), (fused.item(), own.item())
    assert grads and all(torch.allclose(grads[n], p.grad, rtol=1e-4, atol=1e-6)
                         for n, p in trainer.model.named_parameters() if n in grads)


@pytest.mark.slow
def test_ladder_repeats_store_every_run_with_its_seed_and_group(warehouse, tmp_path):
    """--repeats K: K models per rung, same subset, seeds train_seed..train_seed+K-1, one
    group; every evaluation keeps its per-question outcomes, and the point is their mean
    with an interval computed from them."""
    from flows.experiments import LadderConfig, ladder_flow
    from tasks.experiments.intervals import accuracy_interval
    from warehouse import Store

    out = ladder_flow(LadderConfig(
        sizes=[16], repeats=3, train_seed=5, max_steps=2, batch_size=8, eval_n=5,
        max_new_tokens=16, warehouse=str(warehouse), output_root=str(tmp_path / "models")))
    store = Store(warehouse)
    _, rows = store.query(
        "select seed, repeat, group_id, curve, subset_id, eval_id from experiment_results "
        "where experiment_id = ? order by seed", [out.experiment_id])
    assert [(r[0], r[1]) for r in rows] == [(5, 0), (6, 1), (7, 2)]
    assert len({(r[2], r[3], r[4]) for r in rows}) == 1 and rows[0][2] == "random@16"
    outcomes = store.experiments.outcomes([r[5] for r in rows])
    assert sorted(len(v) for v in outcomes.values()) == [5, 5, 5]
    [base, point] = out.points
    assert (base.curve, base.runs, point.curve, point.runs) == ("base", 1, "random", 3)
    ci = accuracy_interval([outcomes[r[5]] for r in rows])
    assert (point.accuracy, point.low, point.high) == (round(ci.mean, 4), round(ci.low, 4),
                                                       round(ci.high, 4))
    assert len({m.output_dir for m in out.models}) == 3


def test_examples_longer_than_max_length_are_left_out_and_counted(procedural_rows, tmp_path):
    """TRL cuts a too-long example at its end (where the completion is) and drops it when
    nothing labelled is left; here it leaves before training, and the run says how many."""
    from datasets import Dataset

    model, tok = build_tiny_student(conversation_texts(procedural_rows), n_layer=1, n_embd=64,
                                    n_head=2)
    long_q = load_questions("procedural", n=1, seed=99)[0]
    long_row = {"messages": example_messages(long_q.text + " Explain." * 400, long_q.context,
                                             long_q.gold_program)}
    rows = [long_row, *procedural_rows[:6]]
    lengths = [len(completion_label_mask(tok, r)[0]) for r in rows]
    limit = max(lengths[1:]) + 1
    assert lengths[0] > limit
    trainer = make_trainer(Dataset.from_list(rows), tmp_path / "m",
                           SFTParams(max_steps=1, batch_size=2, max_length=limit),
                           model=model, tokenizer=tok)
    assert trainer.dropped_too_long == 1 and len(trainer.train_dataset) == 6
    with pytest.raises(ChatTemplateError, match="all 1 examples are longer than max_length"):
        make_trainer(Dataset.from_list([long_row]), tmp_path / "m2",
                     SFTParams(max_steps=1, batch_size=2, max_length=limit),
                     model=model, tokenizer=tok)
