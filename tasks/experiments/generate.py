"""Batched greedy decoding for evaluation, sharing the prompt prefix of questions that share
a context and dropping rows as they finish.

Why not `model.generate`: on a CPU the prompt dominates. An evaluation set asks several
questions about the same table (procedural-heldout: 4 per table), and the table is most of
the prompt, so its KV cache is computed once per table and copied to each question's row.
And `generate` keeps computing a finished row until the whole batch is done; here a row leaves
the batch (and its KV cache) when it stops, so a batch costs what its rows need.

Layout of one batch, per row: `[pad][prefix of its group][pad][its own suffix]` then the
generated tokens. Position ids are given explicitly (they skip the pads) and the attention
mask hides the pads, so every row computes exactly what it would alone.

Prefixes are prefilled one at a time, without pads (`separate`, the default), and their keys
and values placed right-aligned into the batch's cache: one padded pass over prefixes of
different lengths also computes the pads, which on TAT-QA's long tables was more than half of
the prefill (bench/evaluate.py: 24,824 positions computed for 10,670 prompt tokens).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Literal

from tasks.batching import pack

# How a batch's shared prefixes are computed: `padded`, in one left-padded forward pass (the
# decoder before issue 21); `separate`, one pass per prefix without padding, placed into the
# batch's cache (module docstring).
Prefill = Literal["separate", "padded"]


def _common_prefix(rows: Sequence[Sequence[int]]) -> int:
    n = min(len(r) for r in rows)
    for j in range(n):
        t = rows[0][j]
        if any(r[j] != t for r in rows[1:]):
            return j
    return n


def plan_batches(token_ids: Sequence[Sequence[int]], keys: Sequence[Hashable] | None,
                 batch_size: int) -> list[list[tuple[int, list[int]]]]:
    """Batches of groups `(prefix_len, [row indices])`. Rows with the same key share the
    longest common token prefix (at most the shortest row minus one token, so every row
    feeds at least one token of its own). Groups are ordered by prefix length (little
    padding) and packed whole into batches of at most `batch_size` rows."""
    by_key: dict[Hashable, list[int]] = {}
    for i in range(len(token_ids)):
        by_key.setdefault(keys[i] if keys is not None else i, []).append(i)
    groups: list[tuple[int, list[int]]] = []
    for rows in by_key.values():
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            shortest = min(len(token_ids[i]) for i in chunk)
            prefix = min(_common_prefix([token_ids[i] for i in chunk]), shortest - 1)
            groups.append((max(prefix, 0), chunk))
    groups.sort(key=lambda g: (g[0], max(len(token_ids[i]) for i in g[1])))
    return pack(groups, batch_size, weight=lambda g: len(g[1]))


def _left_pad(rows: Sequence[Sequence[int]], pad_id: int, starts: Sequence[int]
              ) -> tuple[list[list[int]], list[list[int]], list[list[int]]]:
    """(ids, attention mask, position ids) of rows left-padded to one width; row i's tokens
    take positions starts[i], starts[i] + 1, ... (pads: 0, masked anyway)."""
    width = max((len(r) for r in rows), default=0)
    ids = [[pad_id] * (width - len(r)) + list(r) for r in rows]
    mask = [[0] * (width - len(r)) + [1] * len(r) for r in rows]
    positions = [[0] * (width - len(r)) + list(range(s, s + len(r)))
                 for r, s in zip(rows, starts, strict=True)]
    return ids, mask, positions


def _growing_cache() -> Any:
    """A DynamicCache whose layers write into preallocated buffers (grown by 128 positions
    when full) and hand attention views of the filled part. `DynamicLayer` concatenates each
    layer's whole K/V on every decoding step: a quarter of the decode time in a profile on
    this CPU. Dropping finished rows still copies the buffers of the rows that stay (37 drops,
    7.7% of the CPU time of 64 questions at batch 64)."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        def lazy_initialization(self, key_states: Any, value_states: Any) -> None:
            super().lazy_initialization(key_states, value_states)
            self.buffers: tuple[Any, Any] | None = None
            self.length = 0
            self.rows = key_states.shape[0]

        def _views(self) -> None:
            k, v = self.buffers
            self.keys = k[:self.rows, :, :self.length, :]
            self.values = v[:self.rows, :, :self.length, :]

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any
                   ) -> tuple[Any, Any]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            n = key_states.shape[-2]
            capacity = self.buffers[0].shape[-2] if self.buffers else 0
            if self.length + n > capacity:
                shape = (*key_states.shape[:2], self.length + n + 128,
                         key_states.shape[-1])
                grown = (key_states.new_empty(shape), value_states.new_empty(shape))
                if self.length:
                    for new, old in zip(grown, self.buffers, strict=True):
                        new[..., :self.length, :] = old[:self.rows, :, :self.length, :]
                self.buffers = grown
            self.buffers[0][:self.rows, :, self.length:self.length + n, :] = key_states
            self.buffers[1][:self.rows, :, self.length:self.length + n, :] = value_states
            self.length += n
            self._views()
            return self.keys, self.values

        def batch_select_indices(self, indices: Any) -> None:
            if not (self.is_initialized and self.length):
                return
            keep = indices.tolist()
            rows = self.keys.shape[0]
            if len(keep) < rows and all(a < b for a, b in zip(keep, keep[1:], strict=False)):
                # Rows leaving: the rows that stay move down inside the same buffers. A
                # new index_select of every buffer would allocate and fault in gigabytes
                # per departure on long contexts; the views keep their shape and strides,
                # so attention computes exactly what it did.
                for dst, src in enumerate(keep):
                    if dst != src:
                        for buf in self.buffers:
                            buf[dst, :, :self.length].copy_(buf[src, :, :self.length])
                self.rows = len(keep)
            else:
                self.buffers = (self.buffers[0][indices], self.buffers[1][indices])
                self.rows = len(keep)
            self._views()

    cache = DynamicCache()
    cache.layer_class_to_replicate = GrowingLayer
    return cache


def _prefill_separately(model: Any, prefixes: Sequence[Sequence[int]], cache: Any,
                        cache_arg: str, device: Any) -> list[list[int]]:
    """Each prefix through the model alone (no pads, no mask: the causal kernel), its keys
    and values copied right-aligned into `cache`'s rows, zeros before them (masked; zeros,
    not garbage: a NaN under a mask still poisons the softmax). Returns the attention mask
    of the filled cache, as `_left_pad` would."""
    import torch
    from transformers import DynamicCache

    width = max(len(p) for p in prefixes)
    per_prefix = []
    for prefix in prefixes:
        alone = DynamicCache()
        if prefix:
            model(input_ids=torch.tensor([list(prefix)], device=device), use_cache=True,
                  position_ids=torch.arange(len(prefix), device=device)[None],
                  logits_to_keep=1, **{cache_arg: alone})
        per_prefix.append(alone)
    n_layers = max(len(c.layers) for c in per_prefix)
    for layer in range(n_layers):
        ref = next(c.layers[layer] for c in per_prefix if len(c.layers) > layer)
        k0, v0 = ref.keys, ref.values
        keys = k0.new_zeros((len(prefixes), k0.shape[1], width, k0.shape[-1]))
        values = v0.new_zeros((len(prefixes), v0.shape[1], width, v0.shape[-1]))
        for g, (prefix, alone) in enumerate(zip(prefixes, per_prefix, strict=True)):
            if prefix:
                keys[g, :, width - len(prefix):] = alone.layers[layer].keys[0]
                values[g, :, width - len(prefix):] = alone.layers[layer].values[0]
        cache.update(keys, values, layer)
    return [[0] * (width - len(p)) + [1] * len(p) for p in prefixes]


def greedy_generate(model: Any, tokenizer: Any, prompts: Sequence[str], *,
                    keys: Sequence[Hashable] | None = None, batch_size: int = 64,
                    max_new_tokens: int = 256, stop: Callable[[str], bool] | None = None,
                    progress: Callable[[int], None] | None = None,
                    stats: dict[str, int] | None = None,
                    prefill: Prefill = "separate") -> list[str]:
    """Greedy completion of each prompt (in input order). A row stops at an end-of-turn
    token, after `max_new_tokens`, or once `stop(text so far)` is true (checked when a new
    token contains a backtick: the program-end test is a closing code fence).
    `keys[i]` groups prompts that share a prefix (the question's context); None: no sharing.
    `stats["new_tokens"]` counts the generated tokens; `stats["prompt_tokens_computed"]`
    the prompt tokens that went through the model (after sharing)."""
    import torch

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (
        tokenizer.eos_token_id or 0)
    # The tokenizer's end of turn, and the model's generation config's (an int or a list).
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    eos = {tokenizer.eos_token_id, *(config_eos if isinstance(config_eos, list) else
                                      [config_eos])} - {None}
    limit = getattr(model.config, "n_positions", None) or getattr(
        model.config, "max_position_embeddings", None)
    device = next(model.parameters()).device
    token_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    out: list[str] = [""] * len(prompts)
    computed = generated = padded = 0
    prefill_s = decode_s = 0.0
    model.eval()
    # transformers 5.2x renamed `past_key_values` to `cache` (the old name warns).
    cache_arg = ("cache" if "cache" in inspect.signature(model.forward).parameters
                 else "past_key_values")

    def forward(ids: list[list[int]], mask: torch.Tensor, positions: list[list[int]],
                cache: Any) -> torch.Tensor:
        res = model(input_ids=torch.tensor(ids, device=device), attention_mask=mask,
                    position_ids=torch.tensor(positions, device=device),
                    use_cache=True, logits_to_keep=1, **{cache_arg: cache})
        return res.logits[:, -1, :]

    with torch.inference_mode():
        for batch in plan_batches(token_ids, keys, batch_size):
            # 1. Each group's shared prefix once (left-padded).
            prefixes = [token_ids[rows[0]][:plen] for plen, rows in batch]
            has_prefix = max(len(p) for p in prefixes) > 0
            cache = _growing_cache()
            row_group = [g for g, (_, rows) in enumerate(batch) for _ in rows]
            order = [i for _, rows in batch for i in rows]
            t0 = time.perf_counter()
            if has_prefix and prefill == "separate":
                pmask = _prefill_separately(model, prefixes, cache, cache_arg, device)
                computed += sum(len(p) for p in prefixes)
                padded += sum(len(p) for p in prefixes)
                cache.batch_select_indices(torch.tensor(row_group, device=device))
                mask = torch.tensor(pmask, device=device)[row_group]
            elif has_prefix:
                ids, pmask, positions = _left_pad(prefixes, pad_id, [0] * len(prefixes))
                forward(ids, torch.tensor(pmask, device=device), positions, cache)
                computed += sum(len(p) for p in prefixes)
                padded += len(ids) * len(ids[0])
                cache.batch_select_indices(torch.tensor(row_group, device=device))
                mask = torch.tensor(pmask, device=device)[row_group]
            else:
                mask = torch.zeros((len(order), 0), dtype=torch.long, device=device)
            # 2. Each row's own suffix (left-padded after the prefix: pads in the middle).
            plens = [batch[g][0] for g in row_group]
            suffixes = [token_ids[i][p:] for i, p in zip(order, plens, strict=True)]
            ids, smask, positions = _left_pad(suffixes, pad_id, plens)
            mask = torch.cat([mask, torch.tensor(smask, device=device)], dim=1)
            logits = forward(ids, mask, positions, cache)
            computed += sum(len(s) for s in suffixes)
            padded += len(ids) * len(ids[0])
            t1 = time.perf_counter()
            prefill_s += t1 - t0
            # 3. Decode; finished rows leave the batch and the cache.
            live = list(range(len(order)))  # batch row -> position in `order`
            pos = [len(token_ids[i]) for i in order]
            budget = [max_new_tokens if not limit else max(1, min(max_new_tokens,
                                                                  limit - len(token_ids[i])))
                      for i in order]
            new: list[list[int]] = [[] for _ in order]
            while live:
                nxt = logits.argmax(dim=-1).tolist()
                keep: list[int] = []
                for b, r in enumerate(live):
                    t = nxt[b]
                    done = t in eos
                    if not done:
                        new[r].append(t)
                        if stop is not None and "`" in tokenizer.decode([t]):
                            done = stop(tokenizer.decode(new[r], skip_special_tokens=True))
                    done = done or len(new[r]) >= budget[r]
                    if not done:
                        keep.append(b)
                if len(keep) < len(live):
                    if progress:
                        progress(len(live) - len(keep))
                    if not keep:
                        break
                    index = torch.tensor(keep, device=device)
                    cache.batch_select_indices(index)
                    mask = mask[index]
                    nxt = [nxt[b] for b in keep]
                    live = [live[b] for b in keep]
                mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
                positions = [[pos[r]] for r in live]
                for r in live:
                    pos[r] += 1
                logits = forward([[t] for t in nxt], mask, positions, cache)
            decode_s += time.perf_counter() - t1
            for r, i in enumerate(order):
                out[i] = tokenizer.decode(new[r], skip_special_tokens=True)
                generated += len(new[r])
    if stats is not None:
        for key, value in (("new_tokens", generated), ("prompt_tokens_computed", computed),
                           ("prompt_tokens_padded", padded), ("prefill_ms", prefill_s * 1e3),
                           ("decode_ms", decode_s * 1e3)):
            stats[key] = stats.get(key, 0) + int(value)
    return out
