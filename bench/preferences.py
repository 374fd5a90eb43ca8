"""How long the preferences flow takes on a warehouse of N noisy-teacher samples, with the
first wrong step from the teacher's label and from rollouts of the reference policy, and
whether the rollouts find the labelled step.

    .venv/bin/python bench/preferences.py --n 1000      # about two minutes on 2 CPU cores

Writes the `preferences` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _env  # noqa: E402, F401 - offline settings, the project on sys.path

from bench._report import markdown_table, write_section  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="procedural questions")
    ap.add_argument("--error-rate", type=float, default=0.3, help="noisy teacher error rate")
    args = ap.parse_args()

    from flows.preferences import PreferencesConfig, preferences
    from flows.refresh import RefreshConfig, refresh

    d = Path(tempfile.mkdtemp(prefix="bench-prefs-"))
    wh = str(d / "w.duckdb")
    t = time.perf_counter()
    refresh(RefreshConfig(source="procedural", n=args.n, seed=1, teacher="noisy",
                          error_rate=args.error_rate, warehouse=wh))
    refresh_s = time.perf_counter() - t
    rows, notes = [], []
    for source in ("label", "rollout"):
        t = time.perf_counter()
        out = preferences(PreferencesConfig(warehouse=wh, out=str(d / f"ex-{source}"),
                                            step_source=source))
        seconds = time.perf_counter() - t
        c = out.counts
        rows.append([source, c["questions"], c["outcome_pairs"], c["step_pairs"],
                     c["pairs_kept"], out.tables["verifier_labels"], round(seconds, 2),
                     out.stage_seconds.get("step_rollouts", 0.0)])
        if source == "rollout":
            notes.append(f"Rollouts found a first wrong step for {c.get('rollout_found', 0)} "
                         f"wrong samples; it agrees with the noisy teacher's label for "
                         f"{c.get('rollout_agrees_with_label', 0)} and disagrees for "
                         f"{c.get('rollout_disagrees_with_label', 0)}.")
    body = markdown_table(["step source", "questions", "outcome pairs", "step pairs",
                           "pairs kept by GE", "verifier rows", "flow seconds",
                           "rollout seconds"], rows)
    body += (f"\n\nRefresh of {args.n} questions with the noisy teacher (error rate "
             f"{args.error_rate}): {refresh_s:.1f} s (not part of the table). The second run "
             "finds every pair of the first already stored (pair ids are content hashes) and "
             "adds none. " + " ".join(notes))
    print(body)
    write_section("preferences", f"python bench/preferences.py --n {args.n}", body)


if __name__ == "__main__":
    main()
