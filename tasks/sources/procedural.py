"""Built-in, offline generator of financial-table numerical questions (TAT-QA / FinQA style).

Every item is a pure function of (seed, split, index): tables come from a per-block RNG and
questions from a per-item RNG, so a longer run starts with exactly the items of a shorter one.
The only look-back is the paraphrase/duplicate mechanism, which copies from items already built
in the same call (indices below i) and is therefore prefix-stable too.

Gold answers are computed here in Python with the same operands in the same order as the
gold program, so the program (never executed here: programs are untrusted elsewhere) yields
bit-identical floats.
"""

from __future__ import annotations

import random
import re
from array import array
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from tasks.experiments.abstention import ABSTAIN, ABSTAIN_PROGRAM
from tasks.types import Question, stable_hash

SPLITS = ("train", "heldout")
QUESTIONS_PER_TABLE = 4  # TAT-QA asks several questions per table; dedup must tell them apart
PARAPHRASE_RATE = 0.10
DUPLICATE_RATE = 0.02

# (key, table label, name used in questions). Order is the table's row order.
ROWS: tuple[tuple[str, str, str], ...] = (
    ("revenue", "Revenue", "revenue"),
    ("cost_of_sales", "Cost of sales", "cost of sales"),
    ("gross_profit", "Gross profit", "gross profit"),
    ("research_and_development", "Research and development", "research and development expenses"),
    ("sales_and_marketing", "Sales and marketing", "sales and marketing expenses"),
    ("general_and_administrative", "General and administrative",
     "general and administrative expenses"),
    ("operating_income", "Operating income", "operating income"),
    ("net_income", "Net income", "net income"),
    ("cash", "Cash and cash equivalents", "cash and cash equivalents"),
    ("accounts_receivable", "Accounts receivable", "accounts receivable"),
    ("inventories", "Inventories", "inventories"),
    ("total_assets", "Total assets", "total assets"),
    ("total_liabilities", "Total liabilities", "total liabilities"),
    ("total_equity", "Total equity", "total equity"),
)
_LABEL = {k: label for k, label, _ in ROWS}
_NAME = {k: name for k, _, name in ROWS}
_ORDER = {k: n for n, (k, _, _) in enumerate(ROWS)}
_INCOME = {k for k, _, _ in ROWS[:8]}
MARGIN_ITEMS = ("cost_of_sales", "gross_profit", "research_and_development",
                "sales_and_marketing", "general_and_administrative", "operating_income",
                "net_income")
# Fixed (numerator, denominator) pairs: never both orders, so two ratio questions on one
# table never differ only by word order (an embedding cannot tell those apart).
RATIO_PAIRS = (("total_liabilities", "total_equity"), ("total_liabilities", "total_assets"),
               ("net_income", "total_equity"), ("cash", "total_liabilities"),
               ("revenue", "total_assets"), ("total_assets", "total_equity"),
               ("accounts_receivable", "inventories"))
# share_of_total asks about a named total whose members the context defines. Listing the
# members in the question instead makes two questions that differ only in the target item
# near-identical bags of words (cosine ~0.98), so dedup would merge them.
SHARE_GROUPS = (("operating expenses", ("research_and_development", "sales_and_marketing",
                                        "general_and_administrative")),
                ("current assets", ("cash", "accounts_receivable", "inventories")))
# (unit text, decimals shown): millions get one decimal like real filings.
UNITS = (("in thousands", 0), ("$ in thousands", 0), ("in thousands of USD", 0),
         ("in millions", 1), ("$ in millions", 1))
_NAME_A = ("Alder", "Birch", "Cobalt", "Drummond", "Ember", "Fairhaven", "Granite", "Halcyon",
           "Ironwood", "Juniper", "Kestrel", "Larkspur", "Meridian", "Northgate", "Oakridge",
           "Pinecrest", "Quarry", "Redwater", "Silverline", "Tidewater", "Umber", "Vantage",
           "Westbrook", "Yarrow", "Zephyr")
_NAME_B = ("Analytics", "Biotech", "Foods", "Logistics", "Materials", "Media", "Motors",
           "Networks", "Pharma", "Retail", "Robotics", "Software", "Systems", "Textiles")
_NAME_C = ("Inc.", "Corp.", "Holdings", "Group", "plc", "Ltd.")
_SENTENCES = ("The company completed an acquisition in {y}.",
              "Amounts for {y} were restated for discontinued operations.",
              "The board approved a share repurchase program in {y}.",
              "The company changed its segment reporting in {y}.")

# kind -> (train phrasings, heldout-only phrasings). Phrasings of one kind are close
# paraphrases on purpose: semantic dedup (MiniLM, cosine 0.95) must merge them while keeping
# apart questions that differ in kind or line item. MiniLM barely weighs a single word like
# "percentage", so each kind carries its own key words ("absolute change", "percentage
# change", "percentage points ... share of revenue") in every phrasing. ("Net change", not
# "absolute change": the latter reads as |change| and the answer is signed.)
PHRASINGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "change": (
        ("What was the net change in {item} from {y1} to {y2}?",
         "What was the net change in {item} between {y1} and {y2}?",
         "What net change in {item} occurred from {y1} to {y2}?",
         "What was the net change of {item} from {y1} to {y2}?"),
        ("From {y1} to {y2}, what was the net change in {item}?",
         "Between {y1} and {y2}, what was the net change in {item}?")),
    "percent_change": (
        ("What was the percentage change in {item} from {y1} to {y2}?",
         "What was the percentage change in {item} between {y1} and {y2}?",
         "What was the percent change in {item} from {y1} to {y2}?",
         "What was the percentage change of {item} from {y1} to {y2}?"),
        ("From {y1} to {y2}, what was the percentage change in {item}?",
         "Between {y1} and {y2}, what was the percentage change in {item}?")),
    "ratio": (
        ("What was the ratio of {a} to {b} in {y}?",
         "What was the ratio of {a} to {b} for {y}?",
         "In {y}, what was the ratio of {a} to {b}?",
         "What was the ratio between {a} and {b} in {y}?"),
        ("For {y}, what was the ratio of {a} to {b}?",
         "For {y}, what was the ratio between {a} and {b}?")),
    "margin": (
        ("What was {item} as a percentage of revenue in {y}?",
         "What was {item} as a percent of revenue in {y}?",
         "In {y}, what was {item} as a percentage of revenue?",
         "What was {item} as a percentage of revenue for {y}?"),
        ("For {y}, what was {item} as a percentage of revenue?",
         "For {y}, what was {item} as a percent of revenue?")),
    "average": (
        ("What was the average {item} from {y1} to {y2}?",
         "What was the average {item} between {y1} and {y2}?",
         "What was the average of {item} from {y1} to {y2}?",
         "What was the average of {item} between {y1} and {y2}?"),
        ("From {y1} to {y2}, what was the average {item}?",
         "Between {y1} and {y2}, what was the average {item}?")),
    "share_of_total": (
        ("What percentage of total {group} in {y} was {item}?",
         "What percent of total {group} in {y} was {item}?",
         "In {y}, what percentage of total {group} was {item}?",
         "What percentage of total {group} was {item} in {y}?"),
        ("For {y}, what percentage of total {group} was {item}?",
         "For {y}, what percent of total {group} was {item}?")),
    "cagr": (
        ("What was the compound annual growth rate of {item} from {y1} to {y2}?",
         "What was the compound annual growth rate of {item} between {y1} and {y2}?",
         "What was the compound annual growth rate in {item} from {y1} to {y2}?",
         "At what compound annual growth rate did {item} grow from {y1} to {y2}?"),
        ("From {y1} to {y2}, what was the compound annual growth rate of {item}?",
         "Between {y1} and {y2}, what was the compound annual growth rate of {item}?")),
    "difference_of_changes": (
        ("What was the change in {a} minus the change in {b} from {y1} to {y2}?",
         "What was the change in {a} minus the change in {b} between {y1} and {y2}?",
         "From {y1} to {y2}, what was the change in {a} minus the change in {b}?",
         "What was the change in {a} minus that in {b} from {y1} to {y2}?"),
        ("Between {y1} and {y2}, what was the change in {a} minus the change in {b}?",
         "Between {y1} and {y2}, what was the change in {a} minus that in {b}?")),
    "change_in_margin": (
        ("By how many percentage points did {item} as a share of revenue change "
         "from {y1} to {y2}?",
         "By how many percentage points did {item} as a share of revenue change "
         "between {y1} and {y2}?",
         "How many percentage points did {item} as a share of revenue change "
         "from {y1} to {y2}?",
         "By how many percentage points did the share of revenue of {item} change "
         "from {y1} to {y2}?"),
        ("From {y1} to {y2}, by how many percentage points did {item} as a share of revenue "
         "change?",
         "Between {y1} and {y2}, by how many percentage points did {item} as a share of "
         "revenue change?")),
}
KINDS = tuple(PHRASINGS)


@dataclass(frozen=True)
class _Table:
    company: str
    unit: str
    years: tuple[int, ...]  # column order as shown
    values: dict[str, dict[int, float | int]]  # row key -> year -> value (row order = ROWS)
    group: tuple[str, tuple[str, ...]] | None  # named total defined in the context
    context: str


@dataclass(frozen=True)
class _Spec:
    """One underlying question: a table, a kind and its arguments."""

    table: _Table
    kind: str
    args: tuple[tuple[str, object], ...]
    value: float | int
    program: str
    ops: int
    underlying_id: str


def _fmt(v: float | int, decimals: int) -> str:
    return f"{v:,.{decimals}f}"


def _make_table(rng: random.Random) -> _Table:
    company = f"{rng.choice(_NAME_A)} {rng.choice(_NAME_B)} {rng.choice(_NAME_C)}"
    unit, decimals = rng.choice(UNITS)
    first = rng.randint(2012, 2022)
    years = tuple(range(first, first + rng.randint(2, 4)))
    # Work in integer units of the last shown digit so derived rows (gross profit, operating
    # income, equity) add up exactly as printed.
    scale = 10 ** decimals
    rev0 = rng.randint(20_000, 2_000_000) if decimals == 0 else rng.randint(500, 200_000)
    growth = rng.uniform(-0.10, 0.25)
    share = {"cost_of_sales": rng.uniform(0.30, 0.55),
             "research_and_development": rng.uniform(0.03, 0.12),
             "sales_and_marketing": rng.uniform(0.05, 0.15),
             "general_and_administrative": rng.uniform(0.03, 0.08)}
    asset_turn, lev = rng.uniform(0.8, 2.0), rng.uniform(0.3, 0.7)
    cash_s, ar_s, inv_s = rng.uniform(0.05, 0.2), rng.uniform(0.08, 0.18), rng.uniform(0.05, 0.15)
    tax_keep = rng.uniform(0.6, 0.85)
    ints: dict[str, dict[int, int]] = {k: {} for k, _, _ in ROWS}

    def jit(x: float) -> int:  # year-to-year noise; never 0 so every ratio is defined
        return max(1, round(x * rng.uniform(0.95, 1.05)))

    for n, y in enumerate(years):
        rev = max(10, round(rev0 * (1 + growth) ** n * rng.uniform(0.97, 1.03)))
        parts = {k: jit(rev * s) for k, s in share.items()}
        op = rev - sum(parts.values())  # shares sum below 0.95 even jittered: positive
        assets = jit(rev * asset_turn)
        liabilities = max(1, min(assets - 1, jit(assets * lev)))
        row = {"revenue": rev, **parts, "gross_profit": rev - parts["cost_of_sales"],
               "operating_income": max(1, op), "net_income": jit(max(1, op) * tax_keep),
               "cash": jit(assets * cash_s), "accounts_receivable": jit(rev * ar_s),
               "inventories": jit(rev * inv_s), "total_assets": assets,
               "total_liabilities": liabilities, "total_equity": assets - liabilities}
        for k, v in row.items():
            ints[k][y] = v
    others = [k for k, _, _ in ROWS[1:]]
    chosen = {"revenue", *rng.sample(others, rng.randint(3, 7))}
    keys = [k for k, _, _ in ROWS if k in chosen]
    values = {k: {y: (ints[k][y] if decimals == 0 else ints[k][y] / scale) for y in years}
              for k in keys}
    shown = years if rng.random() < 0.7 else tuple(reversed(years))
    title = ("Consolidated statements of operations" if chosen <= _INCOME
             else "Selected financial data")
    lines = [f"{company}: {title} ({unit})",
             "| Line item | " + " | ".join(str(y) for y in shown) + " |",
             "|---" * (len(shown) + 1) + "|"]
    lines += ["| " + _LABEL[k] + " | " + " | ".join(_fmt(values[k][y], decimals) for y in shown)
              + " |" for k in keys]
    groups = [(name, tuple(k for k in members if k in chosen)) for name, members in SHARE_GROUPS]
    groups = [g for g in groups if len(g[1]) >= 2]
    group = rng.choice(groups) if groups else None
    if group:
        lines.append(f"{group[0].capitalize()} consist of {_join([_NAME[k] for k in group[1]])}.")
    if rng.random() < 0.5:
        lines.append(rng.choice(_SENTENCES).format(y=rng.choice(years)))
    return _Table(company, unit, shown, values, group, "\n".join(lines))


def _join(names: list[str]) -> str:
    return ", ".join(names[:-1]) + " and " + names[-1]


def _var(key: str, year: int) -> str:
    return f"{key}_{year}"


def _spec(table: _Table, rng: random.Random) -> _Spec | None:
    """Draw one question on `table`; None when the drawn kind does not fit the table."""
    kind = rng.choice(KINDS)
    keys = list(table.values)
    years = sorted(table.years)
    val = table.values
    used: list[tuple[str, int]] = []  # (row, year) operands, in first-use order

    def v(key: str, year: int) -> float | int:
        if (key, year) not in used:
            used.append((key, year))
        return val[key][year]

    y1, y2 = sorted(rng.sample(years, 2))
    args: dict[str, object]
    if kind in ("change", "percent_change"):
        item = rng.choice(keys)
        a, b = v(item, y1), v(item, y2)
        value, ops = (b - a, 1) if kind == "change" else ((b - a) / a * 100, 3)
        expr = (f"{_var(item, y2)} - {_var(item, y1)}" if kind == "change" else
                f"({_var(item, y2)} - {_var(item, y1)}) / {_var(item, y1)} * 100")
        args = {"item": item, "y1": y1, "y2": y2}
    elif kind == "cagr":
        if len(years) < 3:
            return None
        y1, y2 = rng.choice([(a, b) for a in years for b in years if b - a >= 2])
        item, n = rng.choice(keys), y2 - y1
        value = ((v(item, y2) / v(item, y1)) ** (1 / n) - 1) * 100
        expr, ops = f"(({_var(item, y2)} / {_var(item, y1)}) ** (1 / {n}) - 1) * 100", 5
        args = {"item": item, "y1": y1, "y2": y2}
    elif kind == "average":
        item = rng.choice(keys)
        span = [y for y in years if y1 <= y <= y2]
        total = v(item, span[0])
        for y in span[1:]:
            total = total + v(item, y)  # left to right, like the program's `a + b + c`
        value, ops = total / len(span), len(span)
        expr = "(" + " + ".join(_var(item, y) for y in span) + f") / {len(span)}"
        args = {"item": item, "y1": y1, "y2": y2}
    elif kind in ("margin", "change_in_margin"):
        items = [k for k in keys if k in MARGIN_ITEMS]
        if not items:
            return None
        item = rng.choice(items)
        if kind == "margin":
            value, ops = v(item, y2) / v("revenue", y2) * 100, 2
            expr = f"{_var(item, y2)} / {_var('revenue', y2)} * 100"
            args = {"item": item, "y": y2}
        else:
            value = (v(item, y2) / v("revenue", y2) * 100
                     - v(item, y1) / v("revenue", y1) * 100)
            expr = (f"{_var(item, y2)} / {_var('revenue', y2)} * 100"
                    f" - {_var(item, y1)} / {_var('revenue', y1)} * 100")
            ops, args = 5, {"item": item, "y1": y1, "y2": y2}
    elif kind == "ratio":
        pairs = [p for p in RATIO_PAIRS if p[0] in val and p[1] in val]
        if not pairs:
            return None
        a_key, b_key = rng.choice(pairs)
        value, ops = v(a_key, y2) / v(b_key, y2), 1
        expr = f"{_var(a_key, y2)} / {_var(b_key, y2)}"
        args = {"a": a_key, "b": b_key, "y": y2}
    elif kind == "share_of_total":
        if table.group is None:
            return None
        group = table.group[1]
        item = rng.choice(group)
        total = v(group[0], y2)
        for k in group[1:]:
            total = total + v(k, y2)
        value, ops = v(item, y2) / total * 100, len(group) + 1
        expr = (f"{_var(item, y2)} / (" + " + ".join(_var(k, y2) for k in group) + ") * 100")
        args = {"item": item, "group": table.group[0], "y": y2}
    else:  # difference_of_changes
        a_key, b_key = sorted(rng.sample(keys, 2), key=_ORDER.__getitem__)  # table order
        value = (v(a_key, y2) - v(a_key, y1)) - (v(b_key, y2) - v(b_key, y1))
        expr = (f"({_var(a_key, y2)} - {_var(a_key, y1)})"
                f" - ({_var(b_key, y2)} - {_var(b_key, y1)})")
        ops, args = 3, {"a": a_key, "b": b_key, "y1": y1, "y2": y2}
    program = "\n".join([f"{_var(k, y)} = {val[k][y]!r}" for k, y in used] + [f"ans = {expr}"])
    frozen = tuple(sorted(args.items()))
    uid = stable_hash("procedural", table.context, kind, frozen)
    return _Spec(table, kind, frozen, value, program, ops, uid)


def _text(spec: _Spec, phrasing: int) -> str:
    train, heldout = PHRASINGS[spec.kind]
    args = dict(spec.args)
    fields = {k: (_NAME[v] if k in ("item", "a", "b") else v) for k, v in args.items()}
    if "y" in args:
        fields["y1"] = fields["y2"] = args["y"]
    return (train + heldout)[phrasing].format(**fields)


def _phrasing_ids(kind: str, split: str) -> list[int]:
    train, heldout = PHRASINGS[kind]
    if split == "train":
        return list(range(len(train)))
    return list(range(len(train), len(train) + len(heldout)))


def _question(spec: _Spec, phrasing: int, split: str, seed: int, i: int, origin: str
              ) -> Question:
    t = spec.table
    meta = {
        "kind": spec.kind, "phrasing": phrasing, "company": t.company, "years": list(t.years),
        "unit": t.unit, "underlying_id": spec.underlying_id, "origin": origin,
        "args": {k: (list(v) if isinstance(v, tuple) else v) for k, v in spec.args},
        "table": {"columns": list(t.years),
                  "rows": {_LABEL[k]: [row[y] for y in t.years] for k, row in t.values.items()}},
    }
    return Question(
        text=_text(spec, phrasing), source="procedural", context=t.context,
        gold_answer=repr(round(spec.value, 6)), gold_program=spec.program,
        difficulty=spec.ops, source_id=f"procedural:{split}:{seed}:{i}", meta=meta,
    )


# Rows another row's identity gives back: a removed row is only missing when some other
# member of each of its identities is absent too (else it can still be computed).
_IDENTITIES = (("gross_profit", "revenue", "cost_of_sales"),
               ("total_equity", "total_assets", "total_liabilities"),
               ("operating_income", "revenue", "cost_of_sales", "research_and_development",
                "sales_and_marketing", "general_and_administrative"))
_OPERAND = re.compile(r"^([a-z_]+)_(\d{4}) = ", re.M)


def _removable(key: str, present: set[str]) -> bool:
    """Whether the table without `key` no longer gives it, through any chain of identities
    (cost of sales from gross profit, then an expense from operating income)."""
    known = present - {key}
    while True:
        found = {m for ident in _IDENTITIES if len(missing := set(ident) - known) == 1
                 for m in missing}
        if not found:
            return key not in known
        known |= found


def _unanswerable(spec: _Spec, q: Question, rng: random.Random) -> Question | None:
    """An unanswerable variant of `spec`'s question, target ABSTAIN, the reason in meta: it
    asks about a year or a line item the table does not have, or it stays the same and a
    line item it needs is removed from the text. None when none of these applies."""
    t, args = spec.table, dict(spec.args)
    years = sorted(t.years)
    options: list[tuple[str, object, str]] = []  # (arg or "-row", new value, reason)
    for key in ("y", "y1", "y2"):
        if key in args:
            y = years[0] - 1 if key == "y1" else years[-1] + 1
            options.append((key, y, f"year {y} is not in the table"))
    absent = [k for k, _, _ in ROWS if k not in t.values]
    for key in ("item", "a", "b"):
        if key in args and absent:
            k = rng.choice(absent)
            options.append((key, k, f"line item {_LABEL[k]!r} is not in the table"))
    used = dict.fromkeys(m.group(1) for m in _OPERAND.finditer(spec.program))
    for k in [k for k in used if k in t.values and _removable(k, set(t.values))][:1]:
        options.append(("-row", k, f"line item {_LABEL[k]!r} is not in the table"))
    if not options:
        return None
    key, value, reason = rng.choice(options)
    table = q.meta["table"]
    if key == "-row":  # the same question over a table without the row it needs
        label = _LABEL[str(value)]
        context = "\n".join(line for line in q.context.splitlines()
                            if not line.startswith(f"| {label} |"))
        text, kind = q.text, "removed_fact"
        table = {**table, "rows": {k: v for k, v in table["rows"].items() if k != label}}
    else:
        args[key] = value
        variant = _Spec(t, spec.kind, tuple(sorted(args.items())), spec.value,
                        ABSTAIN_PROGRAM, spec.ops,
                        stable_hash("procedural-unanswerable", spec.underlying_id, key))
        text, context = _text(variant, q.meta["phrasing"]), q.context
        kind = "missing_year" if key.startswith("y") else "missing_line_item"
    meta = {**q.meta, "unanswerable": True, "abstain_reason": reason,
            "unanswerable_kind": kind, "answerable_text": q.text, "table": table,
            "args": {k: (list(v) if isinstance(v, tuple) else v) for k, v in args.items()}}
    return Question(text=text, source=q.source, context=context, gold_answer=ABSTAIN,
                    gold_program=ABSTAIN_PROGRAM, difficulty=q.difficulty,
                    source_id=q.source_id, meta=meta)


def parse_split(split: str) -> tuple[str, float]:
    """'heldout' -> ('heldout', 0.0); 'train:unanswerable=0.2' -> ('train', 0.2): the
    `--source procedural:SPLIT[:unanswerable=RATE]` spelling."""
    name, _, opts = split.partition(":")
    rate = 0.0
    for opt in filter(None, opts.split(",")):
        key, _, value = opt.partition("=")
        try:
            if key.strip() != "unanswerable":
                raise ValueError
            rate = float(value)
        except ValueError:
            raise ValueError(f"procedural option {opt!r}: only unanswerable=RATE") from None
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"procedural option {opt!r}: a rate in [0, 1]")
    return name or "train", rate


def generate_questions(n: int, seed: int = 0, split: str = "train",
                       unanswerable: float | None = None) -> list[Question]:
    """`n` questions, deterministic and prefix-stable in (seed, split).

    About PARAPHRASE_RATE of items re-ask an earlier item's question in another phrasing and
    DUPLICATE_RATE repeat an earlier item verbatim, so dedup has realistic work to do.
    `unanswerable` (or `split` = 'train:unanswerable=0.2'): about that share of the items
    ask for a year or line item the table does not have, with the target ABSTAIN ("I don't
    know") and the reason in `meta["abstain_reason"]`; the others are the same items as
    without it (a separate seeded draw decides).
    """
    return [q for batch in question_batches(n, seed, split, unanswerable) for q in batch]


def question_batches(n: int, seed: int = 0, split: str = "train",
                     unanswerable: float | None = None, batch_size: int = 50_000
                     ) -> Iterator[list[Question]]:
    """The items of `generate_questions`, in order, `batch_size` at a time: memory stays
    at a few bytes per item drawn so far (see `_Stream`), not a Question per item."""
    split, rate = parse_split(split)
    rate = rate if unanswerable is None else unanswerable
    stream = _Stream(seed, split)
    batch: list[Question] = []
    for i in range(n):
        q, spec = stream.item(i)
        if rate > 0:
            rng = random.Random(f"procedural:{split}:{seed}:unanswerable:{i}")
            if rng.random() < rate:
                q = _unanswerable(spec, q, rng) or q
        batch.append(q)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Stream:
    """The generator's state. Paraphrases and duplicates look back at any earlier item, so
    it keeps, per item drawn: the index of the fresh item whose spec it uses (4 bytes), its
    phrasing (1 byte) and its spec's id (8 bytes), plus the phrasings used per spec id. A
    spec (and its table) is rebuilt on demand by replaying its item's draws, which are a
    pure function of (seed, split, index) and of the ids drawn before it in its table."""

    spec_cache = 4096  # specs kept for look-backs (a paraphrase of a recent item is common)
    table_cache = 64

    def __init__(self, seed: int, split: str) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.seed, self.split = seed, split
        self.root = array("l")      # item -> index of the fresh item whose spec it uses
        self.phrasing = bytearray()  # item -> phrasing id
        self.uid = array("Q")       # item -> its spec's underlying_id (16 hex digits)
        self.phrasings_used: dict[int, int] = {}  # underlying_id -> bit set of phrasings
        self.specs: OrderedDict[int, _Spec] = OrderedDict()    # fresh index -> spec (LRU)
        self.tables: OrderedDict[int, _Table] = OrderedDict()  # block -> table (LRU)

    def _rng(self, i: int) -> random.Random:
        return random.Random(f"procedural:{self.split}:{self.seed}:{i}")

    def _table(self, block: int) -> _Table:
        table = self.tables.get(block)
        if table is None:
            table = _make_table(random.Random(
                f"procedural:{self.split}:{self.seed}:table:{block}"))
            self.tables[block] = table
            if len(self.tables) > self.table_cache:
                self.tables.popitem(last=False)
        return table

    def _draw(self, i: int, rng: random.Random) -> tuple[_Spec, int]:
        """A fresh item's spec and phrasing, from its rng after the rate draws."""
        block = i // QUESTIONS_PER_TABLE
        table = self._table(block)
        taken = set(self.uid[block * QUESTIONS_PER_TABLE:i])
        spec = None
        while spec is None or int(spec.underlying_id, 16) in taken:  # kinds always fit
            spec = _spec(table, rng)
        return spec, rng.choice(_phrasing_ids(spec.kind, self.split))

    def _spec_of(self, i: int) -> _Spec:
        """The spec item `i` uses, rebuilt by replay when it is no longer cached."""
        k = self.root[i]
        spec = self.specs.get(k)
        if spec is None:
            rng = self._rng(k)
            r = rng.random()
            if k and r < DUPLICATE_RATE + PARAPHRASE_RATE:  # a paraphrase with no phrasing
                rng.randrange(k)                             # left fell through to here
            spec, _ = self._draw(k, rng)
            self._remember(k, spec)
        return spec

    def _remember(self, k: int, spec: _Spec) -> None:
        self.specs[k] = spec
        if len(self.specs) > self.spec_cache:
            self.specs.popitem(last=False)

    def _append(self, root: int, phrasing: int, uid: int) -> None:
        self.root.append(root)
        self.phrasing.append(phrasing)
        self.uid.append(uid)

    def item(self, i: int) -> tuple[Question, _Spec]:
        """Item i (call with i = 0, 1, 2, ... in order) and its spec."""
        rng = self._rng(i)
        r = rng.random()
        if i and r < DUPLICATE_RATE:
            j = rng.randrange(i)
            spec = self._spec_of(j)
            self._append(self.root[j], self.phrasing[j], self.uid[j])
            # A verbatim copy of item j under this item's source_id.
            return _question(spec, self.phrasing[j], self.split, self.seed, i,
                             "duplicate"), spec
        if i and r < DUPLICATE_RATE + PARAPHRASE_RATE:
            j = rng.randrange(i)
            spec = self._spec_of(j)
            uid = self.uid[j]
            used = self.phrasings_used[uid]
            free = [p for p in _phrasing_ids(spec.kind, self.split) if not used >> p & 1]
            if free:
                p = rng.choice(free)
                self.phrasings_used[uid] = used | 1 << p
                self._append(self.root[j], p, uid)
                return _question(spec, p, self.split, self.seed, i, "paraphrase"), spec
        spec, p = self._draw(i, rng)
        uid = int(spec.underlying_id, 16)
        self.phrasings_used[uid] = self.phrasings_used.get(uid, 0) | 1 << p
        self._remember(i, spec)
        self._append(i, p, uid)
        return _question(spec, p, self.split, self.seed, i, "fresh"), spec
