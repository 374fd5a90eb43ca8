"""Markdown tables as the student reads them: one line per table row, every value named by its
column's full header path.

Why: a 135M student copies numbers from the wrong cell of a markdown table (it has to count
pipes across lines), so tables reach it one line per row, `Revenue: 2019 = 1,234; 2018 = 987`
(BENCHMARKS.md, "table format"). Real tables (TAT-QA) stack two or three header rows: a group
over year columns (`| | Domestic | | International | |` over `| | 2019 | 2018 | 2019 | 2018 |`),
a date line, a units line (`($ in millions)`). Markdown keeps only the first as its header, the
others arrive as body rows, so a one-row reading names a cell `column 2` and loses its year.
Here the header block is found again and each value column gets the path of every header row
above it: `Discount rate: Domestic September 30, 2019 = 4.00%; Domestic September 30, 2018 =
3.75%; ...`.

Reading the header (pure functions of the cells; the context string is all a prompt has):
- header block: the markdown header row, then every following row that has a non-empty value
  cell and no cell that reads as a number (years and dates are headings, not values). A row
  with a label and empty value cells is a section line (`Assets:`), not a header.
- a heading over every value column (`Years Ended September 30,`) is a caption line too: it
  tells no column from another, and without it TAT-QA rows read like procedural ones
  (`Revenue: 2019 = ...`), the shape the student learnt first.
- units rows: a header row whose value cells are all units (`£m`, `$ million`, `(In
  thousands)`) and all the same becomes one caption line, said once instead of in every name.
- the label column's header cells (`(In millions)`, `For the year ended December 31:`) become
  caption lines in a multi-row header. In a single header row only a units-like one does
  (`$ million`); any other (`Line item`) is dropped as it always was, so one-row tables,
  procedural ones included, render exactly as before.
- spans: a header cell above empty cells of its row covers a run of columns. The bottom
  heading row names its own column only; a row above it with one cell covers every value
  column; with several, each covers up to where the next starts, moved left to where the row
  below restarts (`2019 | 2018 | 2019`: the second group starts at the second 2019) or
  changes from year headings to others (`2019 | 2018 | $ | %` under `December 31, | Change`),
  because TAT-QA centres group cells over their columns as often as it left-aligns them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_SEPARATOR = re.compile(r"\s*\|?[\s:|-]+\|?\s*")
_PIPE = re.compile(r"(?<!\\)\|")
# A value cell: an optionally signed/bracketed/currency-marked number, maybe with a % or a
# scale suffix. `2019` alone is a heading (years head columns), `2 0 1 8` too.
_NUMBER = re.compile(r"[(\-\u2212\u2013$€£¥%\s]*(?:[A-Z]{0,3}\$)?\s*[\d,. ]*\d[\d,.]*\s*"
                     r"(?:%|\)|m|bn|million|billion)*\s*\)?", re.I)
# A cell that stands for "no value" in a value column: `—`, `$ -`, `n/a`, `None`, `NM`.
_DASHES = "-\u2012-\u2015\u2212"
_PLACEHOLDER = re.compile(rf"[$€£¥%\s]*(?:[{_DASHES}][{_DASHES} ]*|n/?a|none|nil|n\.?m\.?)[\s%]*",
                          re.I)
_YEAR = re.compile(r"(?:19|20)\d\d")
# A year heading, spaced out (`2 0 1 8`) or with a footnote mark (`2018 1`, `2019 (1)`).
_YEAR_HEADING = re.compile(r"(?:[12]\s?[09]\s?\d\s?\d)(?:\s*\(?\d{1,2}\)?)?")
_UNIT_WORD = re.compile(r"thousand|million|billion|\bmil\b|\bm\b|\bbn\b|'000|’000|\b000\b",
                        re.I)
_CURRENCY = re.compile(r"[$€£¥]|\b(?:usd|eur|gbp|rmb|dollars?|euros?)\b", re.I)


@dataclass(frozen=True)
class TableLayout:
    """A table read for the student: caption lines, each value column's header path (index 0,
    the label column, is unused), the body rows (label first), and the heading rows that make
    the paths, each spread over its columns (`levels[-1][j]`: column j's bottom heading)."""

    captions: tuple[str, ...]
    columns: tuple[str, ...]
    body: tuple[tuple[str, ...], ...]
    header_rows: int
    levels: tuple[tuple[str, ...], ...] = ()


def split_cells(line: str) -> list[str]:
    """The cells of one markdown table line (an escaped `\\|` stays inside its cell)."""
    return [c.strip().replace("\\|", "|") for c in _PIPE.split(line.strip().strip("|"))]


def is_number(cell: str) -> bool:
    """A cell that holds a value: `$ 1,452.4`, `(3.1)`, `4.00%`, `-34.8`; not a year
    heading (`2019`, `2018 1`)."""
    text = cell.strip()
    if not text or not any(ch.isdigit() for ch in text):
        return False
    if _YEAR_HEADING.fullmatch(text):
        return False
    return bool(_NUMBER.fullmatch(text))


def is_value(cell: str) -> bool:
    """A cell of a body row: a number or a stand-in for a missing one (`—`, `n/a`)."""
    return is_number(cell) or bool(_PLACEHOLDER.fullmatch(cell.strip()))


def is_units(cell: str) -> bool:
    """A cell that only says the unit of the numbers: `£m`, `$ million`, `(In thousands)`,
    `US$000`, `$`, `(in millions, except per share data)`."""
    text = cell.strip()
    if not text or len(text) > 60:
        return False
    if any(ch.isdigit() for ch in text.replace("000", "")):
        return False
    return bool(_UNIT_WORD.search(text) or _CURRENCY.search(text))


def _single_year(cell: str) -> bool:
    # Heads a year's column (`2019`, `December 31, 2019`, `2019 €m`); `2019 over 2018` does not.
    return len(_YEAR.findall(cell)) == 1


def count_header_rows(rows: Sequence[Sequence[str]]) -> int:
    """How many leading rows are header rows (at least 1, the markdown header; never all rows
    of a table with a body)."""
    n = 1
    while n < len(rows):
        values = [c for c in rows[n][1:] if c]
        if not values or any(is_value(c) for c in values):
            break
        n += 1
    if n == len(rows) and len(rows) > 1:  # a table of words only: its first row heads it
        return 1
    return n


def _spans(cells: Sequence[str], below: Sequence[str] | None, width: int) -> list[str]:
    """Each value column's text from one header row: its own cell for the bottom row
    (`below` None) or a row with no gaps; a spread group cell otherwise (module docstring)."""
    own = [cells[j] if j < len(cells) else "" for j in range(width)]
    at = [j for j in range(1, width) if own[j]]
    if below is None or not at:
        return own
    if len(at) == 1:
        return [""] + [own[at[0]]] * (width - 1)
    starts = [1]
    for left, right in zip(at, at[1:], strict=False):
        start = right
        candidates = range(left + 1, right + 1)
        first = below[starts[-1]]
        restart = [b for b in candidates if first and below[b] == first]
        change = [b for b in candidates
                  if below[b] and below[b - 1] and _single_year(below[b]) !=
                  _single_year(below[b - 1])]
        start = (restart or change or [right])[0]
        starts.append(max(start, starts[-1] + 1))
    out = [""] * width
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else width
        for j in range(start, end):
            out[j] = own[at[k]]
    return out


def _join(parts: Sequence[str]) -> str:
    path: list[str] = []
    for p in parts:
        p = " ".join(p.split())
        if p and (not path or path[-1] != p):  # a group repeated in every column row
            path.append(p)
    return " ".join(path)


def _clean(cell: str) -> str:
    return " ".join(cell.split())


def read_table(rows: Sequence[Sequence[str]]) -> TableLayout:
    """The header block, captions and column paths of a table given as rows of cells."""
    width = max((len(r) for r in rows), default=1)
    rows = [list(r) + [""] * (width - len(r)) for r in rows]
    n = count_header_rows(rows)
    header, body = rows[:n], rows[n:]
    captions: list[tuple[int, str]] = []  # (header row, text): said once, in row order
    headings: list[tuple[int, list[str]]] = []  # header rows that name columns, top down
    for i, row in enumerate(header):
        label, values = row[0], [c for c in row[1:] if c]
        if label and (n > 1 or is_units(label)):
            captions.append((i, _clean(label)))
        if n > 1 and values and all(is_units(c) for c in values) and len(set(values)) == 1:
            captions.append((i, _clean(values[0])))
        else:
            headings.append((i, row))
    named: list[tuple[int, list[str]]] = []
    for k, (i, row) in enumerate(headings):
        below = headings[k + 1][1] if k + 1 < len(headings) else None
        named.append((i, _spans(row, below, width)))
    # A heading over every value column (`Years Ended September 30,`) tells no column from
    # another: said once as a caption, the names stay `2019`, like a one-row header's.
    if n > 1:
        shared = [(i, r) for i, r in named if all(r[1:]) and len(set(r[1:])) == 1]
        if len(shared) < len(named):
            captions += [(i, _clean(r[1])) for i, r in shared]
            named = [(i, r) for i, r in named if (i, r) not in shared]
    columns = [""] + [_join([r[j] for _, r in named]) for j in range(1, width)]
    captions.sort(key=lambda c: c[0])
    return TableLayout(tuple(t for _, t in captions), tuple(columns),
                       tuple(tuple(r) for r in body), n,
                       tuple(tuple(_clean(c) for c in r) for _, r in named))


def layout_lines(layout: TableLayout) -> list[str]:
    """Caption lines, then one line per body row: `label: path = value; ...` (empty values
    left out; a row without values is its label alone, a section line)."""
    out = list(layout.captions)
    for label, *values in layout.body:
        pairs = [f"{layout.columns[j] or f'column {j}'} = {v}"
                 for j, v in enumerate(values, start=1) if v]
        out.append(f"{label}: {'; '.join(pairs)}" if pairs else label)
    return out


def _is_table_start(lines: Sequence[str], i: int) -> bool:
    return (lines[i].lstrip().startswith("|") and i + 1 < len(lines)
            and "-" in lines[i + 1] and bool(_SEPARATOR.fullmatch(lines[i + 1])))


def _blocks(context: str) -> list[str | list[list[str]]]:
    """`context` as its lines, each markdown table replaced by its rows of cells (header row
    first, no separator)."""
    lines = context.split("\n")
    out: list[str | list[list[str]]] = []
    i = 0
    while i < len(lines):
        if _is_table_start(lines, i):
            rows = [split_cells(lines[i])]
            i += 2
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                rows.append(split_cells(lines[i]))
                i += 1
            out.append(rows)
            continue
        out.append(lines[i])
        i += 1
    return out


def markdown_tables(context: str) -> list[list[list[str]]]:
    """Each markdown table in `context` as rows of cells (header row first, no separator)."""
    return [b for b in _blocks(context) if isinstance(b, list)]


def tables_as_rows(context: str) -> str:
    """Markdown tables in `context` rewritten one line per table row, each value named by its
    column's full header path; other lines unchanged."""
    out: list[str] = []
    for block in _blocks(context):
        if isinstance(block, list):
            out.extend(layout_lines(read_table(block)))
        else:
            out.append(block)
    return "\n".join(out)
