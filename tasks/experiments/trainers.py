"""One entry to every trainer: an exported dataset folder in, a saved model and a
`FinetuneResult` out. The params' class says which trainer (SFTParams: TRL's SFTTrainer,
DPOParams: TRL's DPOTrainer); the flows never branch on it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tasks.experiments.finetune import FinetuneResult, finetune
from tasks.experiments.params import TrainingParams
from tasks.experiments.student import TINY, build_tiny_student, load_student
from tasks.preferences.dpo import load_pairs, train_dpo


def _sft(data_dir: str, output_dir: str | Path, params: Any, progress: bool) -> FinetuneResult:
    from datasets import load_from_disk

    return finetune(load_from_disk(data_dir), output_dir, params, progress=progress)


def _dpo(data_dir: str, output_dir: str | Path, params: Any, progress: bool) -> FinetuneResult:
    pairs = load_pairs(data_dir)
    if params.base_model == TINY:  # tests and smoke runs: a small model built on the pairs
        texts = ["\n".join(t["content"] for t in r["prompt"] + r[side])
                 for r in pairs for side in ("chosen", "rejected")]
        model, tokenizer = build_tiny_student(texts, seed=params.train_seed)
    else:
        model, tokenizer = load_student(params.base_model)
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    return train_dpo(pairs, output_dir, params, model=model, tokenizer=tokenizer)


TRAINERS: dict[str, Callable[[str, str | Path, Any, bool], FinetuneResult]] = {
    "sft": _sft, "dpo": _dpo}


def train_on_disk(data_dir: str, output_dir: str | Path, params: TrainingParams, *,
                  progress: bool = False) -> FinetuneResult:
    """Train `params.base_model` on the dataset saved at `data_dir` with the trainer the
    params are for; the model and tokenizer end up in `output_dir`."""
    return TRAINERS[params.method](data_dir, output_dir, params, progress)
