"""DPO on preference pairs (the `preference/` export of the preferences flow) with TRL's
DPOTrainer: the policy starts from a student (an SFT model, or the tiny one in tests) and a
frozen copy of it is the reference model.

The lead wires `distillery finetune --method dpo` to `train_dpo` (flows/finetune.py and
tasks/experiments/finetune.py are not this module's); the rows are rendered exactly as SFT rows are
(tasks/preferences/export.py), so a model SFT-trained on this project's rows continues on
the same text."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class DPOParams(BaseModel):
    """DPO training settings (TRL DPOConfig underneath)."""

    model_config = ConfigDict(extra="forbid")

    beta: float = Field(0.1, gt=0, description="DPO beta: how far the policy may move from "
                        "the reference model")
    loss_type: str = Field("sigmoid", description="TRL DPO loss: sigmoid (DPO), ipo, hinge, "
                           "robust, ...")
    learning_rate: float = Field(5e-7, gt=0, description="peak learning rate")
    max_steps: int = Field(0, ge=0, description="optimizer steps; 0: `epochs` passes")
    epochs: float = Field(1.0, gt=0, description="passes over the pairs when max_steps is 0")
    batch_size: int = Field(4, ge=1, description="pairs per device step")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps")
    max_length: int = Field(1024, ge=16, description="prompt + completion tokens, truncated")
    logging_steps: int = Field(5, ge=1, description="log the loss every N steps")
    train_seed: int = Field(0, description="seed of the data order and initialisation")


@dataclass
class DPOResult:
    steps: int
    first_loss: float
    final_loss: float
    reward_accuracy: float  # share of pairs whose chosen side the policy prefers (last log)
    reward_margin: float  # mean (chosen - rejected) implicit reward (last log)
    train_seconds: float
    output_dir: str
    log: list[dict[str, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_pairs(path: str | Path) -> Any:
    """A preference export folder (its hf/ dataset) or an HF dataset folder."""
    from datasets import load_from_disk

    p = Path(path)
    ds = load_from_disk(str(p / "hf" if (p / "hf").is_dir() else p))
    return ds.select_columns(["prompt", "chosen", "rejected"])


def train_dpo(pairs: Any, output_dir: str | Path, params: DPOParams, *, model: Any,
              tokenizer: Any, save: bool = True) -> DPOResult:
    """Train `model` on `pairs` (a datasets.Dataset with prompt/chosen/rejected in TRL's
    conversational preference format) and save it (with its tokenizer) to output_dir."""
    import torch
    from trl import DPOConfig, DPOTrainer

    from tasks.experiments.finetune import score_labelled_positions_only

    cuda = torch.cuda.is_available()
    context = getattr(model.config, "n_positions", None) or getattr(
        model.config, "max_position_embeddings", None)
    config = DPOConfig(
        output_dir=str(output_dir), beta=params.beta, loss_type=[params.loss_type],
        learning_rate=params.learning_rate, max_steps=params.max_steps or -1,
        num_train_epochs=params.epochs, per_device_train_batch_size=params.batch_size,
        gradient_accumulation_steps=params.grad_accum,
        max_length=min(params.max_length, context) if context else params.max_length,
        logging_steps=params.logging_steps, logging_first_step=True, save_strategy="no",
        report_to="none", seed=params.train_seed, data_seed=params.train_seed,
        use_cpu=not cuda, bf16=cuda and torch.cuda.is_bf16_supported(),
        dataloader_num_workers=0, disable_tqdm=True)
    # The reference model is an explicit frozen copy: TRL would otherwise reload it from
    # model.name_or_path, which a model built or converted in this process does not have.
    ref_model = copy.deepcopy(model).eval()
    ref_model.requires_grad_(False)
    score_labelled_positions_only()  # the same fused LM head as SFT: labelled positions only
    trainer = DPOTrainer(model=model, ref_model=ref_model, args=config, train_dataset=pairs,
                         processing_class=tokenizer)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    log = [{k: float(v) for k, v in e.items() if isinstance(v, int | float)}
           for e in trainer.state.log_history if "loss" in e]
    if save:
        trainer.save_model(str(output_dir))
        tokenizer.save_pretrained(str(output_dir))
    last = log[-1] if log else {}
    return DPOResult(
        steps=int(trainer.state.global_step),
        first_loss=log[0]["loss"] if log else math.nan,
        final_loss=last.get("loss", math.nan),
        reward_accuracy=last.get("rewards/accuracies", math.nan),
        reward_margin=last.get("rewards/margins", math.nan),
        train_seconds=round(seconds, 3), output_dir=str(output_dir), log=log)
