"""TAT-QA table header shapes: how many tables of dev and test have each shape, and how the
student's rendering (tasks/tables.py) names a cell of the first table of each.

    python bench/table_shapes.py --data ../shared/data/tatqa

A survey, not a timing: it is what tasks/tables.py was written against, and what its tests
pick real tables from (tests/test_tables.py). A table has several shapes at once (a group row
over years is often a three-row header with a units row too)."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import _env  # noqa: F401  (offline settings and sys.path first)
from _report import markdown_table, report

FILES = ("tatqa_dataset_dev.json", "tatqa_dataset_test_gold.json")


def shapes(rows: list[list[str]]) -> list[str]:
    """The header shapes of one table (cells already whitespace-normalised)."""
    from tasks.tables import is_units, read_table

    layout = read_table(rows)
    n, header = layout.header_rows, rows[:layout.header_rows]
    out = [f"{min(n, 4)}{'+' if n >= 4 else ''} header row{'s' if n > 1 else ''}"]
    if n == 1:
        label = rows[0][0]
        out.append("one row, label cell empty" if not label else
                   "one row, units in the label cell (caption)" if is_units(label) else
                   "one row, label cell names the label column (dropped, as before)")
    else:
        groups = [r for r in header[:-1]
                  if any(c for c in r[1:]) and any(not c for c in r[1:])]
        if any(len([c for c in r[1:] if c]) == 1 for r in groups):
            out.append("group cell over all value columns (caption)")
        if any(len([c for c in r[1:] if c]) > 1 for r in groups):
            out.append("several group cells over column runs (path)")
        if any(r[0] and not any(r[1:]) for r in header[:1]):
            out.append("title row: first cell only (caption)")
        if any(r[0] and any(r[1:]) for r in header):
            out.append("label-column cell beside headings (caption)")
        if any(len({c for c in r[1:] if c}) == 1 and all(is_units(c) for c in r[1:] if c)
               for r in header[1:]):
            out.append("units row in the value columns (caption)")
    names = [c for c in layout.columns[1:] if c]
    if any(not c for c in layout.columns[1:]):
        out.append("a value column with no heading (`column j`)")
    if len(set(names)) < len(names):
        out.append("two columns with the same name (source layout)")
    return out


def example(rows: list[list[str]]) -> str:
    """The first rendered body line that has values."""
    from tasks.tables import layout_lines, read_table

    layout = read_table(rows)
    lines = layout_lines(layout)[len(layout.captions):]
    line = next((x for x in lines if " = " in x), lines[0] if lines else "")
    caption = " / ".join(layout.captions)
    text = (f"[{caption}] " if caption else "") + line
    return text if len(text) <= 160 else text[:157] + "..."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/tatqa")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()

    from tasks.tables import read_table

    counts: dict[str, Counter] = {f: Counter() for f in FILES}
    first: dict[str, tuple[str, str]] = {}
    total = Counter()
    unnamed = Counter()  # value cells named `column j`: (one-row reading, now)
    for name in FILES:
        for block in json.loads((Path(args.data) / name).read_text()):
            rows = [[" ".join(str(c).split()) for c in r] for r in block["table"]["table"]]
            total[name] += 1
            unnamed["before"] += sum(1 for r in rows[1:] for j, c in enumerate(r[1:], 1)
                                     if c and not rows[0][j])
            layout = read_table(rows)
            unnamed["now"] += sum(1 for r in layout.body for j, c in enumerate(r[1:], 1)
                                  if c and not layout.columns[j])
            for shape in shapes(rows):
                counts[name][shape] += 1
                first.setdefault(shape, (block["table"]["uid"], example(rows)))
    order = sorted(first, key=lambda s: (not s[0].isdigit(), s[0].isdigit() and s, s))
    table = [[s, counts[FILES[0]][s], counts[FILES[1]][s], f"`{first[s][0]}`",
              f"`{first[s][1]}`"] for s in order]
    body = (f"{total[FILES[0]]} dev and {total[FILES[1]]} test tables. A table counts under "
            "every shape it has; `[...]` are the caption lines said once before the rows.\n\n"
            + markdown_table(["shape", "dev", "test", "first table (uid)", "rendered as"],
                             table)
            + f"\n\nValue cells the student saw as `column j` (no year, no group): "
              f"{unnamed['before']:,} with the one-row reading (markdown header only), "
              f"{unnamed['now']:,} now (header rows found again, paths joined).")
    report("TAT-QA header shapes", body, args)


if __name__ == "__main__":
    main()
