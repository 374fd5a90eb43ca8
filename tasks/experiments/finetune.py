"""Supervised fine-tuning of a student on an exported subset with TRL's SFTTrainer.

Loss on the completion only: rows are given to TRL as conversational prompt/completion
pairs, for which TRL tokenizes the prompt (with the generation prompt) and prompt +
completion and masks the common prefix (`completion_only_loss`). `assistant_only_loss` is
not used: it needs `{% generation %}` markers that most chat templates lack. Before any step
runs we check, on the dataset the trainer actually prepared, that the prompt carries no
labels and that the end-of-turn token closing the assistant turn does: a model never trained
on that token never learns to stop.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tasks.experiments.params import SFTParams, TrainingParams
from tasks.experiments.student import (
    TINY,
    as_prompt_completion,
    build_tiny_student,
    conversation_texts,
)

IGNORE = -100


class ChatTemplateError(ValueError):
    """The chat template puts the end-of-turn token outside the trained part (or the prompt
    inside it): training would run, and the model would never learn to stop."""


@dataclass
class FinetuneResult:
    output_dir: str
    loss_curve: list[dict[str, float]]
    train_seconds: float
    train_tokens: int
    tokens_per_s: float
    steps: int
    first_loss: float | None
    final_loss: float | None
    device: str
    n_examples: int
    n_parameters: int
    n_trainable: int
    metrics: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def device_info() -> tuple[str, bool]:
    """('cuda'|'cpu', bf16): the GPU when present, bf16 where it is supported."""
    import torch

    if torch.cuda.is_available():
        return "cuda", bool(torch.cuda.is_bf16_supported())
    return "cpu", False


def to_training_rows(dataset: Any) -> Any:
    """Any exported dataset (messages or prompt/completion) as conversational
    prompt/completion columns only."""
    cols = dataset.column_names
    return dataset.map(as_prompt_completion, remove_columns=[c for c in cols
                                                             if c not in ("prompt", "completion")])


def completion_label_mask(tokenizer: Any, row: dict[str, Any]) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of one example, tokenized the way SFTTrainer does for a
    conversational prompt/completion row: same helpers, same prefix rule."""
    from trl.data_utils import _tokenize, common_prefix_length

    pc = as_prompt_completion(row)
    prompt_ids = _tokenize(tokenizer, pc["prompt"], add_generation_prompt=True)["input_ids"]
    full_ids = _tokenize(tokenizer, pc["prompt"] + pc["completion"])["input_ids"]
    n_prompt = common_prefix_length(prompt_ids, full_ids)
    labels = [IGNORE] * n_prompt + list(full_ids[n_prompt:])
    return list(full_ids), labels


def check_label_mask(tokenizer: Any, input_ids: list[int], labels: list[int],
                     prompt_len: int | None = None, max_length: int | None = None) -> None:
    """Raise ChatTemplateError unless the end-of-turn token of the assistant turn is trained
    and (when `prompt_len` is known) no prompt token is."""
    eos = tokenizer.eos_token_id
    trained = [i for i, lab in enumerate(labels) if lab != IGNORE]
    if not trained:
        raise ChatTemplateError("no token of the example carries a label (empty completion, or "
                                "max_length cut it off)")
    if prompt_len is not None and trained[0] < prompt_len:
        raise ChatTemplateError("prompt tokens carry labels: the loss is not completion-only")
    eos_positions = [i for i in range(trained[0], len(input_ids)) if input_ids[i] == eos]
    if not eos_positions and max_length and len(input_ids) >= max_length:
        raise ChatTemplateError(
            f"an example of {len(input_ids)} tokens was cut at max_length={max_length} before "
            f"its end-of-turn token {tokenizer.eos_token!r}; raise max_length (and the "
            "model's context) or shorten the examples")
    if not eos_positions:
        raise ChatTemplateError(
            f"the chat template does not put the end-of-turn token {tokenizer.eos_token!r} "
            "after the assistant turn; the model would never learn to stop. Set the "
            "tokenizer's eos_token to the template's end-of-turn token.")
    if labels[eos_positions[0]] == IGNORE:
        raise ChatTemplateError(
            f"the end-of-turn token {tokenizer.eos_token!r} of the assistant turn is masked "
            "out of the loss; the model would never learn to stop")


def n_layers(model: Any) -> int:
    config = model.config
    return int(getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", 0))


def lora_targets(params: TrainingParams, model: Any) -> list[str] | str:
    """Module names that get adapters: as given, or for 'auto' the attention and MLP
    projections (GPT-2 fuses q/k/v in one Conv1D: c_attn, c_proj, c_fc)."""
    if params.lora_targets not in ("", "auto"):
        return "all-linear" if params.lora_targets == "all-linear" else \
            [t.strip() for t in params.lora_targets.split(",") if t.strip()]
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    llama = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    return [t for t in llama if t in names] or [t for t in ("c_attn", "c_proj", "c_fc")
                                               if t in names] or "all-linear"


def top_layers(params: TrainingParams, model: Any) -> list[int] | None:
    """Indices of the trained layers when only the top ones train, else None."""
    total = n_layers(model)
    if not params.trainable_layers or not total or params.trainable_layers >= total:
        return None
    return list(range(total - params.trainable_layers, total))


def lora_config(params: TrainingParams, model: Any) -> Any:
    from peft import LoraConfig

    targets = lora_targets(params, model)
    layers = top_layers(params, model)
    return LoraConfig(r=params.lora_r, lora_alpha=params.lora_alpha,
                      lora_dropout=params.lora_dropout, target_modules=targets,
                      task_type="CAUSAL_LM", layers_to_transform=layers,
                      fan_in_fan_out=isinstance(targets, list) and "c_attn" in targets)


def freeze_below(model: Any, layers: list[int]) -> None:
    """Full fine-tune of the top layers only: the embeddings (and a head tied to them) and
    the lower layers are frozen, so autograd stops at the lowest trained layer; the top
    layers and the final norm train."""
    keep = tuple(f".{i}." for i in layers)
    for name, param in model.named_parameters():
        final_norm = ".layers." not in name and ".h." not in name and (
            "norm" in name or "ln_f" in name)
        param.requires_grad = any(k in name for k in keep) or final_norm


def score_labelled_positions_only() -> bool:
    """Make TRL's fused LM head score only the positions that carry a label, on a CPU too.

    TRL (1.16) projects through the LM head in tiles and compacts the batch to the labelled
    positions only where its Triton kernel runs; elsewhere it scores every position (to keep
    tile shapes fixed for compilers) and masks the result. A completion-only example here is
    ~500 tokens of which ~70 carry a label, so on a CPU the head then costs a quarter of a
    LoRA step (profile in BENCHMARKS.md). The compact path gives the same loss and gradients
    (tests/test_finetune.py) and is chosen here for CPU tensors; the kernel choice itself stays
    TRL's. Returns False (and changes nothing) if this TRL has no such switch."""
    import trl.trainer.utils as trl_utils

    choose = getattr(trl_utils, "_use_triton", None)
    if choose is None:
        return False
    if getattr(choose, "compact_on_cpu", False):
        return True

    def compact(device: Any) -> bool:
        return device.type == "cpu" or choose(device)

    compact.compact_on_cpu = True  # type: ignore[attr-defined]
    compact.__wrapped__ = choose  # type: ignore[attr-defined]  # bench/outcome.py --levers
    trl_utils._use_triton = compact
    return True


def make_trainer(dataset: Any, output_dir: str | Path, params: SFTParams,
                 model: Any = None, tokenizer: Any = None, callbacks: list[Any] | None = None,
                 progress: bool = False) -> Any:
    """An SFTTrainer ready to train: model built/loaded, data prepared, label mask checked.

    `model`/`tokenizer` override `params.base_model` (the ladder passes a shared tiny base)."""
    import torch
    from trl import SFTConfig, SFTTrainer

    from tasks.experiments.student import load_student

    device, bf16 = device_info()
    if params.threads and device == "cpu":
        torch.set_num_threads(params.threads)
    rows = to_training_rows(dataset)
    if model is None:
        if params.base_model == TINY:
            model, tokenizer = build_tiny_student(conversation_texts(rows),
                                                  seed=params.train_seed)
        else:
            model, tokenizer = load_student(
                params.base_model, dtype=torch.bfloat16 if bf16 and not params.lora else None)
    layers = top_layers(params, model)
    if layers and not params.lora:
        freeze_below(model, layers)
    steps = params.max_steps if params.max_steps else -1
    # Longer sequences than the model's context would fail inside the position embedding.
    context = getattr(model.config, "n_positions", None) or getattr(
        model.config, "max_position_embeddings", None)
    max_length = min(params.max_length, context) if context else params.max_length
    rows, too_long = fitting_rows(rows, tokenizer, max_length)
    config = SFTConfig(
        output_dir=str(output_dir),
        max_steps=steps,
        num_train_epochs=params.epochs,
        learning_rate=params.resolved_lr(),
        per_device_train_batch_size=params.batch_size,
        gradient_accumulation_steps=params.grad_accum,
        warmup_steps=params.warmup_ratio,  # a float < 1: that share of the total steps
        lr_scheduler_type="linear",
        max_length=max_length,
        completion_only_loss=True,
        # TRL defaults both on; checkpointing only costs time on models this small.
        activation_checkpointing=device == "cuda" and params.base_model != TINY,
        bf16=bf16,
        use_cpu=device == "cpu",
        logging_steps=params.logging_steps,
        logging_first_step=True,
        save_strategy="steps" if params.save_checkpoints else "no",
        save_steps=max(steps // 4, 50) if steps > 0 else 500,
        report_to="none",
        seed=params.train_seed,
        data_seed=params.train_seed,
        train_sampling_strategy="group_by_length" if params.group_by_length else "random",
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
        disable_tqdm=not progress,
    )
    peft_config = lora_config(params, model) if params.lora else None
    score_labelled_positions_only()
    trainer = SFTTrainer(model=model, args=config, train_dataset=rows, processing_class=tokenizer,
                         peft_config=peft_config, callbacks=callbacks)
    if not progress:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # no per-log dict prints in flows and tests
    _check_prepared(trainer, tokenizer, rows, max_length)
    trainer.dropped_too_long = too_long  # reported in the run's metrics
    return trainer


def fitting_rows(rows: Any, tokenizer: Any, max_length: int) -> tuple[Any, int]:
    """The rows whose prompt and completion fit in `max_length` tokens, and how many did
    not. TRL would cut a longer one at the end, which is where its completion (the whole
    lesson) is, and drop it when nothing labelled is left: a silent loss of training data.
    Here it leaves before training and is counted (`dropped_too_long`); none fitting is an
    error naming the longest."""
    lengths = [len(completion_label_mask(tokenizer, row)[0]) for row in rows]
    keep = [i for i, n in enumerate(lengths) if n <= max_length]
    if not keep:
        raise ChatTemplateError(f"all {len(lengths)} examples are longer than max_length="
                                f"{max_length} tokens (shortest {min(lengths)}); raise "
                                "max_length (up to the model's context)")
    if len(keep) == len(lengths):
        return rows, 0
    return rows.select(keep), len(lengths) - len(keep)


def _check_prepared(trainer: Any, tokenizer: Any, rows: Any, max_length: int) -> None:
    """The mask check on what the trainer will really feed the model (first rows)."""
    prepared = trainer.train_dataset
    for i in range(min(4, len(prepared))):
        row = prepared[i]
        check_label_mask(tokenizer, row["input_ids"], row["labels"], max_length=max_length)
    ids, labels = completion_label_mask(tokenizer, rows[0])
    if labels != list(prepared[0]["labels"][: len(labels)]):
        # Our reading of TRL's masking and TRL's own must agree, or the test of the mask
        # tests nothing.
        raise ChatTemplateError("completion_label_mask disagrees with SFTTrainer's labels")


def train(trainer: Any, output_dir: str | Path, *, merge_lora: bool = True) -> FinetuneResult:
    """Run the trainer, save model + tokenizer to `output_dir`, and measure it."""
    device, _ = device_info()
    n_params = sum(p.numel() for p in trainer.model.parameters())
    n_trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    t0 = time.perf_counter()
    out = trainer.train()
    seconds = time.perf_counter() - t0
    history = trainer.state.log_history
    curve = [{"step": int(h["step"]), "loss": float(h["loss"]),
              **({"lr": float(h["learning_rate"])} if "learning_rate" in h else {})}
             for h in history if "loss" in h]
    tokens = int(trainer.state.num_input_tokens_seen or 0)
    output_dir = Path(output_dir)
    model = trainer.model
    if merge_lora and hasattr(model, "merge_and_unload"):
        # One self-contained model directory: evaluation loads every run the same way.
        model = model.merge_and_unload()
    model.save_pretrained(output_dir)
    trainer.processing_class.save_pretrained(output_dir)
    for ckpt in output_dir.glob("checkpoint-*"):
        if not trainer.args.save_strategy or str(trainer.args.save_strategy) == "no":
            shutil.rmtree(ckpt, ignore_errors=True)
    return FinetuneResult(
        output_dir=str(output_dir), loss_curve=curve, train_seconds=round(seconds, 3),
        train_tokens=tokens, tokens_per_s=round(tokens / seconds, 1) if seconds else 0.0,
        steps=int(trainer.state.global_step),
        first_loss=curve[0]["loss"] if curve else None,
        final_loss=curve[-1]["loss"] if curve else None,
        device=device, n_examples=len(trainer.train_dataset), n_parameters=n_params,
        n_trainable=n_trainable, metrics={
            **{k: v for k, v in out.metrics.items() if isinstance(v, int | float)},
            "dropped_too_long": getattr(trainer, "dropped_too_long", 0)})


def finetune(dataset: Any, output_dir: str | Path, params: SFTParams,
             model: Any = None, tokenizer: Any = None,
             callbacks: list[Any] | None = None, progress: bool = False) -> FinetuneResult:
    """Fine-tune `params.base_model` (or the given model) on `dataset`; the trained model
    and tokenizer end up in `output_dir`."""
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    trainer = make_trainer(dataset, output_dir, params, model=model, tokenizer=tokenizer,
                           callbacks=callbacks, progress=progress)
    return train(trainer, output_dir)
