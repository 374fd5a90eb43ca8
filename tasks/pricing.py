"""Dollars per token of hosted models, so every run can say what it cost.

Prices are USD per million tokens (input, output) as published by the providers; they drift,
so a run can override them (`price_in_per_mtok` / `price_out_per_mtok`) or point
$DISTILLERY_PRICES at a JSON file {"model": [in, out], ...}. Unknown models (a local vLLM or
Ollama server) cost 0: nothing is billed per token there. The Batch API bills half.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

ENV_VAR = "DISTILLERY_PRICES"
BATCH_DISCOUNT = 0.5

# USD per 1M tokens: (input, output).
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
}


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float

    def cost(self, tokens_in: int, tokens_out: int, *, batch: bool = False) -> float:
        usd = (tokens_in * self.input_per_mtok + tokens_out * self.output_per_mtok) / 1e6
        return usd * (BATCH_DISCOUNT if batch else 1.0)


def _table() -> dict[str, tuple[float, float]]:
    table = dict(PRICES)
    path = os.environ.get(ENV_VAR)
    if path:
        with open(path, encoding="utf-8") as fh:
            table.update({k: (float(v[0]), float(v[1])) for k, v in json.load(fh).items()})
    return table


def price_for(model: str, input_per_mtok: float | None = None,
              output_per_mtok: float | None = None) -> Price:
    """The price of `model`: explicit overrides, else the table, matching dated snapshots
    ("gpt-4o-mini-2024-07-18") by their longest known prefix; else free."""
    table = _table()
    base = table.get(model)
    if base is None:
        prefixes = [m for m in table if model.startswith(m + "-")]
        base = table[max(prefixes, key=len)] if prefixes else (0.0, 0.0)
    return Price(base[0] if input_per_mtok is None else input_per_mtok,
                 base[1] if output_per_mtok is None else output_per_mtok)
