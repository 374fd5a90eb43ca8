"""The `openai` teacher end to end: the real openai SDK over real HTTP against a local
OpenAI-compatible server (tests/fake_openai.py) that misbehaves on purpose."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.refresh import RefreshConfig, refresh
from tasks.llm.client import ClientConfig, LLMClient
from tasks.sources import load_questions
from tasks.teachers.llm import parse, parse_final_answer, parse_program
from warehouse import Store

sys.path.insert(0, str(Path(__file__).parent))
from fake_openai import FakeOpenAI  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FAULTS = dict(p429=0.20, p500=0.10, ptimeout=0.05, pgarbage=0.05)


def _answers(n: int, seed: int) -> dict:
    return {(q.text, q.context.strip()): q.gold_program
            for q in load_questions("procedural", n=n, seed=seed)}


def _finals(n: int, seed: int) -> dict:
    return {(q.text, q.context.strip()): q.gold_answer
            for q in load_questions("procedural", n=n, seed=seed)}


def _llm_cfg(server: FakeOpenAI, wh: Path, **kw: object) -> RefreshConfig:
    base = dict(teacher="openai", base_url=server.base_url, warehouse=str(wh),
                request_timeout_s=0.5, backoff_base_s=0.01, backoff_max_s=0.2, max_retries=6)
    return RefreshConfig(**{**base, **kw})


def _one(store: Store, sql: str, params: list | None = None):  # noqa: ANN202
    return store.query(sql, params)[1][0][0]


@pytest.fixture(autouse=True)
def _api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    key = "sk-" + secrets.token_hex(20)
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return key


# --- parsing -------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "```python\nx = 2\nans = x * 3\n```",
    "Sure! Here it is:\n\n```python\nx = 2\nans = x * 3\n```\nThat gives 6.",
    "<think>hmm, 2 times 3</think>\n```python3\nx = 2\nans = x * 3\n```",
    "~~~py\nx = 2\nans = x * 3\n~~~",
    "```python\nx = 2\nans = x * 3",                       # fence never closed
    "We compute it.\nx = 2\nans = x * 3\nSo the answer is 6.",  # no fence, prose around
    "```\nprint('draft')\n```\nFinal:\n```python\nx = 2\nans = x * 3\n```",
])
def test_parse_program_tolerates_fences_and_prose(text):
    program = parse_program(text)
    env: dict = {}
    exec(program, env)  # noqa: S102 - test-controlled text
    assert env["ans"] == 6


@pytest.mark.parametrize("text", ["", "I cannot help with that.", "```python\nans = (\n```",
                                  "The answer is probably large."])
def test_unparseable_is_none(text):
    assert parse(text, "pot") is None


def test_cot_final_answer():
    assert parse_final_answer("a = 3\nFinal answer: 1,250.5") == 1250.5
    assert parse_final_answer("so #### 42") == 42
    assert parse_final_answer("it is \\boxed{12.5}") == 12.5
    assert parse_final_answer("Final answer: $7 dollars") == 7
    assert parse("steps\nFinal answer: 12.8%", "cot") == "ans = 12.8\n"
    assert parse("no marked answer here", "cot") is None


# --- client --------------------------------------------------------------------------------

def test_client_retry_after_backoff_and_last_error(_api_key):
    scripted = {"slow down": ["429", None], "broken": ["500"] * 10,
                "flaky": ["garbage", "timeout", "500", None]}
    with FakeOpenAI({"slow down": "ans = 1", "flaky": "ans = 2"}, retry_after="1",
                    scripted=scripted, timeout_sleep_s=3, api_key=_api_key) as server:
        cfg = ClientConfig(base_url=server.base_url, request_timeout_s=0.3, max_retries=3,
                           backoff_base_s=0.01)

        async def go():  # noqa: ANN202
            async with LLMClient(cfg) as client:
                body = {"model": "m", "messages": [{"role": "user", "content": ""}]}

                async def one(q: str):  # noqa: ANN202
                    t0 = time.perf_counter()
                    b = {**body, "messages": [{"role": "user", "content": f"Question: {q}"}]}
                    return await client.complete(b), time.perf_counter() - t0
                return await asyncio.gather(one("slow down"), one("broken"), one("flaky"))

        (slow, t_slow), (broken, _), (flaky, _) = asyncio.run(go())
    assert slow.ok and slow.attempts == 2 and t_slow >= 1.0  # Retry-After: 1 honoured
    assert not broken.ok and broken.attempts == 4 and "500" in broken.error
    assert flaky.ok and flaky.attempts == 4
    assert flaky.errors["timeout"] == 1 and flaky.errors["500"] == 1


# --- the refresh flow ------------------------------------------------------------------------

@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.slow
def test_fault_mix_every_question_accounted_and_rerun_is_free(warehouse_path):
    n, seed = 500, 3
    with FakeOpenAI(_answers(n, seed), **FAULTS, p_wrong=0.08, p_unparseable=0.02,
                    timeout_sleep_s=3.0) as server:
        cfg = _llm_cfg(server, warehouse_path, source="procedural", n=n, seed=seed,
                       max_concurrency=64, request_timeout_s=1.0)
        t0 = time.perf_counter()
        out = refresh(cfg)
        took = time.perf_counter() - t0
        first = server.stats()
        store = Store(warehouse_path)
        c = out["counts"]
        assert out["status"] == "completed", out
        assert c["input"] == n == c["kept"] + c["rejected"]
        assert store.unexplained_questions() == 0
        kinds = first["kinds"]
        attempts = sum(kinds.values())
        # The mix really happened, roughly as scripted.
        assert 0.12 < kinds["429"] / attempts < 0.28 and kinds["timeout"] > 20
        assert kinds["garbage"] > 20 and kinds["500"] > 50
        assert c["llm_cache_hits"] == 0 and c["llm_requests"] > 0.75 * n
        # Each answer was paid for once, unless the client had already given up on it (a
        # client-side timeout while the server was still answering, on a loaded machine).
        late = c.get("llm_error_timeout", 0) - kinds["timeout"]
        assert sum(v - 1 for v in first["served"].values()) <= late
        reasons = {(s, r) for s, r, _ in store.rejection_reasons(out["run_id"])}
        assert ("check", "wrong_answer") in reasons and ("teacher", "unparseable") in reasons
        # An unparseable answer keeps its raw text, in the rejection and in samples.
        detail = _one(store, "SELECT any_value(detail) FROM rejections "
                      "WHERE reason = 'unparseable'")
        assert "cannot help" in detail
        assert _one(store, "SELECT count(*) FROM samples WHERE exec_status = 'unparseable' "
                    "AND raw LIKE '%cannot help%'") >= 1
        failed = _one(store, "SELECT count(*) FROM rejections WHERE reason = 'llm_error'")
        assert failed == c["llm_failed"]
        # No duplicate rows anywhere.
        for table, key in (("samples", "sample_id"), ("llm_cache", "key"),
                           ("questions", "question_id"), ("rejections", "item_id, stage"),
                           ("llm_requests", "key")):
            assert _one(store, f"SELECT count(*) - count(DISTINCT ({key})) FROM {table}") == 0
        before = store.counts()

        server.reset_counts()
        again = refresh(cfg)
        assert server.stats()["requests"] == 0
        after = store.counts()
        assert after.pop("runs") == before.pop("runs") + 1
        assert again["snapshot_id"] is None and after == before
    print(f"\nfault mix: {attempts} attempts for {c['llm_requests']} requests in {took:.1f}s; "
          f"kinds {kinds}; stages {out['stage_seconds']}")


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_sends_only_unfinished(warehouse_path, tmp_path, _api_key,
                                                          prefect_server):
    # Killed after 120 answers: the first run must have many more to send.
    n, seed, conc = 300, 9, 8
    with FakeOpenAI(_answers(n, seed), latency_s=0.04) as server:
        # The killed run reports to the session's server (no ephemeral server to start).
        env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"),
               "PREFECT_API_URL": prefect_server.api_url, "OPENAI_API_KEY": _api_key}
        cmd = [str(REPO / ".venv" / "bin" / "distillery"), "refresh", "--source", "procedural",
               "--n", str(n), "--seed", str(seed), "--teacher", "openai", "--base-url",
               server.base_url, "--max-concurrency", str(conc), "--warehouse",
               str(warehouse_path)]
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 120
        while server.stats()["served_total"] < 120:
            assert proc.poll() is None, "refresh ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        time.sleep(0.3)
        served_1 = server.stats()["served_total"]
        store = Store(warehouse_path)
        cached = _one(store, "SELECT count(*) FROM llm_cache")
        assert 0 < cached <= served_1
        print(f"\nlost at kill: {served_1 - cached} (in flight at most {conc})")
        assert served_1 - cached <= 2 * conc  # lost: the in-flight and the uncommitted

        server.reset_counts()
        out = refresh(RefreshConfig(source="procedural", n=n, seed=seed, teacher="openai",
                                    base_url=server.base_url, warehouse=str(warehouse_path)))
        served_2 = server.stats()["served_total"]
    total = _one(store, "SELECT count(*) FROM llm_cache")
    assert out["status"] == "completed" and out["counts"]["resumed"] > 0
    assert served_2 == total - cached  # only what the killed run had not stored
    assert out["counts"]["llm_cache_hits"] == cached
    assert store.unexplained_questions() == 0
    assert _one(store, "SELECT count(*) - count(DISTINCT key) FROM llm_requests "
                "WHERE status = 'ok'") == 0
    assert _one(store, "SELECT count(*) - count(DISTINCT sample_id) FROM samples") == 0
    assert _one(store, "SELECT count(*) FROM samples") == total
    print(f"\nkilled after {served_1} answers, {cached} cached, rerun sent {served_2}")


@pytest.mark.usefixtures("prefect_harness")
def test_api_key_appears_nowhere(warehouse_path, tmp_path, monkeypatch, capfd, caplog,
                                 _api_key):
    caplog.set_level(logging.DEBUG)
    other_key = "sk-" + secrets.token_hex(20)
    monkeypatch.setenv("OTHER_OPENAI_KEY", other_key)
    with FakeOpenAI(_answers(80, 4), api_key=_api_key) as server:
        good = refresh(_llm_cfg(server, warehouse_path, source="procedural", n=80, seed=4,
                                progress=True))
        # A key the server refuses: its 401 body echoes the key, as real providers do.
        bad = refresh(_llm_cfg(server, warehouse_path, source="procedural", n=20, seed=5,
                               api_key_env="OTHER_OPENAI_KEY"))
    store = Store(warehouse_path)
    assert good["counts"]["kept"] > 50
    # Every request of the second run failed: the run failed, and says why in one line.
    sent = bad["counts"]["llm_requests"]
    assert bad["counts"]["llm_failed"] == sent > 10
    assert bad.status == "failed" and bad.snapshot_id is None
    assert bad.failure.startswith(f"every teacher request failed ({sent} of {sent}; "
                                  f"401 x{sent}): ")
    assert "\n" not in bad.failure and "***" in bad.failure
    assert _one(store, "SELECT status FROM runs WHERE run_id = ?", [bad.run_id]) == "failed"
    detail = _one(store, "SELECT any_value(detail) FROM rejections WHERE reason = 'llm_error'")
    assert "401" in detail and "***" in detail

    exported = []
    for table in ("runs", "questions", "samples", "rejections", "llm_cache", "llm_requests",
                  "selections", "validations", "curated", "run_summary"):
        exported.append(json.dumps(store.query(f"SELECT * FROM {table}"), default=str))
    blobs = [p.read_bytes() for p in warehouse_path.parent.glob(warehouse_path.name + "*")]

    from prefect.client.orchestration import get_client

    async def prefect_records() -> str:
        async with get_client() as client:
            artifacts = await client.read_artifacts()
            runs = await client.read_flow_runs()
        return json.dumps([a.model_dump(mode="json") for a in artifacts]
                          + [r.model_dump(mode="json") for r in runs], default=str)

    records = asyncio.run(prefect_records())
    assert "refresh-llm-cost" in records
    out, err = capfd.readouterr()
    logs = "\n".join(r.getMessage() for r in caplog.records) + out + err
    for key in (_api_key, other_key):
        assert key not in logs
        assert key not in records
        assert all(key not in text for text in exported)
        assert all(key.encode() not in blob for blob in blobs)
        assert all(key[3:15].encode() not in blob for blob in blobs)  # nor a piece of it


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("advertised", [True, False], ids=["props", "refusal"])
def test_more_samples_than_the_endpoint_serves_per_request(warehouse_path, advertised):
    """llama.cpp serves `n` choices from `n` slots and refuses more with a 400. The cap comes
    from /props up front, or from the first refusal; either way every question gets its K
    samples and no request fails (the client asks in parts)."""
    n, k = 12, 4
    with FakeOpenAI(_answers(n, 31), max_n=2, slots=2 if advertised else 0,
                    advertise_slots=advertised) as server:
        cfg = _llm_cfg(server, warehouse_path, source="procedural", n=n, seed=31, samples=k,
                       temperature=0.8)
        out = refresh(cfg)
        refused = server.stats()["kinds"].get("400_n", 0)
        again = refresh(cfg)
    c = out.counts
    store = Store(warehouse_path)
    assert out.status == "completed" and c["llm_failed"] == 0
    assert not any(key.startswith("llm_error_") and key != "llm_error_n_capped" for key in c)
    sent = c["input"] - c.get("dedup_rejected", 0)
    _, per_question = store.query("SELECT question_id, list_sort(list(sample_idx)) "
                                  "FROM samples GROUP BY 1")
    assert len(per_question) == sent and all(idx == [0, 1, 2, 3] for _, idx in per_question)
    # One logical request per question, answered with all K choices.
    assert c["llm_requests"] == sent
    assert _one(store, "SELECT count(*) FROM llm_requests WHERE status = 'ok'") == sent
    if advertised:
        assert refused == 0  # never asked for more than /props said
    else:
        assert refused >= 1 and c["llm_error_n_capped"] == refused
    assert again.counts.get("llm_requests", 0) == 0  # the rerun is served from the cache


@pytest.mark.usefixtures("prefect_harness")
def test_k_samples_gold_selection_and_majority_vote(warehouse_path, tmp_path):
    rows, answers = [], {}
    for i in range(40):
        a, b = 11 + i, 7 + 3 * i
        text = f"A crate holds {a} apples and {b} pears. How many fruits are in crate {i}?"
        answers[text] = f"apples = {a}\npears = {b}\nans = apples + pears"
        row = {"question": text}
        if i < 25:
            row["answer"] = str(a + b)
        rows.append(row)
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with FakeOpenAI(answers, p_wrong=0.3) as server:
        out = refresh(_llm_cfg(server, warehouse_path, source=f"jsonl:{path}", samples=4,
                               temperature=0.7, keep_per_question=2, min_agreement=0.75,
                               max_concurrency=16))
    store = Store(warehouse_path)
    assert _one(store, "SELECT count(*) FROM samples") == 160  # right and wrong kept
    assert _one(store, "SELECT count(DISTINCT prompt_version) FROM samples") == 1
    assert _one(store, "SELECT any_value(prompt_version) FROM samples") == "pot_v1"
    assert _one(store, "SELECT count(*) FROM samples WHERE correct = false") > 10
    # Gold: only correct samples are selected, at most 2 per question.
    assert _one(store, "SELECT count(*) FROM selections sel JOIN samples s USING (sample_id) "
                "WHERE sel.method = 'gold' AND NOT s.correct") == 0
    assert _one(store, "SELECT max(n) FROM (SELECT count(*) n FROM selections "
                "GROUP BY question_id)") == 2
    # No gold: the majority answer with its agreement, or a rejection that says why not.
    _, maj = store.query("SELECT agreement, votes, n_samples FROM selections "
                         "WHERE method = 'majority' AND rank = 0")
    assert maj and all(a == v / n >= 0.75 for a, v, n in maj)
    _, low = store.query("SELECT reason, detail FROM rejections "
                         "WHERE reason IN ('low_agreement', 'no_majority')")
    assert len(maj) + len(low) == 15
    assert _one(store, "SELECT count(*) FROM curated") == out["counts"]["kept"]
    assert store.unexplained_questions() == 0


@pytest.mark.usefixtures("prefect_harness")
def test_cot_format_and_runs_cost(warehouse_path):
    from typer.testing import CliRunner

    from flows.cli.main import app

    with FakeOpenAI(_answers(60, 6), finals=_finals(60, 6)) as server:
        out = refresh(_llm_cfg(server, warehouse_path, source="procedural", n=60, seed=6,
                               format="cot", model="gpt-4o-mini"))
    store = Store(warehouse_path)
    assert out["counts"]["kept"] > 40
    _, rows = store.query("SELECT prompt_version, program, answer, gold_answer FROM curated")
    assert {r[0] for r in rows} == {"cot_v1"}
    assert all(r[1].startswith("ans = ") for r in rows)
    assert _one(store, "SELECT count(*) FROM samples WHERE raw LIKE '%Final answer:%'") > 40
    cost = _one(store, "SELECT sum(cost_usd) FROM llm_requests")
    assert cost > 0 and abs(out["counts"]["llm_cost_usd"] - cost) < 1e-6
    result = CliRunner().invoke(app, ["runs", "cost", "--warehouse", str(warehouse_path)])
    assert result.exit_code == 0, result.output
    assert "gpt-4o-mini" in result.output and out["run_id"] in result.output
    assert f"${cost:.4f}" in result.output


@pytest.mark.usefixtures("prefect_harness")
def test_synthesis_fewshot_and_scratch_with_judge(warehouse_path, shared_data):
    seeds = f"gsm8k:{shared_data / 'gsm8k' / 'train.jsonl'}"
    with FakeOpenAI({}, p_judge_no=0.25) as server:
        out = refresh(_llm_cfg(server, warehouse_path, source="synth:fewshot", n=30,
                               seed_source=seeds, judge=True))
        scratch = refresh(_llm_cfg(server, warehouse_path, source="synth:scratch", n=10))
        server.reset_counts()
        again = refresh(_llm_cfg(server, warehouse_path, source="synth:fewshot", n=30,
                                 seed_source=seeds, judge=True))
        assert server.stats()["requests"] == 0  # synthesis, judge and teacher all cached
    store = Store(warehouse_path)
    c = out["counts"]
    assert c["synth_requests"] == 30 and c["input"] == 30
    assert c["judge_requests"] == 30 and 0 < c["judge_rejected"] < 20
    assert c["kept"] > 10
    assert c["input"] == c["kept"] + c["rejected"]
    _, judged = store.query("SELECT solvable, count(*) FROM judgments GROUP BY 1")
    assert dict(judged)[False] == c["judge_rejected"]
    assert _one(store, "SELECT count(*) FROM rejections WHERE stage = 'judge' "
                "AND reason = 'unsolvable'") == c["judge_rejected"]
    assert _one(store, "SELECT count(*) FROM curated WHERE source = 'synth:fewshot'") > 10
    assert scratch["counts"]["kept"] > 5
    assert again["counts"]["new"] == 0
    assert store.unexplained_questions() == 0


@pytest.mark.usefixtures("prefect_harness")
def test_batch_api_split_failed_lines_online_and_resume_by_batch_id(warehouse_path):
    from tasks.llm.batch import split_jsonl
    from tasks.llm.core import LLMRequest
    from warehouse.llm import LLMStore

    reqs = [LLMRequest(f"k{i}", "q", 0, {"messages": [{"content": "x" * 100}]}, 0)
            for i in range(25)]
    chunks = split_jsonl(reqs, max_lines=10, max_bytes=10_000)
    assert [len(k) for k, _ in chunks] == [10, 10, 5]
    small = split_jsonl(reqs, max_bytes=1_000)
    assert all(len(content) <= 1_000 for _, content in small) and len(small) > 3
    assert [k for keys, _ in small for k in keys] == [r.key for r in reqs]

    answers = _answers(120, 8)
    with FakeOpenAI(answers, p_batch_line_error=0.1) as server:
        # A run that died after submitting: its batch is in the warehouse, not downloaded.
        cfg = _llm_cfg(server, warehouse_path, source="procedural", n=120, seed=8,
                       batch=True, batch_poll_s=0.05)
        out = refresh(cfg)
        stats = server.stats()
    store = Store(warehouse_path)
    c = out["counts"]
    assert out["status"] == "completed" and c["kept"] > 80
    assert stats["kinds"]["batch_create"] == 1 and stats["kinds"]["upload"] == 1
    _, via = store.query("SELECT via, status, count(*) FROM llm_requests GROUP BY ALL")
    via = {(v, s): n for v, s, n in via}
    assert via[("batch", "ok")] > 80 and via[("online", "ok")] > 0  # failed lines: online
    assert _one(store, "SELECT status FROM llm_batches") == "downloaded"
    assert _one(store, "SELECT count(*) - count(DISTINCT key) FROM llm_cache") == 0
    assert store.unexplained_questions() == 0
    # Resume: a batch submitted by a killed run is polled by id, not submitted again.
    with FakeOpenAI(_answers(40, 31), batch_delay_s=0.2) as server:
        cfg2 = _llm_cfg(server, warehouse_path, source="procedural", n=40, seed=31,
                        batch=True, batch_poll_s=0.05)
        import openai

        from tasks.teachers.llm import LLMTeacher

        wh = LLMStore(warehouse_path)
        teacher = LLMTeacher(cfg2.teacher, wh, "killed-run")  # the requests a run sends
        pending = [r for q in load_questions("procedural", n=40, seed=31)
                   for r in teacher.requests(q)]
        client = openai.OpenAI(base_url=server.base_url, api_key="x")
        keys, content = split_jsonl(pending)[0]
        f = client.files.create(file=("r.jsonl", content), purpose="batch")
        b = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
        wh.save_batch(b.id, "killed-run", f.id, keys, b.status)
        out2 = refresh(cfg2)
        kinds = server.stats()["kinds"]
    assert kinds["batch_create"] == 1 and kinds["upload"] == 1  # only the killed run's
    assert out2["counts"]["kept"] > 25
    assert _one(store, "SELECT count(*) FROM llm_batches WHERE status <> 'downloaded'") == 0


def test_rpm_limiter_spaces_requests():
    from tasks.llm.client import TokenBucket

    async def go() -> float:
        bucket = TokenBucket(600, burst_s=0.1)  # 10 requests/s, a burst of 1
        t0 = time.perf_counter()
        for _ in range(11):
            await bucket.take(1)
        return time.perf_counter() - t0

    assert 0.9 <= asyncio.run(go()) < 2.0
