"""Semantic dedup: connected components (the default) against the opt-in leader grouping.

    .venv/bin/python bench/dedup_grouping.py --procedural 20000 --gsm8k 7473

Same vectors, same blocks (context + numbers), same threshold; per data set: items dropped,
agreement of the two (same drop decision, same representative), and the lowest cosine
between a dropped item and its recorded representative (components chain; leader never
goes below the threshold). On the generator's questions the truth is known: items with the
same `underlying_id` are one problem (paraphrase families), so precision (a dropped item's
representative is the same problem) and recall (of the items that repeat an earlier
problem, the share dropped) are reported too.
"""

from __future__ import annotations

import argparse

import _env  # noqa: E402, F401 - offline settings, the project on sys.path

from bench._report import markdown_table, report  # noqa: E402


def _compare(name, items, vecs, truth, threshold, rows):  # noqa: ANN001
    from tasks.dedup import semantic_dedup

    out = {g: {i: (r, s) for i, r, s in semantic_dedup(items, vecs, threshold=threshold,
                                                       grouping=g)}
           for g in ("components", "leader")}
    ids = [it.item_id for it in items]
    same_drop = sum((out["components"][i][0] != i) == (out["leader"][i][0] != i) for i in ids)
    same_rep = sum(out["components"][i][0] == out["leader"][i][0] for i in ids)
    for g, res in out.items():
        dropped = [(i, r, s) for i, (r, s) in res.items() if r != i]
        row = [name, g, len(items), len(dropped),
               f"{min((s for _, _, s in dropped), default=1.0):.3f}",
               sum(1 for _, _, s in dropped if s < threshold),
               f"{100 * same_drop / len(ids):.2f}%", f"{100 * same_rep / len(ids):.2f}%"]
        if truth:
            good = sum(1 for i, r, _ in dropped if truth[i] == truth[r])
            repeats = len(ids) - len(set(truth.values()))  # one per family may stay
            row += [f"{100 * good / max(len(dropped), 1):.2f}%",
                    f"{100 * good / max(repeats, 1):.2f}%"]
        else:
            row += ["", ""]
        rows.append(row)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--procedural", type=int, default=20_000)
    ap.add_argument("--gsm8k", type=int, default=7473)
    ap.add_argument("--threshold", type=float, default=0.95)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    from tasks.dedup import DedupItem, exact_dedup
    from tasks.embed import embed_texts
    from tasks.sources import load_questions

    rows: list[list[object]] = []
    data = [("procedural", load_questions("procedural", n=args.procedural, seed=7), True),
            ("GSM8K train", load_questions("gsm8k:../shared/data/gsm8k/train.jsonl",
                                           n=args.gsm8k), False)]
    for name, questions, labelled in data:
        unique, _ = exact_dedup(questions)
        items = [DedupItem(q.question_id, q.text, q.context) for q in unique]
        vecs = embed_texts([q.text for q in unique])
        truth = {q.question_id: q.meta.get("underlying_id") for q in unique} if labelled \
            else None
        _compare(name, items, vecs, truth, args.threshold, rows)
    table = markdown_table(["data", "grouping", "items", "dropped", "lowest cosine to rep",
                            f"dropped below {args.threshold}", "same drop decision",
                            "same representative", "precision (families)",
                            "recall (families)"], rows)
    report("dedup grouping", table + "\n\nBlocks: context + numbers (the default guards); "
           f"threshold {args.threshold}; all-MiniLM-L6-v2.", args)


if __name__ == "__main__":
    main()
