"""The GE project in quality/gx/: row-level suites reject the rows they should, batch-level
expectations refuse a batch, drift from the snapshot is flagged, custom expectations pass and
fail like built-in ones, and the checkpoints write Data Docs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import great_expectations.expectations as gxe
import pandas as pd
import pytest

from quality.context import GX_DIR, gx_lock, quality_context
from quality.expectations import (
    ExpectColumnKlDivergenceFromReferenceToBeLessThan,
    ExpectColumnQuantilesToMatchReference,
    ExpectColumnTopValueShareToBeAtMost,
    ExpectColumnValuesToBeFiniteNumbers,
    ExpectColumnValuesToCompileAsPython,
)
from quality.validate import validate_candidates
from tasks.sources import load_questions


def _row(i: int, **kw) -> dict:
    row = {"question_id": f"q{i}", "question": f"What is {i} times three, exactly?",
           "context": "", "program": f"ans = {i} * 3", "answer": str(i * 3),
           "source": "procedural", "kind": ("sum", "ratio", "change")[i % 3],
           "difficulty": 1 + i % 3, "exec_status": "ok"}
    row.update(kw)
    return row


def _procedural(n: int, seed: int) -> pd.DataFrame:
    """Candidate rows as the refresh builds them, from the real generator's gold programs."""
    return pd.DataFrame([{
        "question_id": q.question_id, "question": q.text, "context": q.context,
        "program": q.gold_program, "answer": q.gold_answer, "source": q.source,
        "kind": q.meta.get("kind"), "difficulty": q.difficulty, "exec_status": "ok"}
        for q in load_questions("procedural", n=n, seed=seed)]).drop_duplicates("question_id")


def _unexpected(expectation, frame: pd.DataFrame, docs: Path) -> list[str] | object:
    """Validate one expectation on a frame through the project's data source; the failing
    question_ids (map expectations) or the result (aggregate ones)."""
    with gx_lock:
        ctx = quality_context(docs)
        batch = (ctx.data_sources.get("candidates").get_asset("candidate_rows")
                 .get_batch_definition("whole_batch")
                 .get_batch(batch_parameters={"dataframe": frame}))
        res = batch.validate(expectation, result_format={
            "result_format": "COMPLETE", "unexpected_index_column_names": ["question_id"]})
    if "unexpected_index_list" in res.result:
        return sorted(e["question_id"] for e in res.result["unexpected_index_list"])
    return res


def _tracked_gx_files() -> dict[str, str]:
    return {str(p.relative_to(GX_DIR)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in GX_DIR.rglob("*") if p.is_file() and "uncommitted" not in p.parts}


# ------------------------------------------------------------------ row level


def test_row_failures_become_rejections_named_after_the_expectation(tmp_path):
    rows = [_row(i) for i in range(20)]
    rows[1]["program"] = None
    rows[2]["program"] = "ans = 1" + " " * 4000  # longer than the student's sequence
    rows[3]["answer"] = "inf"                  # not finite
    rows[4]["question"] = "short"              # under the length bound
    rows[5]["question_id"] = "q6"              # duplicated id: the second copy goes
    rows[7]["answer"] = None                   # ran, but left ans = None
    rows[8]["exec_status"] = "timeout"
    rows[9]["answer"] = "3e20"                 # finite, but a magnitude beyond 1e15
    out = validate_candidates(pd.DataFrame(rows), max_rejected_fraction=0.5,
                              docs_dir=tmp_path / "docs")
    reasons = {r.item_id: r.reason for r in out.rejections}
    assert reasons == {
        "q1": "expect_column_values_to_not_be_null(program)",
        "q2": "expect_column_value_lengths_to_be_between(program)",
        "q3": "expect_column_values_to_be_finite_numbers(answer)",
        "q4": "expect_column_value_lengths_to_be_between(question)",
        "q6": "expect_column_values_to_be_unique(question_id)",
        "q7": "expect_column_values_to_not_be_null(answer)",
        "q8": "expect_column_values_to_be_in_set(exec_status)",
        "q9": "expect_column_values_to_be_between(answer_magnitude)",
    }
    assert all(r.stage == "quality" for r in out.rejections)
    assert {r.detail for r in out.rejections} == {"row failed the samples suite",
                                                 "row failed the questions suite"}
    assert out.success and out.reason is None and not out.blocking_failures
    assert "q0" in out.kept_ids and "q1" not in out.kept_ids
    # One rejection per question id: a duplicated id leaves with both copies (rows are
    # counted, ids are rejected once).
    assert "q6" not in out.kept_ids and len(out.rejections) == 8
    assert out.statistics["rows"] == 20 and out.statistics["rejected"] == 9
    assert set(out.statistics["suites"]) == {"questions", "samples", "abstentions",
                                           "curated_batch"}


def test_gate_refuses_a_batch_when_too_many_rows_fail(tmp_path):
    rows = [_row(i, program=None) if i < 6 else _row(i) for i in range(10)]
    out = validate_candidates(pd.DataFrame(rows), max_rejected_fraction=0.2,
                              docs_dir=tmp_path / "docs")
    assert not out.success
    assert out.blocking_failures == ["curated_batch: expect_column_mean_to_be_between("
                                     "row_rejected)"]
    assert out.reason is not None and "\n" not in out.reason
    assert "expect_column_mean_to_be_between(row_rejected)" in out.reason
    # ... and names the row check behind the share, with its count.
    assert out.reason.endswith("(most rows rejected by samples: expect_column_values_to_not_"
                               "be_null(program), 6 of 10 rows)")
    failed = [r for r in out.results if r["suite"] == "curated_batch" and not r["success"]]
    assert failed[0]["observed"] == pytest.approx(0.6)


def test_too_few_rows_and_duplicates_refuse_the_batch(tmp_path):
    few = validate_candidates(pd.DataFrame([_row(i) for i in range(3)]), min_rows=5,
                              docs_dir=tmp_path / "docs")
    assert not few.success
    assert few.blocking_failures == ["curated_batch: expect_table_row_count_to_be_between"]
    dup = [_row(i) for i in range(10)] + [_row(i) for i in range(3)]
    out = validate_candidates(pd.DataFrame(dup), max_rejected_fraction=0.5,
                              max_duplicate_fraction=0.1, docs_dir=tmp_path / "docs")
    assert not out.success
    assert out.blocking_failures == [
        "curated_batch: expect_column_proportion_of_unique_values_to_be_between(question_id)"]


def test_kind_swamping_the_batch_is_a_warning(tmp_path):
    out = validate_candidates(pd.DataFrame([_row(i, kind="sum") for i in range(10)]),
                              docs_dir=tmp_path / "docs")
    assert out.success
    assert out.warnings == ["curated_batch: expect_column_top_value_share_to_be_at_most(kind)"]


# ------------------------------------------------------------------ the GE project


def test_suites_are_json_files_in_the_gx_project():
    names = sorted(p.stem for p in (GX_DIR / "expectations").glob("*.json"))
    assert names == ["abstentions", "curated_batch", "curated_drift", "preference_pairs",
                     "questions", "samples"]
    samples = json.loads((GX_DIR / "expectations" / "samples.json").read_text())
    types = {e["type"] for e in samples["expectations"]}
    assert {"expect_column_values_to_be_finite_numbers", "expect_column_values_to_be_in_set"
            } <= types
    # No spelling check on programs: execution says whether `ans` was produced.
    assert "expect_column_values_to_match_regex" not in types
    checkpoints = sorted(p.stem for p in (GX_DIR / "checkpoints").glob("*.json"))
    assert checkpoints == ["candidate_batch", "candidate_drift", "candidate_rows",
                           "preference_pairs"]
    for name in checkpoints:
        actions = json.loads((GX_DIR / "checkpoints" / f"{name}.json").read_text())["actions"]
        assert [a["type"] for a in actions] == ["update_data_docs"]


def test_every_critical_row_expectation_says_which_defect_it_catches():
    """A row check that only restates what execution and the check proved rejects good data
    (a regex on `ans =` refused public PoT programs); each must name its own defect."""
    for suite in ("questions", "samples", "abstentions"):
        doc = json.loads((GX_DIR / "expectations" / f"{suite}.json").read_text())
        for e in doc["expectations"]:
            if e["severity"] == "critical":
                assert len(e.get("description") or "") > 40, (suite, e["type"], e["kwargs"])


def test_the_file_context_loads_the_json_suites(tmp_path):
    with gx_lock:
        ctx = quality_context(tmp_path / "docs")
        suite = ctx.suites.get("samples")
    assert type(ctx).__name__ == "FileDataContext"
    assert any(type(e) is ExpectColumnValuesToBeFiniteNumbers for e in suite.expectations)


@pytest.mark.usefixtures("data_docs")
def test_validating_leaves_the_committed_project_untouched(tmp_path):
    before = _tracked_gx_files()
    ref = _procedural(60, seed=3)
    validate_candidates(_procedural(30, seed=4), reference=ref, docs_dir=tmp_path / "docs")
    assert _tracked_gx_files() == before
    assert (tmp_path / "gx-results").is_dir()  # results beside the docs, not in the repo


# ------------------------------------------------------------------ custom expectations


def test_compile_expectation_fails_exactly_the_programs_that_do_not_parse(tmp_path):
    frame = pd.DataFrame([
        {"question_id": "ok1", "program": "ans = 1 + 2"},
        {"question_id": "ok2", "program": "x = [i for i in range(3)]\nans = sum(x)"},
        {"question_id": "bad1", "program": "ans = (1 +"},
        {"question_id": "bad2", "program": "def f(:\n  pass"},
        {"question_id": "bad3", "program": "ans = 1\n  y = 2"},   # unexpected indent
        {"question_id": "null", "program": None},                # left to not_be_null
    ])
    got = _unexpected(ExpectColumnValuesToCompileAsPython(column="program"), frame,
                      tmp_path / "docs")
    assert got == ["bad1", "bad2", "bad3"]
    assert _unexpected(ExpectColumnValuesToCompileAsPython(column="program"),
                       frame[frame.question_id.str.startswith("ok")], tmp_path / "docs") == []


def test_finite_number_expectation_reads_answers_like_the_checker(tmp_path):
    frame = pd.DataFrame([{"question_id": qid, "answer": a} for qid, a in [
        ("plain", "42"), ("commas", "1,200"), ("percent", "12.5%"), ("negative", "-3.5"),
        ("currency", "$3.50"), ("inf", "inf"), ("nan", "nan"), ("text", "n/a"),
        ("empty", ""), ("huge", "2e15"), ("overflow", "1e400")]])
    got = _unexpected(ExpectColumnValuesToBeFiniteNumbers(column="answer"), frame,
                      tmp_path / "docs")
    assert got == sorted(["inf", "nan", "text", "empty", "overflow"])
    bounded = _unexpected(ExpectColumnValuesToBeFiniteNumbers(column="answer", max_abs=1e15),
                          frame, tmp_path / "docs")
    assert bounded == sorted(["inf", "nan", "text", "empty", "overflow", "huge"])


def test_top_value_share_expectation(tmp_path):
    def share(kinds: list, max_share: float):  # noqa: ANN202
        frame = pd.DataFrame({"question_id": [f"q{i}" for i in range(len(kinds))],
                              "kind": kinds})
        return _unexpected(ExpectColumnTopValueShareToBeAtMost(column="kind",
                                                               max_share=max_share),
                           frame, tmp_path / "docs")
    swamped = share(["a"] * 9 + ["b"], 0.8)
    assert not swamped.success and swamped.result["observed_value"] == pytest.approx(0.9)
    assert share(["a"] * 8 + ["b", "c"], 0.8).success
    assert share([None] * 4, 0.5).success            # nothing labelled: nothing swamps
    assert share(["a", None, None, "b"], 0.5).success  # nulls do not count


def test_reference_expectations_compare_with_a_reference(tmp_path):
    frame = pd.DataFrame({"question_id": [f"q{i}" for i in range(10)],
                          "kind": ["a"] * 5 + ["b"] * 5,
                          "program_chars": [float(20 + i) for i in range(10)]})
    even = {"values": ["a", "b"], "weights": [0.5, 0.5]}
    skewed = {"values": ["a", "b"], "weights": [0.95, 0.05]}
    kl = ExpectColumnKlDivergenceFromReferenceToBeLessThan
    assert _unexpected(kl(column="kind", partition_object=even, threshold=0.1), frame,
                       tmp_path / "docs").success
    assert not _unexpected(kl(column="kind", partition_object=skewed, threshold=0.1), frame,
                           tmp_path / "docs").success
    near = {"quantiles": [0.5], "value_ranges": [[20.0, 30.0]]}
    far = {"quantiles": [0.5], "value_ranges": [[100.0, 200.0]]}
    q = ExpectColumnQuantilesToMatchReference
    ok = _unexpected(q(column="program_chars", quantile_ranges=near), frame, tmp_path / "docs")
    assert ok.success is True  # a plain bool: GE's results store writes it as JSON
    assert not _unexpected(q(column="program_chars", quantile_ranges=far), frame,
                           tmp_path / "docs").success
    # Built-ins and custom ones mix in one call, as in the suites.
    assert _unexpected(gxe.ExpectColumnValuesToNotBeNull(column="kind"), frame,
                       tmp_path / "docs") == []


# ------------------------------------------------------------------ drift


def test_a_normal_batch_passes_the_drift_suite(tmp_path):
    out = validate_candidates(_procedural(120, seed=2), reference=_procedural(300, seed=1),
                              docs_dir=tmp_path / "docs")
    assert out.success and not out.rejections
    assert len(out.drift) == 5
    assert all(r["success"] for r in out.drift), out.drift
    assert out.warnings == []


def test_a_batch_of_one_kind_is_flagged_as_drift(tmp_path):
    reference = _procedural(300, seed=1)
    batch = _procedural(300, seed=2)
    top = batch["kind"].value_counts().index[0]
    one_kind = batch[batch["kind"] == top].head(30)
    assert len(one_kind) == 30
    out = validate_candidates(one_kind, reference=reference, docs_dir=tmp_path / "docs")
    kind = [r for r in out.drift if r["expectation"].endswith("(kind)")][0]
    assert not kind["success"] and kind["observed"] > 1.0
    assert kind["severity"] == "warning" and not kind["blocking"]
    assert out.success  # drift warns by default
    assert ("curated_drift: expect_column_kl_divergence_from_reference_to_be_less_than(kind)"
            in out.warnings)

    blocked = validate_candidates(one_kind, reference=reference, drift_blocking=True,
                                  docs_dir=tmp_path / "docs")
    assert not blocked.success
    assert blocked.reason.startswith("batch refused by")
    assert "expect_column_kl_divergence_from_reference_to_be_less_than(kind)" in blocked.reason
    assert blocked.kept_ids == list(one_kind["question_id"])  # refused, not row-rejected


def test_answers_changing_scale_and_longer_programs_are_drift(tmp_path):
    reference = _procedural(200, seed=1)
    batch = _procedural(100, seed=2)
    batch["answer"] = [str(float(a) * 1e6) for a in batch["answer"]]
    batch["program"] = batch["program"] + ("\n# padding" * 40)
    out = validate_candidates(batch, reference=reference, docs_dir=tmp_path / "docs")
    failed = {r["expectation"] for r in out.drift if not r["success"]}
    assert failed == {"expect_column_quantiles_to_match_reference(answer_magnitude)",
                      "expect_column_quantiles_to_match_reference(program_chars)"}


def test_no_reference_skips_the_drift_suite(tmp_path):
    out = validate_candidates(_procedural(20, seed=5), docs_dir=tmp_path / "docs")
    assert out.drift == [] and "curated_drift" not in out.statistics["suites"]


# ------------------------------------------------------------------ Data Docs


@pytest.mark.usefixtures("data_docs")
def test_checkpoints_write_data_docs_beside_the_results(tmp_path):
    rows = [_row(i) for i in range(10)]
    rows[2]["answer"] = "inf"
    out = validate_candidates(pd.DataFrame(rows), run_id="run-docs-1",
                              reference=pd.DataFrame([_row(i) for i in range(50, 80)]),
                              docs_dir=tmp_path / "docs")
    assert out.docs_index == tmp_path / "docs" / "index.html"
    assert out.docs_index.is_file()
    assert set(out.docs_pages) == {"questions", "samples", "abstentions", "curated_batch",
                                  "curated_drift"}
    samples_page = Path(out.docs_pages["samples"].removeprefix("file://"))
    html = samples_page.read_text()
    assert "run-docs-1" in str(samples_page)
    # The failed expectation is shown with the defect it catches (its description).
    assert "An answer that is not a finite number" in html
    assert "samples" in out.docs_index.read_text()


def test_data_docs_are_on_unless_switched_off(tmp_path, monkeypatch):
    """Users get the site by default; DISTILLERY_DATA_DOCS=0 (the test suite's setting
    outside the Data Docs tests) stores the results and writes no site."""
    from quality.context import DATA_DOCS_ENV, data_docs_enabled

    monkeypatch.delenv(DATA_DOCS_ENV, raising=False)
    assert data_docs_enabled()
    monkeypatch.setenv(DATA_DOCS_ENV, "0")
    rows = [_row(i) for i in range(10)]
    rows[2]["program"], rows[2]["exec_status"] = "ans = (1 +", "error"  # as the sandbox says
    out = validate_candidates(pd.DataFrame(rows), run_id="run-no-docs",
                              reference=pd.DataFrame([_row(i) for i in range(50, 80)]),
                              docs_dir=tmp_path / "docs")
    assert out.rejections and set(dict(out.statistics["suites"])) == {
        "questions", "samples", "abstentions", "curated_batch", "curated_drift"}
    assert out.docs_index is None and out.docs_pages == {}
    assert not (tmp_path / "docs").exists()
    assert "Data Docs" not in out.summary_markdown()
    assert len(list((tmp_path / "gx-results").rglob("*run-no-docs*"))) >= 5  # still stored


@pytest.mark.usefixtures("data_docs")
def test_outcome_reports_for_the_run_artifact(tmp_path):
    rows = [_row(i, program=None if i < 6 else f"ans = {i}", kind="sum") for i in range(10)]
    out = validate_candidates(pd.DataFrame(rows), docs_dir=tmp_path / "docs")
    table = {r["expectation"]: r for r in out.check_table()}
    assert table["expect_column_mean_to_be_between(row_rejected)"]["result"] == "REFUSED"
    assert table["expect_column_mean_to_be_between(row_rejected)"]["observed"] == "0.6"
    assert table["expect_column_top_value_share_to_be_at_most(kind)"]["result"] == "warning"
    assert table["expect_table_row_count_to_be_between"]["result"] == "pass"
    assert all(r["suite"] == "curated_batch" for r in out.check_table())
    md = out.summary_markdown()
    assert "refused" in md and out.reason in md and str(out.docs_index) in md


def test_one_validations_row_per_suite(tmp_path):
    rows = [_row(i) for i in range(10)]
    rows[3]["answer"] = "nan"
    out = validate_candidates(pd.DataFrame(rows), docs_dir=tmp_path / "docs",
                              reference=pd.DataFrame([_row(i) for i in range(40, 70)]))
    by_suite = {suite: (ok, stats, results) for suite, ok, stats, results in out.suite_rows()}
    assert set(by_suite) == {"questions", "samples", "abstentions", "curated_batch",
                             "curated_drift"}
    assert by_suite["samples"][0] is False and by_suite["questions"][0] is True
    assert by_suite["samples"][1]["unsuccessful_expectations"] == 1
    assert {r["suite"] for r in by_suite["curated_drift"][2]} == {"curated_drift"}


@pytest.mark.parametrize("expectation, sentence", [
    (ExpectColumnValuesToCompileAsPython(column="program"),
     "$column values must compile as Python (parse; nothing runs)."),
    (ExpectColumnValuesToBeFiniteNumbers(column="answer", max_abs=1e15),
     "$column values must read as finite numbers of magnitude at most $max_abs."),
    (ExpectColumnTopValueShareToBeAtMost(column="kind", max_share=0.8),
     "$column no single value may be more than a share $max_share of the non-null values."),
])
def test_custom_expectations_render_a_sentence_in_data_docs(expectation, sentence):
    expectation.render()
    [summary] = expectation.rendered_content
    assert summary.value.to_json_dict()["template"] == sentence
    [legacy] = type(expectation)._prescriptive_renderer(configuration=expectation.configuration)
    assert legacy["string_template"]["template"] == sentence
    assert legacy["string_template"]["params"]["column"] == expectation.column
