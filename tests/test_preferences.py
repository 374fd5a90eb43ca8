"""The preferences flow on samples of a real refresh (noisy teacher, real sandbox, real
DuckDB, real Prefect, the real GE suite): distinct-solution sets, outcome pairs, step pairs
at the first wrong step the noisy teacher recorded, verifier labels, and their exports."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from datasets import load_from_disk

from flows.pipeline import PipelineRun
from flows.preferences import PreferencesConfig, preferences
from flows.refresh import RefreshConfig, refresh
from quality.preferences import validate_pairs
from tasks.answers import answers_match
from tasks.execute import execute_programs
from tasks.preferences.pairs import Group, distinct_solutions, outcome_pairs
from tasks.preferences.signature import program_signature, split_steps
from tasks.preferences.stages import ValidatePairs
from tasks.render import student_prompt
from tasks.teachers.reference import reference_program
from warehouse import Store

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(scope="module")
def made(tmp_path_factory, prefect_harness):
    """A noisy-teacher refresh (half the questions wrong), then the preferences flow."""
    root = tmp_path_factory.mktemp("prefs")
    wh = str(root / "w.duckdb")
    refresh(RefreshConfig(source="procedural", n=120, seed=13, teacher="noisy",
                          error_rate=0.5, warehouse=wh))
    out = preferences(PreferencesConfig(warehouse=wh, out=str(root / "exports")))
    return Store(wh), out, root / "exports"


def _samples(store: Store) -> dict[str, dict]:
    cols, rows = store.query("SELECT sample_id, question_id, teacher, program, exec_status, "
                             "correct, meta, run_id FROM samples")
    return {r[0]: dict(zip(cols, r, strict=True)) for r in rows}


def _wrong_noisy(store: Store) -> list[dict]:
    return [s for s in _samples(store).values() if s["teacher"] == "noisy"
            and s["correct"] is False]


def test_outcome_pairs_one_per_wrong_sample_with_lineage(made):
    store, out, _ = made
    wrong = _wrong_noisy(store)
    assert len(wrong) > 20
    samples = _samples(store)
    _, rows = store.query("SELECT question_id, chosen_sample_id, rejected_sample_id, chosen, "
                          "rejected, prompt, rule, run_id FROM preference_pairs "
                          "WHERE pair_type = 'outcome'")
    assert {r[2] for r in rows} == {s["sample_id"] for s in wrong}
    questions = {q.question_id: q for q in store.load_questions([r[0] for r in rows])}
    for qid, chosen_id, rejected_id, chosen, rejected, prompt, rule, run_id in rows:
        c, r = samples[chosen_id], samples[rejected_id]
        assert c["question_id"] == r["question_id"] == qid
        assert c["correct"] is True and r["correct"] is False  # stored execution verdicts
        assert chosen == c["program"].strip() and rejected == r["program"].strip()
        assert chosen != rejected
        # The right side is the reference program, run and checked by this run.
        assert c["teacher"] == "reference" and c["run_id"] == out.run_id == run_id
        q = questions[qid]
        assert c["program"] == reference_program(q)
        assert prompt == student_prompt(q.text, q.context)
        assert rule.startswith("outcome:closest")
    assert out.counts["reference_added"] == len(wrong) == out.tables["pairs.outcome"]


def test_outcome_rule_takes_the_right_sample_closest_to_the_wrong_one(made):
    store, _, _ = made
    group = next(g for g in store.preferences.groups() if g.wrong() and g.right())
    right = group.right()[0]
    far = replace(right, sample_idx=0, teacher="other", correct=True,
                  program=right.program + "\nunused = 1\nans = ans * 1")
    group = Group(group.question, [far, *group.samples])  # `far` comes first in order
    (pair,) = outcome_pairs(group)
    assert pair.chosen_sample_id == right.sample_id  # closer by edit distance, not first
    assert pair.meta["distance"] > 0


def test_step_pairs_find_the_first_wrong_step_known_by_construction(made):
    """The noisy teacher changed line `error_step` of the reference program; the step pair
    sits at that step, its prefix is the (right) reference lines before it, the chosen
    continuation reaches the gold from that prefix and the wrong step does not."""
    store, _, _ = made
    wrong = {s["sample_id"]: s for s in _wrong_noisy(store)}
    cols, rows = store.query("SELECT * FROM preference_pairs WHERE pair_type = 'step'")
    pairs = [dict(zip(cols, r, strict=True)) for r in rows]
    assert {p["rejected_sample_id"] for p in pairs} == set(wrong)
    questions = {q.question_id: q for q in store.load_questions([p["question_id"]
                                                                 for p in pairs])}
    programs, golds, kinds = [], [], []
    for p in pairs:
        s, q = wrong[p["rejected_sample_id"]], questions[p["question_id"]]
        meta = json.loads(s["meta"])
        ref, bad = split_steps(reference_program(q)), split_steps(s["program"])
        # Found independently: the first line where the wrong program leaves the reference.
        first_diff = next(i for i, (a, b) in enumerate(zip(ref, bad, strict=True)) if a != b)
        assert p["step"] == meta["error_step"] == first_diff
        assert p["prefix"] == "\n".join(ref[:first_diff])
        assert p["rejected"] == bad[first_diff] and p["chosen"].splitlines()[0] == ref[first_diff]
        head = [p["prefix"]] if p["prefix"] else []
        programs += ["\n".join([*head, p["chosen"]]),  # the right continuation
                     "\n".join([*head, p["rejected"], *p["chosen"].splitlines()[1:]])]
        golds.append(q)
        kinds.append(meta["error_kind"])
    results = execute_programs(programs)
    right_ok = [answers_match(r.value, q.gold_answer, scale=q.meta.get("scale"))
                for r, q in zip(results[0::2], golds, strict=True)]
    wrong_ok = [answers_match(r.value, q.gold_answer, scale=q.meta.get("scale"))
                for r, q in zip(results[1::2], golds, strict=True)]
    assert all(right_ok)
    # One wrong step is enough to miss the gold, except for `rounding`, which rounds every
    # value (its first rounded step alone may still round to the gold).
    assert not any(ok for ok, kind in zip(wrong_ok, kinds, strict=True) if kind != "rounding")
    assert len({k for k in kinds}) >= 4


def test_distinct_solutions_by_signature_then_distance(made):
    store, out, _ = made
    assert out.tables["solution_sets"] == out.counts["solution_set_questions"] > 50
    group = next(g for g in store.preferences.groups() if len(g.right()) == 1)
    right = group.right()[0]
    steps = split_steps(right.program)
    renamed = "\n".join(line.replace(steps[0].split("=")[0].strip(), "x_renamed")
                        for line in steps)
    spaced = right.program.replace(" = ", "   =   ") + "\n\n# a comment\n"
    other = right.program + "\nans = ans + 0"
    assert program_signature(renamed) == program_signature(spaced) == \
        program_signature(right.program)
    variants = [replace(right, teacher="t", sample_idx=i, program=p)
                for i, p in enumerate([renamed, spaced, other], start=1)]
    group = Group(group.question, [right, *variants])
    kept = distinct_solutions(group, n=4)
    assert [s.program for s, _ in kept] == [right.program, other]
    assert len(distinct_solutions(group, n=1)) == 1
    # A tiny edit is not a distinct solution when a least distance is asked for.
    assert [s.program for s, _ in distinct_solutions(group, n=4, min_distance=0.5)] == \
        [right.program]


def test_failing_pairs_become_rejections_and_are_not_stored(made):
    store, _, _ = made
    groups = [g for g in store.preferences.groups() if g.wrong() and g.right()][:3]
    pairs = [p for g in groups for p in outcome_pairs(g)]
    pairs[0] = replace(pairs[0], rejected=pairs[0].chosen, chosen_sample_id="x1")
    pairs[1] = replace(pairs[1], rejected_correct=True, chosen_sample_id="x2")
    sample_questions = {s.sample_id: s.question_id for g in groups for s in g.samples}
    sample_questions.update(x1=pairs[0].question_id, x2=pairs[1].question_id)
    run = PipelineRun(store, "bad-pairs-run")
    kept = run.stage(ValidatePairs(validate_pairs, sample_questions, "bad-pairs-run"), pairs)
    assert [p.pair_id for p in kept] == [pairs[2].pair_id]
    reasons = dict(store.query("SELECT item_id, reason FROM rejections "
                               "WHERE run_id = 'bad-pairs-run'")[1])
    assert reasons == {
        pairs[0].pair_id: "expect_select_column_values_to_be_unique_within_record",
        pairs[1].pair_id: "expect_column_values_to_be_in_set(rejected_correct)"}
    stored = {r[0] for r in store.query("SELECT pair_id FROM preference_pairs")[1]}
    assert pairs[0].pair_id not in stored and pairs[1].pair_id not in stored
    (ok,) = store.query("SELECT success FROM validations WHERE run_id = 'bad-pairs-run' "
                        "AND suite = 'preference_pairs'")[1]
    assert ok == (False,)


def test_exports_in_trl_formats(made):
    store, out, exports = made
    assert set(out.exports) == {"preference", "kto", "rft", "verifier"}
    pref = load_from_disk(str(exports / "preference" / "hf"))
    assert len(pref) == out.tables["pairs.outcome"] + out.tables["pairs.step"]
    for row in pref:
        assert [t["role"] for t in row["chosen"]] == [t["role"] for t in row["rejected"]] \
            == ["assistant"]
        assert row["chosen"] != row["rejected"]
        roles = [t["role"] for t in row["prompt"]]
        if row["pair_type"] == "outcome":
            assert roles == ["system", "user"]
            assert row["chosen"][0]["content"].startswith("```python\n")
        else:  # the prompt ends inside the assistant turn: the right steps so far
            assert roles == ["system", "user", "assistant"]
            assert row["prompt"][2]["content"].startswith("```python\n")
            assert row["chosen"][0]["content"].endswith("```")
    kto = load_from_disk(str(exports / "kto" / "hf"))
    assert set(kto.column_names) >= {"prompt", "completion", "label"}
    assert sum(kto["label"]) > 0 and sum(not x for x in kto["label"]) == len(pref)
    rft = [json.loads(x) for x in (exports / "rft" / "data.jsonl").read_text().splitlines()]
    assert len(rft) == out.tables["solution_sets"]
    assert all(m["role"] for r in rft for m in r["messages"])
    ver = load_from_disk(str(exports / "verifier" / "hf"))
    assert len(ver) == out.tables["verifier_labels"]
    n_wrong = len(_wrong_noisy(store))
    assert sum(not x for x in ver["label"]) == n_wrong


def test_verifier_labels_balanced_on_request(made):
    store, _, _ = made
    rows = store.preferences.verifier_rows(balanced=True, seed=3)
    right = [r for r in rows if r["correct"]]
    assert len(right) == len(rows) - len(right) == len(_wrong_noisy(store))
    assert rows != store.preferences.verifier_rows(balanced=True, seed=4)
    assert {r["error_kind"] is None for r in right} == {True}


def test_rerun_adds_nothing(made):
    store, _, _ = made
    before = (store.counts()["samples"], store.preferences.counts())
    again = preferences(PreferencesConfig(warehouse=str(store.path)))
    assert again.counts.get("reference_added", 0) == 0  # every question now has a right sample
    assert (store.counts()["samples"], store.preferences.counts()) == before


def test_llm_teacher_k_samples_against_the_test_server(tmp_path, monkeypatch):
    """K=4 samples per question from the LLM teacher (the local OpenAI-compatible server
    answers some wrongly): outcome pairs come from the question's own samples, the K right
    samples (same program, other wrapping) are one distinct solution, and wrong samples with
    no recorded step give no step pair."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from fake_openai import FakeOpenAI

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-preferences")
    rows, answers = [], {}
    for i in range(24):
        a, b = 11 + i, 7 + 3 * i
        text = f"A crate holds {a} apples and {b} pears. How many fruits are in crate {i}?"
        answers[text] = f"apples = {a}\npears = {b}\nans = apples + pears"
        rows.append({"question": text, "answer": str(a + b)})
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    wh = tmp_path / "w.duckdb"
    with FakeOpenAI(answers, p_wrong=0.3) as server:
        refresh(RefreshConfig(source=f"jsonl:{path}", teacher="openai", samples=4,
                              temperature=0.7, base_url=server.base_url, warehouse=str(wh),
                              request_timeout_s=0.5, backoff_base_s=0.01, max_retries=6))
    out = preferences(PreferencesConfig(warehouse=str(wh)))
    store = Store(wh)
    _, mixed = store.query(
        "SELECT question_id FROM samples GROUP BY 1 "
        "HAVING bool_or(correct) AND bool_or(NOT correct)")
    _, pairs = store.query(
        "SELECT p.question_id, c.teacher, c.correct, r.correct, r.program LIKE '%ans + 1' "
        "FROM preference_pairs p JOIN samples c ON c.sample_id = p.chosen_sample_id "
        "JOIN samples r ON r.sample_id = p.rejected_sample_id WHERE pair_type = 'outcome'")
    assert mixed and {r[0] for r in pairs} >= {r[0] for r in mixed}
    assert all(t == "openai" and c and not w and bump for q, t, c, w, bump in pairs
               if q in {m[0] for m in mixed})
    n_wrong = store.query("SELECT count(*) FROM samples WHERE correct = false")[1][0][0]
    assert out.counts["step_skipped.no_known_wrong_step"] == n_wrong
    _, sets = store.query("SELECT question_id, count(*) FROM solution_sets GROUP BY 1")
    n_right = store.query("SELECT count(DISTINCT question_id) FROM samples "
                          "WHERE correct")[1][0][0]
    assert len(sets) == n_right and {n for _, n in sets} == {1}
    assert store.query("SELECT max(n) FROM (SELECT count(*) n FROM samples WHERE correct "
                       "GROUP BY question_id)")[1][0][0] > 1  # K right samples, one solution


def _dpo_pairs(exports: Path) -> Any:
    full = load_from_disk(str(exports / "preference" / "hf"))
    step = [i for i, t in enumerate(full["pair_type"]) if t == "step"][:4]
    outcome = [i for i, t in enumerate(full["pair_type"]) if t == "outcome"][:4]
    from tasks.preferences.dpo import load_pairs

    return load_pairs(exports / "preference").select(step + outcome)


def _tiny_for(pairs: Any) -> tuple[Any, Any]:
    from tasks.experiments.student import build_tiny_student

    texts = ["\n".join(t["content"] for t in r["prompt"] + r[side])
             for r in pairs for side in ("chosen", "rejected")]
    return build_tiny_student(texts, n_layer=1, n_embd=64, n_head=2, vocab_size=1024)


@pytest.mark.slow
def test_dpo_on_the_exported_pairs(made, tmp_path):
    """TRL's DPOTrainer on the preference export (outcome and step pairs, the step pairs'
    prompts ending inside the assistant turn), a tiny student built here: the policy moves
    towards the chosen side."""
    from tasks.experiments.params import DPOParams
    from tasks.preferences.dpo import train_dpo

    pairs = _dpo_pairs(made[2])
    model, tok = _tiny_for(pairs)
    out = train_dpo(pairs, tmp_path / "dpo", DPOParams(learning_rate=1e-3, max_steps=10,
                                                       batch_size=4, logging_steps=5,
                                                       warmup_ratio=0.0),
                    model=model, tokenizer=tok)
    assert out.steps == 10
    assert out.first_loss == pytest.approx(0.6931, abs=1e-3)  # policy == reference at start
    assert out.final_loss < 0.6 and out.metrics["reward_margin"] > 0
    assert out.metrics["reward_accuracy"] > 0.5
    assert (tmp_path / "dpo" / "config.json").is_file()


@pytest.mark.slow
def test_dpo_with_lora_uses_the_base_without_adapters_as_reference(made, tmp_path):
    """DPO with LoRA: only the adapters train, and the reference is the same model with
    its adapters off (no second copy). At step 0 the adapters are zero, so policy and
    reference agree (loss ln 2); after a few steps the policy prefers the chosen side; the
    saved folder holds the merged model, loadable like any other."""
    import torch
    from transformers import AutoModelForCausalLM

    from tasks.experiments.params import DPOParams
    from tasks.preferences.dpo import train_dpo

    pairs = _dpo_pairs(made[2])
    model, tok = _tiny_for(pairs)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    out = train_dpo(pairs, tmp_path / "lora", DPOParams(
        lora=True, lora_r=8, lora_alpha=16, learning_rate=5e-3, max_steps=8, batch_size=4,
        logging_steps=4, warmup_ratio=0.0), model=model, tokenizer=tok)
    assert out.steps == 8 and out.n_trainable < out.n_parameters / 5
    assert out.first_loss == pytest.approx(0.6931, abs=1e-3)
    assert out.final_loss < out.first_loss and out.metrics["reward_margin"] > 0
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "lora")
    changed = [n for n, p in merged.named_parameters()
               if n in before and not torch.equal(p, before[n])]
    # The adapters' update is merged into the attention/MLP weights; embeddings stay.
    assert changed and all("wte" not in n and "wpe" not in n for n in changed)


def test_rollouts_find_the_first_wrong_step_without_reading_the_label(made):
    """Self-Explore's definition, with the reference policy as the rollout model: the first
    step from whose prefix no continuation reaches the gold, found by running every
    prefix + continuation in the sandbox; it is the step the noisy teacher changed."""
    from tasks.preferences.rollouts import ReferenceContinuer, rollout_first_wrong_steps

    store, _, _ = made
    groups = [g for g in store.preferences.groups() if g.wrong()]
    wrong = [s for g in groups for s in g.wrong()]
    found = rollout_first_wrong_steps(wrong, {g.question_id: g.question for g in groups},
                                      ReferenceContinuer(), k=1)
    exact = [s for s in wrong if s.meta["error_kind"] != "rounding"]
    assert len(exact) > 20
    assert {s.sample_id: found[s.sample_id] for s in exact} == \
        {s.sample_id: s.meta["error_step"] for s in exact}
    # `rounding` rounds every value and labels the first value step, which may round to
    # itself: the rollouts then find a later step, never an earlier one.
    assert all(found[s.sample_id] >= s.meta["error_step"] for s in wrong
               if s.meta["error_kind"] == "rounding")
    # The right samples have no wrong step.
    right = [s for g in groups for s in g.right()]
    assert set(rollout_first_wrong_steps(right, {g.question_id: g.question for g in groups},
                                         ReferenceContinuer(), k=1).values()) == {None}


def test_rollouts_through_an_llm_endpoint_find_the_same_steps(made):
    """The teacher's endpoint as the rollout policy (real HTTP to the test server, which
    writes each question's reference program): the LLM step's continuations find the same
    first wrong steps as the reference policy, the calls are logged as `rollout` requests,
    and a rerun is served from the warehouse cache."""
    import sys

    from tasks.preferences.llm_rollouts import LLMContinuer
    from tasks.preferences.rollouts import ReferenceContinuer, rollout_first_wrong_steps
    from tasks.teachers.llm import LLMTeacherConfig

    sys.path.insert(0, str(Path(__file__).parent))
    from fake_openai import FakeOpenAI

    store, _, _ = made
    groups = [g for g in store.preferences.groups() if g.wrong()][:12]
    questions = {g.question_id: g.question for g in groups}
    wrong = [s for g in groups for s in g.wrong()]
    answers = {(q.text, q.context.strip()): reference_program(q) for q in questions.values()}
    expected = rollout_first_wrong_steps(wrong, questions, ReferenceContinuer(), k=1)
    assert sum(v is not None for v in expected.values()) >= 8
    with FakeOpenAI(answers) as server:
        cfg = LLMTeacherConfig(base_url=server.base_url, model="gpt-4o-mini")
        continuer = LLMContinuer(cfg, store.llm, "rollout-run-1")
        assert rollout_first_wrong_steps(wrong, questions, continuer, k=2) == expected
        sent = server.stats()["served_total"]
        prefixes = sum(len(split_steps(s.program)) for s in wrong)
        assert sent == 2 * prefixes == continuer.counts["rollout_requests"]
        assert continuer.counts["rollout_cost_usd"] > 0
        again = LLMContinuer(cfg, store.llm, "rollout-run-2")
        assert rollout_first_wrong_steps(wrong, questions, again, k=2) == expected
        assert server.stats()["served_total"] == sent  # the rerun sent nothing
        assert again.counts["rollout_cache_hits"] == sent
    _, rows = store.query("SELECT purpose, count(*) FROM llm_requests WHERE run_id = "
                          "'rollout-run-1' GROUP BY 1")
    assert rows == [("rollout", sent)]


def test_preferences_flow_with_rollout_steps(tmp_path):
    wh = str(tmp_path / "w.duckdb")
    refresh(RefreshConfig(source="procedural", n=40, seed=21, teacher="noisy",
                          error_rate=0.6, error_kinds=["wrong_year", "swapped_operands",
                                                       "dropped_scale"], warehouse=wh))
    out = preferences(PreferencesConfig(warehouse=wh, step_source="rollout", rollouts=2))
    assert out.counts["rollout_found"] == out.counts["rollout_agrees_with_label"] > 5
    assert "rollout_disagrees_with_label" not in out.counts
    # The same run with the teacher's endpoint as the policy (`rollout_policy=teacher`).
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from fake_openai import FakeOpenAI

    qs = [g.question for g in Store(wh).preferences.groups()]
    with FakeOpenAI({(q.text, q.context.strip()): reference_program(q) for q in qs}) as server:
        by_llm = preferences(PreferencesConfig(
            warehouse=wh, step_source="rollout", rollouts=1, rollout_policy="teacher",
            teacher={"base_url": server.base_url, "model": "gpt-4o-mini"}))
    assert by_llm.counts["rollout_found"] == out.counts["rollout_found"]
    assert by_llm.counts["rollout_requests"] == server.stats()["served_total"] > 0
    _, rows = Store(wh).query("SELECT DISTINCT rule FROM preference_pairs "
                              "WHERE pair_type = 'step'")
    assert rows == [("step:rollouts(first prefix from which no continuation reaches the "
                     "gold);chosen=continuation of a right program with the same prefix",)]
