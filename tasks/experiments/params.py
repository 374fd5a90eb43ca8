"""How a student is trained: one declaration per setting, as TRL splits it (TrainingArguments
-> SFTConfig / DPOConfig). `TrainingParams` holds what every trainer shares (the model, LoRA,
the step budget, the optimizer, threads, the seed); `SFTParams` and `DPOParams` add what only
their trainer reads. The flows' Prefect forms, the CLI flags (flows/cli/options.py) and
`finetune_runs.params` are all generated from these classes.

Sentinels instead of `None` (0 means "automatic") keep every field a plain number in the UI
form. Field order is the form's: which model, then how to train it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from tasks.experiments.student import BASE_MODEL_HELP, TINY
from tasks.settings import Settings


class TrainingParams(Settings):
    """What every trainer shares."""

    base_model: str = Field(TINY, description=BASE_MODEL_HELP)
    lora: bool = Field(False, description="train LoRA adapters (peft) instead of all weights")
    lora_r: int = Field(16, ge=1, le=1024, description="LoRA rank")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling numerator (scale = alpha/r)")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the LoRA input")
    lora_targets: str = Field("auto", description="comma-separated module names that get "
                              "adapters, 'all-linear', or 'auto' (attention and MLP "
                              "projections; GPT-2: c_attn, c_proj)")
    trainable_layers: int = Field(0, ge=0, description="train only the top N transformer "
                                  "layers (LoRA or full): no backward pass below them; "
                                  "0: all layers")
    epochs: float = Field(2.0, gt=0, description="passes over the data (ignored when "
                          "max_steps > 0)")
    max_steps: int = Field(0, ge=0, description="fixed optimizer-step budget; 0: use epochs")
    learning_rate: float = Field(0.0, ge=0, description="peak learning rate; 0: automatic "
                                 "(the trainer's default for the model and method)")
    batch_size: int = Field(8, ge=1, le=4096, description="examples per forward pass")
    grad_accum: int = Field(1, ge=1, le=1024, description="forward passes per optimizer step")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="share of the steps with a "
                                "linear learning-rate warmup")
    max_length: int = Field(2048, ge=32, description="longest example in tokens (capped at "
                            "the model's context: 2,048 for SmolLM2, room for TAT-QA's long "
                            "tables); longer ones are left out of training and counted in "
                            "the run's metrics (dropped_too_long)")
    threads: int = Field(0, ge=0, description="CPU threads for torch; 0: torch's default "
                         "(all cores). On a machine shared with other jobs 1 is faster: "
                         "threads that wait on each other spin")
    train_seed: int = Field(0, description="seed of initialisation, shuffling and dropout")
    logging_steps: int = Field(5, ge=1, description="steps between loss-curve points")
    save_checkpoints: bool = Field(False, description="keep intermediate checkpoints (the "
                                   "final model is always saved)")

    method: ClassVar[str] = ""  # the trainer: each variant's name (finetune_runs.params.method)
    # Peak learning rate when none is given: (tiny student, LoRA, full fine-tune).
    default_lr: ClassVar[tuple[float, float, float]] = (1e-3, 1e-3, 2e-5)

    def resolved_lr(self) -> float:
        if self.learning_rate > 0:
            return self.learning_rate
        tiny, lora, full = self.default_lr
        return tiny if self.base_model == TINY else lora if self.lora else full

    def stored(self) -> dict[str, Any]:
        """Flat JSON of the settings as run (finetune_runs.params; views read its keys)."""
        return {**self.model_dump(), "method": self.method, "learning_rate": self.resolved_lr()}


class SFTParams(TrainingParams):
    """Supervised fine-tuning (TRL SFTTrainer, completion-only loss)."""

    method: ClassVar[str] = "sft"
    # LoRA on a small instruct model: 2e-4 (the usual default) learned the format but not
    # the formulas in one pilot on this data; 1e-3 learns both (BENCHMARKS.md).
    default_lr: ClassVar[tuple[float, float, float]] = (1e-3, 1e-3, 2e-5)
    group_by_length: bool = Field(True, description="batch examples of similar length "
                                  "together (less padding)")


class DPOParams(TrainingParams):
    """Direct preference optimisation (TRL DPOTrainer) on stored preference pairs. With LoRA
    the reference model is the policy with its adapters switched off (no second copy);
    without, a frozen copy of the starting model."""

    method: ClassVar[str] = "dpo"
    # DPO moves a model that already answers: an order below SFT's rates.
    default_lr: ClassVar[tuple[float, float, float]] = (1e-3, 5e-6, 5e-7)
    epochs: float = Field(1.0, gt=0, description="passes over the pairs (ignored when "
                          "max_steps > 0)")
    batch_size: int = Field(4, ge=1, le=4096, description="pairs per forward pass")
    beta: float = Field(0.1, gt=0, description="how far the policy may move from the "
                        "reference model")
    loss_type: str = Field("sigmoid", description="TRL DPO loss: sigmoid (DPO), ipo, hinge, "
                           "robust, ...")
