"""Which examples of a snapshot a fine-tune sees: deterministic, nested subsets.

Every strategy defines one ordering of the whole snapshot for a given seed, and a subset of
size k is the first k of it. So the 1000-subset contains the 250-subset (a data-size ladder
compares models trained on growing supersets, not on unrelated draws), and asking twice gives
the same rows.

Randomness comes from a hash of (seed, question_id), not from a generator stream: the order of
two examples never depends on the input order, on numpy's version, or on which other examples
the snapshot holds, so a later (larger) snapshot keeps the relative order of the old examples.

Strategies are a registry (`STRATEGIES`: name -> ordering); a mix (`{"procedural": 0.5,
"tatqa": 0.5}`) orders each source with the strategy and interleaves them so that every prefix
holds the sources in the asked proportions (within one example), so mixed ladders nest too.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from tasks.errors import InputError
from tasks.types import stable_hash

DEFAULT_STRATA = ("source", "kind", "difficulty")
STRATUM_FIELDS = ("source", "kind", "difficulty")


@dataclass(frozen=True)
class Example:
    """One published example of a snapshot: the question and the sample chosen for it."""

    question_id: str
    sample_id: str
    text: str
    context: str
    program: str
    answer: str | None
    source: str
    kind: str | None = None
    difficulty: int | None = None


def parse_mix(text: str) -> dict[str, float]:
    """'procedural=0.5,tatqa=0.5' -> {'procedural': 0.5, 'tatqa': 0.5}, shares normalised to
    sum 1; '' -> {} (no mix: the whole snapshot)."""
    mix: dict[str, float] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        source, sep, share = part.partition("=")
        try:
            value = float(share)
        except ValueError:
            value = math.nan
        if not sep or not source.strip() or not value > 0 or not math.isfinite(value):
            raise InputError(f"--mix {text!r}: SOURCE=SHARE pairs with positive shares, e.g. "
                             "procedural=0.5,tatqa=0.5")
        mix[source.strip()] = mix.get(source.strip(), 0.0) + value
    total = sum(mix.values())
    return {k: round(v / total, 6) for k, v in sorted(mix.items())}


def subset_params(strategy: str, *, strata: Sequence[str] = DEFAULT_STRATA,
                  power: float = 1.0, embedding_model: str | None = None,
                  mix: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The parameters that change a strategy's ordering, and only those: they are part of the
    subset id, so an irrelevant option must not produce a different id for the same rows."""
    params = _strategy_params(strategy, strata=strata, power=power,
                              embedding_model=embedding_model)
    return {**params, "mix": dict(mix)} if mix else params


def _strategy_params(strategy: str, *, strata: Sequence[str], power: float,
                     embedding_model: str | None) -> dict[str, Any]:
    _check_strategy(strategy)
    if strategy == "stratified":
        bad = [s for s in strata if s not in STRATUM_FIELDS]
        if bad or not strata:
            raise InputError(f"strata {list(strata)!r}: choose from {', '.join(STRATUM_FIELDS)}")
        return {"strata": list(strata)}
    if strategy == "difficulty":
        if not power > 0:
            raise InputError(f"difficulty power {power}: must be > 0")
        return {"power": float(power)}
    if strategy == "diversity":
        if not embedding_model:
            raise InputError("the diversity strategy needs an embedding model")
        return {"embedding_model": embedding_model, "distance": "cosine"}
    return {}


def subset_id_for(snapshot_id: int, strategy: str, size: int, seed: int,
                  params: Mapping[str, Any]) -> str:
    """Content id of a subset: same (snapshot, strategy, size, seed, params) -> same id."""
    return stable_hash("subset", int(snapshot_id), strategy, int(size), int(seed), dict(params))


def select_subset(examples: Sequence[Example], strategy: str, size: int, seed: int, *,
                  embeddings: Mapping[str, np.ndarray] | None = None,
                  strata: Sequence[str] = DEFAULT_STRATA, power: float = 1.0,
                  snapshot_id: int | None = None,
                  mix: Mapping[str, float] | None = None) -> list[str]:
    """The question_ids of a `size`-subset, in selection order (rank 0 first).

    `embeddings` (question_id -> vector) is required by `diversity` only. `snapshot_id` only
    makes the error message name the snapshot."""
    return select_ladder(examples, strategy, [size], seed, embeddings=embeddings,
                         strata=strata, power=power, snapshot_id=snapshot_id, mix=mix)[size]


def select_ladder(examples: Sequence[Example], strategy: str, sizes: Sequence[int], seed: int,
                  *, embeddings: Mapping[str, np.ndarray] | None = None,
                  strata: Sequence[str] = DEFAULT_STRATA, power: float = 1.0,
                  snapshot_id: int | None = None,
                  mix: Mapping[str, float] | None = None) -> dict[int, list[str]]:
    """Nested subsets, one per size, computed from one ordering: {size: question_ids}.
    With `mix`, the snapshot's examples of those sources in those shares."""
    _check_strategy(strategy)
    if not sizes:
        raise InputError("no subset size given")
    where = f"snapshot {snapshot_id}" if snapshot_id is not None else "the snapshot"
    pool = examples
    if mix:
        missing = sorted(set(mix) - {e.source for e in examples})
        if missing:
            raise InputError(f"--mix: no examples of source {missing[0]!r} in {where} "
                             f"(sources: {', '.join(sorted({e.source for e in examples}))})")
        pool = [e for e in examples if e.source in mix]
    for size in sizes:
        if size < 1:
            raise InputError(f"subset size {size}: must be at least 1")
        if size > len(pool):
            raise InputError(f"subset size {size} > {len(pool)} examples in {where}"
                             + (f" of sources {', '.join(mix)}" if mix else ""))
    kw = dict(embeddings=embeddings, strata=strata, power=power)
    if mix:
        order = mixed_order(pool, strategy, seed, mix, limit=max(sizes), **kw)
    else:
        order = selection_order(pool, strategy, seed, limit=max(sizes), **kw)
    return {size: order[:size] for size in sizes}


def mixed_order(examples: Sequence[Example], strategy: str, seed: int,
                mix: Mapping[str, float], *, limit: int, **kw: Any) -> list[str]:
    """Each source ordered by the strategy, then interleaved: position k goes to the source
    whose share of k exceeds what it already has by the most (the sequential largest
    remainder rule), so every prefix holds each source within one example of its share. A
    source that runs out leaves the rest to the others."""
    names = sorted(mix)
    orders = [selection_order([e for e in examples if e.source == name], strategy, seed,
                              limit=limit, **kw) for name in names]
    # Shares as integers (millionths) so that ties are exact on every machine.
    weights = np.array([round(mix[name] * 1_000_000) for name in names], dtype=np.int64)
    taken = np.zeros(len(names), dtype=np.int64)
    out: list[str] = []
    for k in range(1, limit + 1):
        deficit = k * weights - taken * int(weights.sum())
        deficit[taken >= np.array([len(o) for o in orders])] = np.iinfo(np.int64).min
        s = int(np.argmax(deficit))
        if deficit[s] == np.iinfo(np.int64).min:
            break
        out.append(orders[s][taken[s]])
        taken[s] += 1
    return out


def selection_order(examples: Sequence[Example], strategy: str, seed: int, *,
                    limit: int | None = None,
                    embeddings: Mapping[str, np.ndarray] | None = None,
                    strata: Sequence[str] = DEFAULT_STRATA,
                    power: float = 1.0) -> list[str]:
    """The first `limit` question_ids (all when None) of the strategy's ordering."""
    _check_strategy(strategy)
    ids = [e.question_id for e in examples]
    if len(set(ids)) != len(ids):
        raise ValueError("examples must have distinct question_ids")
    # Sort first: the result must not depend on the order rows came out of the warehouse.
    exs = sorted(examples, key=lambda e: e.question_id)
    limit = len(exs) if limit is None else min(limit, len(exs))
    if limit <= 0:
        return []
    return STRATEGIES[strategy](exs, seed, limit, embeddings=embeddings, strata=strata,
                                power=power)


def breakdown(examples: Sequence[Example]) -> dict[str, dict[str, int]]:
    """Counts by source, kind and difficulty, most frequent first (for reports)."""
    out: dict[str, dict[str, int]] = {}
    for name in STRATUM_FIELDS:
        counts = Counter(_label(getattr(e, name)) for e in examples)
        out[name] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return out


# ----------------------------------------------------------------------------- strategies
def _unit(seed: int, question_id: str) -> float:
    """A uniform draw in (0, 1) that depends on (seed, question_id) only."""
    digest = hashlib.blake2b(f"{seed}\x00{question_id}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 0.5) / 2.0**64


def _random_order(exs: Sequence[Example], seed: int) -> list[str]:
    return [e.question_id for e in sorted(exs, key=lambda e: (_unit(seed, e.question_id),
                                                            e.question_id))]


def _difficulty_order(exs: Sequence[Example], seed: int, power: float) -> list[str]:
    # Efraimidis-Spirakis: key u^(1/w), largest first; every prefix is a weighted sample
    # without replacement, so the ladder stays nested. log(u)/w is the same order, without
    # underflow for large weights. Items without a difficulty weigh like the easiest.
    def key(e: Example) -> tuple[float, str]:
        w = max(float(e.difficulty), 1.0) ** power if e.difficulty is not None else 1.0
        return (-math.log(_unit(seed, e.question_id)) / w, e.question_id)

    return [e.question_id for e in sorted(exs, key=key)]


def _stratified_order(exs: Sequence[Example], seed: int, strata: Sequence[str],
                      limit: int) -> list[str]:
    # Hamilton (largest remainder) allocation is not monotone in the size (Alabama paradox),
    # so per-size allocations would not nest. Instead, position k goes to the stratum whose
    # quota k*n_s/N exceeds what it already has by the most: the sequential form of largest
    # remainder. Every prefix then stays within one item of its exact proportional quota.
    groups: dict[tuple[str, ...], list[Example]] = {}
    for e in exs:
        groups.setdefault(tuple(_label(getattr(e, f)) for f in strata), []).append(e)
    # Ties go to the larger stratum, then the smaller key: deterministic.
    keys = sorted(groups, key=lambda k: (-len(groups[k]), k))
    members = [_random_order(groups[k], seed) for k in keys]
    n_s = np.array([len(m) for m in members], dtype=np.int64)
    total = int(n_s.sum())
    taken = np.zeros_like(n_s)
    order: list[str] = []
    for k in range(1, limit + 1):
        # Integer arithmetic (deficit * N): exact, so ties are real ties on every machine.
        deficit = k * n_s - taken * total
        deficit[taken >= n_s] = np.iinfo(np.int64).min
        s = int(np.argmax(deficit))
        order.append(members[s][taken[s]])
        taken[s] += 1
    return order


def _diversity_order(exs: Sequence[Example], seed: int,
                     embeddings: Mapping[str, np.ndarray] | None, limit: int) -> list[str]:
    # k-center greedy (Gonzalez): start at the seed's random first item, then always take the
    # item farthest (cosine) from everything taken so far. Greedy order is nested by
    # construction and covers every cluster before taking a second item from any of them.
    if embeddings is None:
        raise InputError("the diversity strategy needs stored embeddings of the examples")
    missing = [e.question_id for e in exs if e.question_id not in embeddings]
    if missing:
        raise InputError(f"{len(missing)} of {len(exs)} examples have no embedding "
                         f"(first: {missing[0]})")
    # Rows in the seed's random order, so exact ties (identical texts) break by the seed.
    ids = _random_order(exs, seed)
    x = np.stack([np.asarray(embeddings[i], dtype=np.float64).ravel() for i in ids])
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms > 0, norms, 1.0)
    min_dist = np.full(len(ids), np.inf)
    chosen = np.zeros(len(ids), dtype=bool)
    order: list[str] = []
    current = 0
    for _ in range(limit):
        order.append(ids[current])
        chosen[current] = True
        min_dist = np.minimum(min_dist, np.maximum(1.0 - x @ x[current], 0.0))
        min_dist[chosen] = -1.0
        current = int(np.argmax(min_dist))
    return order


Strategy = Literal["random", "stratified", "diversity", "difficulty"]
Ordering = Callable[..., list[str]]
# name -> ordering(examples sorted by id, seed, limit, *, embeddings, strata, power): the
# first `limit` question_ids of the strategy's order.
STRATEGIES: dict[str, Ordering] = {
    "random": lambda exs, seed, limit, **_: _random_order(exs, seed)[:limit],
    "stratified": lambda exs, seed, limit, *, strata, **_: _stratified_order(
        exs, seed, _valid_strata(strata), limit),
    "diversity": lambda exs, seed, limit, *, embeddings, **_: _diversity_order(
        exs, seed, embeddings, limit),
    "difficulty": lambda exs, seed, limit, *, power, **_: _difficulty_order(
        exs, seed, _valid_power(power))[:limit],
}
assert tuple(STRATEGIES) == get_args(Strategy)  # one list: the configs' choices are these


def _valid_strata(strata: Sequence[str]) -> Sequence[str]:
    _strategy_params("stratified", strata=strata, power=1.0, embedding_model=None)
    return strata


def _valid_power(power: float) -> float:
    _strategy_params("difficulty", strata=DEFAULT_STRATA, power=power, embedding_model=None)
    return power


def _label(value: object) -> str:
    return "none" if value is None or value == "" else str(value)


def _check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise InputError(f"unknown subset strategy {strategy!r}: one of "
                         f"{', '.join(STRATEGIES)}")
