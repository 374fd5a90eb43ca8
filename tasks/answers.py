"""Answer normalization and comparison, shared by teachers, verification and evaluation.

Everything here is a pure function of its arguments. Numbers are parsed with a regular
expression and `float()` on the matched literal only: answers are untrusted text and are never
evaluated.
"""

from __future__ import annotations

import json
import math
import numbers
import re
import unicodedata
from collections.abc import Iterable

from tasks.jsontext import json_list

# GSM8K's calculator annotations in worked solutions: "48/2=<<48/2=24>>24". The source reads
# the difficulty from them, the reference teacher derives its program from them.
ANNOTATION = re.compile(r"<<(.*?)>>")

SCALE_FACTORS: dict[str, float] = {
    "thousand": 1e3,
    "million": 1e6,
    "billion": 1e9,
}

# A plain decimal literal; float() alone would also accept "nan", "inf" and "1_000".
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
# Thousands separators must group by three, so "1,2" or "1, 2" (a list) is not a number.
_GROUPED = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")
_CURRENCY = re.compile(r"^(?:US\$|USD|EUR|GBP|[$€£¥])\s*|\s*(?:USD|EUR|GBP)$", re.IGNORECASE)
_MINUS = str.maketrans({"\u2212": "-", "\u2013": "-", "\u2014": "-", "\u2012": "-"})
_SCALE_SUFFIX = re.compile(
    r"^(?P<num>.*?)\s*(?P<word>thousands?|millions?|billions?|k|m|mn|bn)\.?$", re.IGNORECASE
)
_SCALE_ALIASES = {"k": "thousand", "m": "million", "mn": "million", "bn": "billion"}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _parse_plain(text: str) -> tuple[float, bool] | None:
    """Parse one number as written; returns (value, had_percent_sign)."""
    s = unicodedata.normalize("NFKC", text).translate(_MINUS).strip()
    if not s:
        return None
    negative = False
    # Accounting negatives: "(1,234)" means -1234.
    if s.startswith("(") and s.endswith(")"):
        s, negative = s[1:-1].strip(), True
    percent = s.endswith("%")
    if percent:
        s = s[:-1].strip()
    sign = ""
    if s[:1] in "+-":
        sign, s = s[0], s[1:].strip()
    s = _CURRENCY.sub("", s).strip()
    # "$-5" as well as "-$5".
    if not sign and s[:1] in "+-":
        sign, s = s[0], s[1:].strip()
    if s.endswith("%") and not percent:
        percent, s = True, s[:-1].strip()
    s = s.replace(" ", "")
    if "," in s:
        if not _GROUPED.fullmatch(s):
            return None
        s = s.replace(",", "")
    if not _NUMBER.fullmatch(s) or s[:1] in "+-":
        return None
    value = _finite(float(sign + s))
    if value is None:
        return None
    return (-value if negative else value), percent


def parse_number(text: str | float | int | None) -> float | None:
    """The number written in `text`, or None.

    Accepts commas as thousands separators, currency ($, €, £, USD), a trailing '%', accounting
    negatives "(1,234)", unicode minus and a leading '+'. The value is returned as written:
    "12.5%" -> 12.5 (percent handling is `answers_match`'s job) and scale words are not
    applied ("1.5 million" -> None; see `parse_scaled`). Booleans, nan and inf are not numbers.
    """
    if text is None or isinstance(text, bool):
        return None
    if isinstance(text, numbers.Real):
        return _finite(float(text))
    if not isinstance(text, str):
        return None
    parsed = _parse_plain(text)
    return None if parsed is None else parsed[0]


def parse_scaled(text: str | float | int | None) -> tuple[float, str | None] | None:
    """(value, scale word or None) for texts like "1.5 million", "$2bn" or "300".

    Scale words are kept separate from the number so that callers can compare in either the
    table's units or raw units.
    """
    value = parse_number(text)
    if value is not None:
        return value, None
    if not isinstance(text, str):
        return None
    m = _SCALE_SUFFIX.match(text.strip())
    if not m:
        return None
    value = parse_number(m.group("num"))
    if value is None:
        return None
    word = m.group("word").lower()
    word = _SCALE_ALIASES.get(word, word.rstrip("s"))
    return value, word


def _decimals(gold: str) -> int:
    """Digits after the decimal point in the gold literal ("1.640" -> 3, "72" -> 0)."""
    m = re.search(r"\.(\d+)", gold)
    return len(m.group(1)) if m else 0


def _close(candidate: float, gold: float, decimals: int, rel_tol: float, abs_tol: float) -> bool:
    if math.isclose(candidate, gold, rel_tol=rel_tol, abs_tol=abs_tol):
        return True
    # Golds such as TAT-QA's are rounded: accept a value that rounds to the gold. Integer golds
    # (decimals == 0) stay strict, or 15.4 would "equal" a GSM8K answer of 15.
    if decimals > 0:
        half_unit = 0.5 * 10.0**-decimals
        return abs(candidate - gold) <= half_unit * (1 + 1e-9) + 1e-12
    return False


def _predicted_numbers(predicted: object) -> list[tuple[float, str | None, bool]] | None:
    """(value, scale word, had_percent_sign) readings of a predicted answer."""
    if predicted is None or isinstance(predicted, bool):
        return None
    if isinstance(predicted, numbers.Real):
        value = _finite(float(predicted))
        return None if value is None else [(value, None, False)]
    if isinstance(predicted, list | tuple) and len(predicted) == 1:
        return _predicted_numbers(predicted[0])
    if not isinstance(predicted, str):
        return None
    plain = _parse_plain(predicted)
    if plain is not None:
        return [(plain[0], None, plain[1])]
    scaled = parse_scaled(predicted)
    return None if scaled is None else [(scaled[0], scaled[1], False)]


def _numeric_match(
    predicted: object, gold_text: str, scale: str | None, rel_tol: float, abs_tol: float
) -> bool | None:
    """True/False when gold is numeric, None when gold is not a number."""
    gold_parsed = _parse_plain(gold_text)
    if gold_parsed is None:
        return None
    gold, gold_percent = gold_parsed
    readings = _predicted_numbers(predicted)
    if readings is None:
        return False
    scale = (scale or "").strip().lower()
    percent_context = scale == "percent" or gold_percent
    decimals = _decimals(gold_text)
    if percent_context:
        # TAT-QA reports percentages to two decimals even where the gold literal shows fewer.
        decimals = max(decimals, 2)
    unit = SCALE_FACTORS.get(scale, 1.0)
    for value, word, had_percent in readings:
        candidates = [value]
        if word is not None:
            raw = value * SCALE_FACTORS[word]
            candidates += [raw, raw / unit]
        elif unit != 1.0:
            # The prediction may be in raw units while gold is in the table's units.
            candidates.append(value / unit)
        if percent_context and not had_percent:
            candidates.append(value * 100)  # a fraction against a percentage
        if had_percent and not percent_context:
            candidates.append(value / 100)  # "12.5%" against a fraction gold
        if any(_close(c, gold, decimals, rel_tol, abs_tol) for c in candidates):
            return True
    return False


def normalize_span(text: object) -> str:
    """Canonical form of a span answer: NFKC, lower case, single spaces, no edge punctuation.

    Numeric spans ("$1,496.5") become their canonical number so that they compare by value.
    """
    if not isinstance(text, str):
        text = format_answer(text) or ""
    number = parse_number(text)
    if number is not None:
        return format_answer(number) or ""
    s = unicodedata.normalize("NFKC", text).translate(_MINUS).lower()
    s = re.sub(r"\s+", " ", s).strip()
    return s.strip(" .,;:\"'`")


_NON_FINITE = frozenset({"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "-infinity"})


def _as_span_set(value: object) -> frozenset[str] | None:
    spans = _span_set(value)
    # "nan" is a failed computation written out, never an answer, even against itself.
    return None if spans is None or spans & _NON_FINITE else spans


def _span_set(value: object) -> frozenset[str] | None:
    if isinstance(value, str):
        decoded = json_list(value)
        if decoded is not None:
            return _span_set(decoded)
        return frozenset({normalize_span(value.strip())})
    if isinstance(value, Iterable) and not isinstance(value, bytes | dict):
        return frozenset(normalize_span(v) for v in value)
    if value is None or isinstance(value, bool):
        return None
    return frozenset({normalize_span(value)})


def answers_match(
    predicted: object,
    gold: str,
    *,
    scale: str | None = None,
    rel_tol: float = 1e-4,
    abs_tol: float = 1e-6,
) -> bool:
    """Whether `predicted` answers a question whose gold answer is `gold`.

    Numeric golds compare with tolerance, also when `predicted` equals gold rounded to gold's
    decimals, is a fraction of a percentage gold, or is in raw units of a thousand/million/
    billion `scale`. Non-numeric golds (JSON lists or strings of spans) compare as sets of
    normalized strings; a one-element span list that is a number compares as a number.
    """
    if gold is None or predicted is None or isinstance(predicted, bool):
        return False
    gold = str(gold).strip()
    numeric = _numeric_match(predicted, gold, scale, rel_tol, abs_tol)
    if numeric is not None:
        return numeric
    gold_spans = json_list(gold)
    if gold_spans is not None and len(gold_spans) == 1:
        only = gold_spans[0]
        only_text = only if isinstance(only, str) else format_answer(only)
        if only_text is not None:
            numeric = _numeric_match(predicted, only_text, scale, rel_tol, abs_tol)
            if numeric is not None:
                return numeric
    want = _as_span_set(gold_spans if gold_spans is not None else gold)
    got = _as_span_set(predicted)
    return want is not None and got is not None and want == got


def _format_float(value: float) -> str | None:
    if not math.isfinite(value):
        return None
    if value != 0 and abs(value) < 1e-4:
        # Six decimal places would round tiny values to 0; keep six significant digits instead.
        return f"{value:.6g}"
    rounded = round(value, 6)
    if rounded == int(rounded):
        return str(int(rounded))
    return f"{rounded:.6f}".rstrip("0").rstrip(".")


def _json_item(value: object) -> object:
    """A list element for JSON: numbers stay numbers (rounded like scalars), others strings."""
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, numbers.Real):
        text = _format_float(float(value))
        return None if text is None else json.loads(text)
    return format_answer(value)


def format_answer(value: object) -> str | None:
    """Canonical string stored in the warehouse for an answer value.

    Floats are rounded to six decimals (integral ones lose '.0'), numeric strings become their
    number, lists become JSON, None/nan/inf become None.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return _format_float(float(value))
    if isinstance(value, str):
        stripped = value.strip()
        number = parse_number(stripped)
        plain = re.fullmatch(r"[+-]?[\d,]*\.?\d+", stripped)
        return _format_float(number) if number is not None and plain else stripped
    if isinstance(value, list | tuple):
        return json.dumps([_json_item(v) for v in value], ensure_ascii=False)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return str(value)
