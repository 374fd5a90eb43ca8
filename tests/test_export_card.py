"""The dataset card of an export (README.md): its YAML header is what the Hub and
`datasets.load_dataset` read (a license per source present, size category, the train split in
data.parquet), its body reports the warehouse's own numbers (rejections by stage and reason,
the suites' verdicts); `export --push-to-hub` without a reachable Hub is one line and a
non-zero exit, and names no token. Real refreshes over procedural, GSM8K and TAT-QA items."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import tomllib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import datasets
import pandas as pd
import pytest
import yaml
from datasets import load_dataset
from huggingface_hub import DatasetCard
from typer.testing import CliRunner

from flows.cli.main import app
from flows.refresh import RefreshConfig, refresh
from flows.subsets import SubsetConfig, create_subsets
from tasks.experiments.card import PROJECT_LICENSE, size_category
from warehouse import Store

pytestmark = pytest.mark.usefixtures("prefect_harness")

REPO = Path(__file__).resolve().parents[1]
TOKEN = "hf_distilleryTestTokenDoNotPrint42"


@pytest.fixture(scope="module")
def exported(tmp_path_factory, prefect_harness, shared_data) -> tuple[Path, Path, str]:
    """Three refreshes (one snapshot each), a stratified subset of the last snapshot, and its
    export through the CLI: (warehouse, export folder, subset id)."""
    root = tmp_path_factory.mktemp("card")
    path = root / "w.duckdb"
    for source, n in [("procedural", 30),
                      (f"gsm8k:{shared_data / 'gsm8k' / 'train.jsonl'}", 15),
                      (f"tatqa:{shared_data / 'tatqa' / 'tatqa_dataset_dev.json'}", 20)]:
        refresh(RefreshConfig(source=source, n=n, seed=8, warehouse=str(path)))
    made = create_subsets(SubsetConfig(size=24, strategy="stratified", seed=1,
                                       warehouse=str(path)))
    subset_id = made.subsets[0].subset_id
    out = root / "export"
    res = CliRunner().invoke(app, ["export", "--subset", subset_id, "--out", str(out),
                                   "--warehouse", str(path)])
    assert res.exit_code == 0, res.output
    assert f"card:       {out / 'README.md'}" in res.output
    return path, out, subset_id


def _section_rows(body: str, heading: str) -> list[list[str]]:
    """The cells of the first markdown table under `## heading`."""
    section = body.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = section.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| "))
    rows = []
    for line in lines[start + 2:]:  # after the header and its |---| line
        if not line.startswith("| "):
            break
        rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return rows


def test_card_header_names_each_source_license_and_loads_as_the_train_split(exported):
    path, out, subset_id = exported
    text = (out / "README.md").read_text()
    header = yaml.safe_load(text.split("---\n")[1])  # plain YAML, as the Hub parses it
    card = DatasetCard.load(out / "README.md")
    assert card.data.to_dict() == header

    subset_sources = set(pd.read_parquet(out / "data.parquet")["source"])
    assert subset_sources == {"procedural", "gsm8k", "tatqa"}  # stratified by source
    # GSM8K: MIT; TAT-QA: CC BY 4.0; procedural: the project's own, which pyproject does
    # not declare yet ("unknown" until it does).
    assert sorted(header["license"]) == ["cc-by-4.0", "mit", "unknown"]
    assert header["size_categories"] == ["n<1K"]
    assert "text-generation" in header["task_categories"] and header["language"] == ["en"]
    assert header["configs"] == [{"config_name": "default",
                                  "data_files": [{"split": "train", "path": "data.parquet"}]}]
    assert header["dataset_info"]["splits"] == [
        {"name": "train", "num_examples": 24,
         "num_bytes": (out / "data.parquet").stat().st_size}]

    # The folder loads the way a Hub repo of it would: the card's configs pick data.parquet
    # (not the JSONL copy nor the save_to_disk folder beside it).
    ds = load_dataset(str(out), split="train")
    examples = Store(path).subsets.subset_examples(subset_id)
    assert ds["question_id"] == [e.question_id for e in examples]

    licenses = {row[0]: row[3] for row in _section_rows(card.text, "Sources and licenses")}
    assert licenses == {"procedural": "unknown", "gsm8k": "mit", "tatqa": "cc-by-4.0"}
    counts = {row[0]: int(row[1]) for row in _section_rows(card.text, "Sources and licenses")}
    assert counts == dict(Counter(e.source for e in examples))


def test_card_body_counts_are_the_warehouse_counts(exported):
    path, out, subset_id = exported
    body = DatasetCard.load(out / "README.md").text
    store = Store(path)
    _, runs = store.recent_runs(limit=10)
    assert len(runs) == 3 and all(r[-1] is not None for r in runs)  # each published one

    # Every run of this warehouse published a snapshot of the lineage: the card's rejections
    # are all of the table's, by stage and reason.
    in_card = {(stage, reason): int(n) for stage, reason, n in
               _section_rows(body, "Rejected along the way")}
    in_warehouse = {(stage, reason): n for stage, reason, n in store.rejection_reasons()}
    assert in_card == in_warehouse
    assert sum(in_card.values()) > 0 and ("teacher", "non_arithmetic") in in_card  # TAT-QA
    assert f"The runs above rejected {sum(in_warehouse.values())} item(s)" in body

    lineage = _section_rows(body, "How the snapshot was built")
    assert [row[0] for row in lineage] == ["1", "2", "3"]
    assert sorted(row[1].strip("`") for row in lineage) == sorted(r[0][:8] for r in runs)

    verdicts: dict[str, Counter] = {}
    for run_id, *_ in runs:
        for v in store.quality.run_validations(run_id):
            verdicts.setdefault(v["suite"], Counter())[v["success"]] += 1
    in_card_v = {row[0]: (int(row[1]), int(row[2]), int(row[3]))
                 for row in _section_rows(body, "Quality validations")}
    assert in_card_v == {s: (sum(c.values()), c[True], c[False]) for s, c in verdicts.items()}
    assert "| strategy | stratified |" in body and "| seed | 1 |" in body


def test_size_category_is_one_of_the_hub_buckets():
    resources = Path(datasets.__file__).parent / "utils" / "resources"
    known = json.loads((resources / "size_categories.json").read_text())
    got = {n: size_category(n) for n in (0, 999, 1_000, 54_321, 999_999, 10**7, 10**13)}
    assert got == {0: "n<1K", 999: "n<1K", 1_000: "1K<n<10K", 54_321: "10K<n<100K",
                   999_999: "100K<n<1M", 10**7: "10M<n<100M", 10**13: "n>1T"}
    assert set(got.values()) <= set(known)


def test_procedural_license_follows_the_project_license():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = project.get("license")
    declared = declared.get("text") if isinstance(declared, dict) else declared
    assert (declared.lower() if declared else None) == PROJECT_LICENSE, (
        "pyproject.toml's license changed: set PROJECT_LICENSE in tasks/experiments/card.py")


def test_push_to_hub_offline_is_one_line_and_a_nonzero_exit(exported, tmp_path, monkeypatch):
    path, _, subset_id = exported
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    out = tmp_path / "pushed"
    res = CliRunner().invoke(app, ["export", "--subset", subset_id, "--out", str(out),
                                   "--warehouse", str(path), "--push-to-hub",
                                   "someone/distillery-sft"])
    assert res.exit_code == 1, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Hugging Face Hub" in lines[0], res.stderr
    assert "not reachable" in lines[0] and "HF_HUB_OFFLINE=1" in lines[0]
    assert TOKEN not in res.output and "Traceback" not in res.output
    assert (out / "README.md").is_file()  # exported locally all the same

    bad = CliRunner().invoke(app, ["export", "--subset", subset_id, "--warehouse", str(path),
                                   "--push-to-hub", "not a repo//id"])
    assert bad.exit_code == 2 and "not a Hub repo id" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


class _Refusing(BaseHTTPRequestHandler):
    """A loopback 'Hub' that refuses every request as unauthenticated."""

    seen_auth: list[str] = []

    def _refuse(self) -> None:
        self.seen_auth.append(self.headers.get("authorization", ""))
        body = b'{"error": "Invalid credentials in Authorization header"}'
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _refuse

    def log_message(self, *args: object) -> None:
        pass


def _push(out: Path, endpoint: str) -> subprocess.CompletedProcess:
    # A fresh process: huggingface_hub reads HF_ENDPOINT / HF_HUB_OFFLINE when imported.
    code = ("import sys\nfrom tasks.experiments.hub import push_export, HubError\n"
            "try:\n    push_export(sys.argv[1], 'someone/distillery-sft')\n"
            "except HubError as exc:\n    raise SystemExit(f'error: {exc}')\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "0",
           "HF_ENDPOINT": endpoint, "HF_TOKEN": TOKEN}
    return subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True,
                          env=env, timeout=120)


def test_push_to_a_hub_that_refuses_or_is_down_is_one_line_without_the_token(exported):
    _, out, _ = exported
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        refused = _push(out, endpoint)
    finally:
        server.shutdown()
        server.server_close()
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"error: the Hugging Face Hub ({endpoint}) refused someone/distillery-sft: HTTP 401 "
        f"(log in with `hf auth login` or set HF_TOKEN); {out} was not pushed")
    assert any(TOKEN in auth for auth in _Refusing.seen_auth)  # it was sent, not shown
    assert TOKEN not in refused.stdout + refused.stderr

    down = _push(out, endpoint)  # the same port, now closed
    assert down.returncode == 1
    assert down.stderr.strip() == (f"error: the Hugging Face Hub ({endpoint}) is not "
                                   f"reachable (ConnectError); {out} was not pushed")
