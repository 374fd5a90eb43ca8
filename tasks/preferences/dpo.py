"""DPO on preference pairs with TRL's DPOTrainer: the policy starts from a student (an SFT
model, or the tiny one in tests). With LoRA (`DPOParams.lora`) the reference model is the
policy with its adapters switched off, so no second copy of the model is held; without, a
frozen copy of the starting model is the reference.

The pairs render exactly as SFT rows do (tasks/preferences/export.py), so a model SFT-trained
on this project's rows continues on the same text. The result is the same `FinetuneResult` as
SFT's (loss curve, steps, seconds; the reward accuracy and margin in `metrics`), and the saved
model folder is self-contained (adapters merged), like an SFT run's.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

from tasks.experiments.finetune import FinetuneResult, device_info, lora_config
from tasks.experiments.params import DPOParams


def load_pairs(path: str | Path) -> Any:
    """A preference export folder (its hf/ dataset) or an HF dataset folder."""
    from datasets import load_from_disk

    p = Path(path)
    ds = load_from_disk(str(p / "hf" if (p / "hf").is_dir() else p))
    return ds.select_columns(["prompt", "chosen", "rejected"])


def train_dpo(pairs: Any, output_dir: str | Path, params: DPOParams, *, model: Any,
              tokenizer: Any, save: bool = True) -> FinetuneResult:
    """Train `model` on `pairs` (a datasets.Dataset with prompt/chosen/rejected in TRL's
    conversational preference format) and save it (with its tokenizer) to output_dir."""
    import torch
    from transformers.trainer_callback import PrinterCallback
    from trl import DPOConfig, DPOTrainer

    from tasks.experiments.finetune import score_labelled_positions_only

    device, bf16 = device_info()
    if params.threads and device == "cpu":
        torch.set_num_threads(params.threads)
    context = getattr(model.config, "n_positions", None) or getattr(
        model.config, "max_position_embeddings", None)
    config = DPOConfig(
        output_dir=str(output_dir), beta=params.beta, loss_type=[params.loss_type],
        learning_rate=params.resolved_lr(), max_steps=params.max_steps or -1,
        num_train_epochs=params.epochs, per_device_train_batch_size=params.batch_size,
        gradient_accumulation_steps=params.grad_accum, warmup_steps=params.warmup_ratio,
        max_length=min(params.max_length, context) if context else params.max_length,
        logging_steps=params.logging_steps, logging_first_step=True, save_strategy="no",
        report_to="none", seed=params.train_seed, data_seed=params.train_seed,
        use_cpu=device == "cpu", bf16=bf16, dataloader_num_workers=0, disable_tqdm=True)
    ref_model = None
    if not params.lora:
        # TRL would otherwise reload the reference from model.name_or_path, which a model
        # built or converted in this process does not have.
        ref_model = copy.deepcopy(model).eval()
        ref_model.requires_grad_(False)
    score_labelled_positions_only()  # the same fused LM head as SFT: labelled positions only
    trainer = DPOTrainer(model=model, ref_model=ref_model, args=config, train_dataset=pairs,
                         processing_class=tokenizer,
                         peft_config=lora_config(params, model) if params.lora else None)
    trainer.remove_callback(PrinterCallback)
    n_params = sum(p.numel() for p in trainer.model.parameters())
    n_trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    log = [{k: float(v) for k, v in e.items() if isinstance(v, int | float)}
           for e in trainer.state.log_history if "loss" in e]
    if save:
        trained = trainer.model
        if hasattr(trained, "merge_and_unload"):
            trained = trained.merge_and_unload()  # one self-contained folder, as SFT saves
        trained.save_pretrained(str(output_dir))
        tokenizer.save_pretrained(str(output_dir))
    last = log[-1] if log else {}
    return FinetuneResult(
        output_dir=str(output_dir), loss_curve=log, train_seconds=round(seconds, 3),
        train_tokens=0, tokens_per_s=0.0, steps=int(trainer.state.global_step),
        first_loss=log[0]["loss"] if log else None, final_loss=last.get("loss"),
        device=device, n_examples=len(pairs), n_parameters=n_params, n_trainable=n_trainable,
        metrics={"reward_accuracy": last.get("rewards/accuracies"),
                 "reward_margin": last.get("rewards/margins")})
