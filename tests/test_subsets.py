"""Subsets: deterministic, nested, stored with their parameters; on a warehouse built by the
real refresh flow, plus the strategies' properties on synthetic data."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from flows.cli.main import app
from flows.subsets import SubsetConfig, create_subsets, subset_flow
from tasks.errors import InputError
from tasks.experiments.subsets import (
    STRATEGIES,
    Example,
    parse_mix,
    select_ladder,
    select_subset,
    selection_order,
    subset_id_for,
    subset_params,
)
from warehouse import Store

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(scope="module")
def wh_path(procedural_warehouse) -> Path:
    """The session's procedural refresh (n=260, snapshot 1, > 200 kept: conftest.py)."""
    return procedural_warehouse


@pytest.fixture(scope="module")
def examples(wh_path) -> list[Example]:
    return Store(wh_path).subsets.snapshot_examples(1)


def _rows(path: Path) -> dict[str, int]:
    _, rows = Store(path).query("SELECT (SELECT count(*) FROM subsets), "
                                "(SELECT count(*) FROM subset_items)")
    return {"subsets": rows[0][0], "subset_items": rows[0][1]}


def _items(path: Path, subset_id: str) -> list[tuple[str, str, int]]:
    _, rows = Store(path).query("SELECT question_id, sample_id, rank FROM subset_items "
                                "WHERE subset_id = ? ORDER BY rank", [subset_id])
    return rows


def _ex(qid: str, source: str = "s", kind: str | None = None,
        difficulty: int | None = None) -> Example:
    return Example(question_id=qid, sample_id="x" + qid, text=f"question {qid}", context="",
                   program="ans = 1", answer="1", source=source, kind=kind,
                   difficulty=difficulty)


# --------------------------------------------------------------------- warehouse + flow
def test_same_args_same_ids_and_no_new_rows(wh_path):
    cfg = SubsetConfig(sizes=[30, 90], strategy="random", seed=3, warehouse=str(wh_path))
    first = subset_flow(cfg)  # the Prefect flow, artifact included
    assert [s.created for s in first.subsets] == [True, True]
    before = _rows(wh_path)
    items = {s.subset_id: _items(wh_path, s.subset_id) for s in first.subsets}
    again = create_subsets(cfg)
    assert [s.subset_id for s in again.subsets] == [s.subset_id
                                                         for s in first.subsets]
    assert [s.created for s in again.subsets] == [False, False]
    assert _rows(wh_path) == before
    assert {s: _items(wh_path, s) for s in items} == items
    # The id does not depend on how the subset was asked for (alone or in a ladder).
    alone = create_subsets(cfg.model_copy(update={"sizes": None, "size": 90}))
    assert alone.subsets[0].subset_id == first.subsets[1].subset_id
    assert _rows(wh_path) == before
    other_seed = create_subsets(cfg.model_copy(update={"seed": 4}))
    assert other_seed.subsets[0].subset_id != first.subsets[0].subset_id
    assert ({q for q, _, _ in _items(wh_path, other_seed.subsets[1].subset_id)}
            != {q for q, _, _ in items[first.subsets[1].subset_id]})


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_ladders_are_nested_and_stored_with_params(wh_path, examples, strategy):
    result = create_subsets(SubsetConfig(sizes=[150, 20, 60], strategy=strategy, seed=1,
                                         warehouse=str(wh_path)))
    subs = result.subsets
    assert [s.size for s in subs] == [20, 60, 150]
    assert subs[0].parent_subset_id is None
    assert [s.parent_subset_id for s in subs[1:]] == [s.subset_id for s in subs[:-1]]
    orders = [[q for q, _, _ in _items(wh_path, s.subset_id)] for s in subs]
    for small, big in zip(orders, orders[1:], strict=False):
        assert big[:len(small)] == small  # a prefix, in rank order
    assert [len(o) for o in orders] == [20, 60, 150] and len(set(orders[-1])) == 150
    # The stored sample is the snapshot's published one.
    published = {e.question_id: e.sample_id for e in examples}
    assert all(published[q] == s for q, s, _ in _items(wh_path, subs[-1].subset_id))

    info = Store(wh_path).subsets.load_subset(subs[1].subset_id)
    params = subset_params(strategy, embedding_model="all-MiniLM-L6-v2")
    assert (info.snapshot_id, info.strategy, info.size, info.seed) == (1, strategy, 60, 1)
    assert info.params == params == result.params
    assert info.parent_subset_id == subs[0].subset_id
    assert info.subset_id == subset_id_for(1, strategy, 60, 1, params)
    loaded = Store(wh_path).subsets.subset_examples(info.subset_id)
    assert [e.question_id for e in loaded] == orders[1]
    assert all(e.program and e.text and e.source == "procedural" for e in loaded)
    assert {e.kind for e in loaded} - {None}


def test_a_ladder_fills_in_the_parent_of_an_existing_subset(wh_path):
    cfg = SubsetConfig(size=70, strategy="difficulty", seed=9, warehouse=str(wh_path))
    alone = create_subsets(cfg).subsets[0]
    assert Store(wh_path).subsets.load_subset(alone.subset_id).parent_subset_id is None
    ladder = create_subsets(cfg.model_copy(update={"size": None, "sizes": [35, 70]}))
    assert ladder.subsets[1].subset_id == alone.subset_id
    assert (Store(wh_path).subsets.load_subset(alone.subset_id).parent_subset_id
            == ladder.subsets[0].subset_id)


def test_diversity_with_another_model_embeds_the_missing_once(wh_path, examples):
    from tasks.embed import DEFAULT_MODEL, resolve_model_path

    other = resolve_model_path(DEFAULT_MODEL)  # same weights, a model name without vectors
    ids = [e.question_id for e in examples]
    assert Store(wh_path).subsets.question_embeddings(ids, other) == {}
    cfg = SubsetConfig(size=12, strategy="diversity", embedding_model=other,
                       warehouse=str(wh_path))
    first = create_subsets(cfg).subsets[0]
    stored = Store(wh_path).subsets.question_embeddings(ids, other)
    assert set(stored) == set(ids)
    ref = Store(wh_path).subsets.question_embeddings(ids[:5], DEFAULT_MODEL)
    for q, v in ref.items():
        assert np.allclose(stored[q], v, atol=1e-4)
    assert create_subsets(cfg).subsets[0].subset_id == first.subset_id
    assert first.subset_id != create_subsets(cfg.model_copy(
        update={"embedding_model": DEFAULT_MODEL})).subsets[0].subset_id


def test_oversize_and_unknown_inputs_are_clear_errors(wh_path, examples):
    n = len(examples)
    before = _rows(wh_path)
    with pytest.raises(InputError, match=rf"^subset size 5000 > {n} examples in snapshot 1$"):
        create_subsets(SubsetConfig(size=5000, warehouse=str(wh_path)))
    with pytest.raises(InputError, match="snapshot 7 not found"):
        create_subsets(SubsetConfig(size=5, snapshot_id=7, warehouse=str(wh_path)))
    with pytest.raises(InputError, match="subset 'nope' not found"):
        Store(wh_path).subsets.load_subset("nope")
    with pytest.raises(InputError, match="unknown subset strategy 'best'"):
        select_subset(examples, "best", 5, 0)
    assert _rows(wh_path) == before


def test_stratified_keeps_every_prefix_proportional(wh_path, examples):
    n = len(examples)
    strata = Counter((e.source, e.kind or "none", str(e.difficulty)) for e in examples)
    assert len(strata) > 5
    result = create_subsets(SubsetConfig(size=n, strategy="stratified", seed=2,
                                         warehouse=str(wh_path)))
    order = Store(wh_path).subsets.subset_examples(result.subsets[0].subset_id)
    seen: Counter = Counter()
    for k, e in enumerate(order, 1):
        seen[(e.source, e.kind or "none", str(e.difficulty))] += 1
        for key, n_s in strata.items():
            # Every prefix is within one item of its exact proportional quota.
            assert abs(seen[key] - k * n_s / n) < 1, (k, key)
    # Other strata: by kind alone.
    kind_of = {e.question_id: e.kind for e in examples}
    picked = Counter(kind_of[q] for q in select_subset(examples, "stratified", 40, 2,
                                                       strata=["kind"]))
    for kind, n_k in Counter(kind_of.values()).items():
        assert abs(picked[kind] - 40 * n_k / n) < 1


def test_cli_subset_prints_ids_and_breakdown(wh_path, examples):
    runner = CliRunner()
    out = runner.invoke(app, ["subset", "--sizes", "10,25", "--strategy", "stratified",
                              "--seed", "4", "--warehouse", str(wh_path)])
    assert out.exit_code == 0, out.output
    expected = create_subsets(SubsetConfig(sizes=[10, 25], strategy="stratified", seed=4,
                                           warehouse=str(wh_path)))
    for s in expected.subsets:
        assert f"subset {s.subset_id}  size {s.size}" in out.output
    assert "kind: " in out.output and "difficulty: " in out.output
    bad = runner.invoke(app, ["subset", "--size", "5000", "--warehouse", str(wh_path)])
    assert bad.exit_code == 2
    assert f"error: subset size 5000 > {len(examples)} examples in snapshot 1" in bad.output


# ------------------------------------------------------------------------ pure functions
def test_selection_ignores_input_order():
    exs = [_ex(f"q{i:03d}", kind=f"k{i % 3}", difficulty=1 + i % 4) for i in range(120)]
    vecs = {e.question_id: np.random.default_rng(i).normal(size=8) for i, e in enumerate(exs)}
    shuffled = exs[:]
    random.Random(0).shuffle(shuffled)
    for strategy in STRATEGIES:
        a = select_subset(exs, strategy, 50, 7, embeddings=vecs)
        b = select_subset(shuffled, strategy, 50, 7, embeddings=vecs)
        assert a == b, strategy
        assert select_subset(exs, strategy, 50, 8, embeddings=vecs) != a, strategy


def test_random_order_of_old_items_survives_a_larger_snapshot():
    exs = [_ex(f"q{i:03d}") for i in range(100)]
    small = selection_order(exs, "random", 3)
    big = selection_order(exs + [_ex(f"z{i:03d}") for i in range(50)], "random", 3)
    assert [q for q in big if q.startswith("q")] == small


def test_diversity_covers_every_cluster_before_doubling_up():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(6, 32)) * 5
    exs, vecs = [], {}
    for c in range(6):
        for j in range(40 if c == 0 else 8):  # one big cluster, five small ones
            qid = f"c{c}_{j:02d}"
            exs.append(_ex(qid))
            vecs[qid] = centers[c] + rng.normal(size=32) * 0.1
    for seed in range(5):
        first = select_subset(exs, "diversity", 6, seed, embeddings=vecs)
        assert {q.split("_")[0] for q in first} == {f"c{c}" for c in range(6)}
    rnd = [{q.split("_")[0] for q in select_subset(exs, "random", 6, s)} for s in range(5)]
    assert min(len(r) for r in rnd) < 6  # random alone does not manage it
    ladder = select_ladder(exs, "diversity", [6, 30], 0, embeddings=vecs)
    assert ladder[30][:6] == ladder[6]
    with pytest.raises(InputError, match="no embedding"):
        select_subset(exs, "diversity", 6, 0, embeddings={})


def test_difficulty_skews_towards_harder_items():
    exs = [_ex(f"q{i:03d}", difficulty=1 + i % 5) for i in range(500)]
    diff = {e.question_id: e.difficulty for e in exs}
    mean_all = np.mean(list(diff.values()))
    for seed in range(3):
        picked = select_subset(exs, "difficulty", 100, seed)
        assert np.mean([diff[q] for q in picked]) > mean_all + 0.3
        assert {diff[q] for q in picked} >= {1, 5}  # weighted, not a hard cut
    stronger = select_subset(exs, "difficulty", 100, 0, power=3.0)
    assert (np.mean([diff[q] for q in stronger])
            > np.mean([diff[q] for q in select_subset(exs, "difficulty", 100, 0)]))


def test_pure_size_errors():
    exs = [_ex(f"q{i}") for i in range(10)]
    with pytest.raises(InputError, match=r"^subset size 11 > 10 examples in snapshot 4$"):
        select_subset(exs, "random", 11, 0, snapshot_id=4)
    with pytest.raises(InputError, match="at least 1"):
        select_subset(exs, "random", 0, 0)
    assert len(select_subset(exs, "stratified", 10, 0)) == 10


@pytest.mark.parametrize("strategy", ["random", "stratified", "difficulty"])
def test_a_mix_has_the_asked_shares_at_every_size_and_nests(strategy):
    pool = ([_ex(f"p{i}", "procedural", kind=("a", "b")[i % 2], difficulty=1 + i % 3)
             for i in range(300)]
            + [_ex(f"t{i}", "tatqa", kind="c", difficulty=2) for i in range(120)]
            + [_ex(f"g{i}", "gsm8k") for i in range(80)])
    mix = parse_mix("procedural=1,tatqa=3")  # shares normalised: 0.25 / 0.75
    assert mix == {"procedural": 0.25, "tatqa": 0.75}
    sizes = [8, 40, 100, 160]
    ladder = select_ladder(pool, strategy, sizes, seed=4, mix=mix)
    for size in sizes:
        counts = Counter(i[0] for i in ladder[size])
        assert set(counts) == {"p", "t"}  # gsm8k is not in the mix
        assert abs(counts["t"] - 0.75 * size) <= 1 and abs(counts["p"] - 0.25 * size) <= 1
    for small, large in zip(sizes, sizes[1:], strict=False):
        assert ladder[large][:small] == ladder[small]
    # Reproducible by seed, and the seed matters.
    assert select_ladder(pool, strategy, sizes, seed=4, mix=mix) == ladder
    assert select_ladder(pool, strategy, [100], seed=5, mix=mix)[100] != ladder[100]
    # Past what a source has, the other fills the rest (120 tatqa of 200).
    full = select_ladder(pool, strategy, [200], seed=4, mix=mix)[200]
    assert Counter(i[0] for i in full) == {"t": 120, "p": 80}


def test_a_mix_refuses_a_source_the_snapshot_lacks_and_bad_shares():
    pool = [_ex(f"p{i}", "procedural") for i in range(20)]
    with pytest.raises(InputError, match="no examples of source 'tatqa'"):
        select_ladder(pool, "random", [5], seed=0, mix={"procedural": 0.5, "tatqa": 0.5})
    for bad in ("procedural", "procedural=0", "procedural=-1,tatqa=2", "=0.5"):
        with pytest.raises(InputError, match="SOURCE=SHARE"):
            parse_mix(bad)


def test_mixed_subsets_are_stored_with_their_mix(wh_path):
    made = create_subsets(SubsetConfig(sizes=[10, 20], mix="procedural=1",
                                       warehouse=str(wh_path)))
    plain = create_subsets(SubsetConfig(sizes=[10, 20], warehouse=str(wh_path)))
    assert made.params == {"mix": {"procedural": 1.0}}
    assert made.subsets[-1].subset_id != plain.subsets[-1].subset_id  # the mix is in the id
    info = Store(wh_path).subsets.load_subset(made.subsets[-1].subset_id)
    assert info.params == {"mix": {"procedural": 1.0}}
