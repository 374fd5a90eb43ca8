"""Preference pairs and verifier labels in the dataset formats TRL takes, rendered exactly as
SFT rows are (tasks/render.py: same system prompt, user turn and code fence):

- `preference` (DPOTrainer): conversational `prompt` = [system, user] (+ for a step pair the
  start of the assistant turn: the fence and the steps before the wrong one, which TRL
  continues), `chosen` and `rejected` = [assistant].
- `kto` (KTOTrainer, unpaired): `prompt`, `completion` = [assistant], `label` (True for a chosen
  completion, False for a rejected one); a completion shared by two pairs appears once.
- `verifier`: `prompt` = [system, user], `completion` = [assistant], `label` = right by
  execution; for training a verifier or an outcome reward model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tasks.render import SYSTEM_PROMPT, render_completion, student_prompt

PAIR_FORMATS = ("preference", "kto")
PAIR_META = ("pair_id", "pair_type", "question_id", "chosen_sample_id", "rejected_sample_id",
             "source", "kind")
VERIFIER_META = ("question_id", "sample_id", "teacher", "error_kind", "source", "kind")
_OPEN = "```python\n"


def _turn(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def pair_turns(pair: Mapping[str, Any]) -> tuple[list[dict[str, str]], str, str]:
    """(prompt turns, chosen text, rejected text) of one stored pair (a preference_pairs
    row). An outcome pair's sides are whole fenced programs; a step pair's prompt ends with
    the open fence and the right steps, its chosen side finishes the program and closes
    the fence, its rejected side is the wrong step."""
    prompt = [_turn("system", SYSTEM_PROMPT), _turn("user", pair["prompt"])]
    if pair["pair_type"] != "step":
        return prompt, render_completion(pair["chosen"]), render_completion(pair["rejected"])
    prefix = pair.get("prefix") or ""
    prompt.append(_turn("assistant", _OPEN + (prefix + "\n" if prefix else "")))
    return prompt, pair["chosen"].strip() + "\n```", pair["rejected"].strip() + "\n"


def pair_rows(pairs: Sequence[Mapping[str, Any]], fmt: str = "preference"
              ) -> list[dict[str, Any]]:
    if fmt not in PAIR_FORMATS:
        raise ValueError(f"pair format {fmt!r}: one of {', '.join(PAIR_FORMATS)}")
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for p in pairs:
        prompt, chosen, rejected = pair_turns(p)
        meta = {c: p.get(c) for c in PAIR_META}
        if fmt == "preference":
            rows.append({"prompt": prompt, "chosen": [_turn("assistant", chosen)],
                         "rejected": [_turn("assistant", rejected)], **meta})
            continue
        for text, label in ((chosen, True), (rejected, False)):
            key = (repr(prompt), text)
            if key in seen:
                continue
            seen.add(key)
            rows.append({"prompt": prompt, "completion": [_turn("assistant", text)],
                         "label": label, **meta})
    return rows


def verifier_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """verifier_labels rows (question, context, solution, correct) as TRL rows."""
    return [{"prompt": [_turn("system", SYSTEM_PROMPT),
                        _turn("user", student_prompt(r["question"], r.get("context") or ""))],
             "completion": [_turn("assistant", render_completion(r["solution"]))],
             "label": bool(r["correct"]), **{c: r.get(c) for c in VERIFIER_META}}
            for r in rows]


def features(fmt: str) -> Any:
    """datasets.Features of `preference`, `kto` or `verifier` rows."""
    from datasets import Features, List, Value

    turns = List({"role": Value("string"), "content": Value("string")})
    if fmt == "preference":
        text = {"prompt": turns, "chosen": turns, "rejected": turns}
    else:
        text = {"prompt": turns, "completion": turns, "label": Value("bool")}
    meta = VERIFIER_META if fmt == "verifier" else PAIR_META
    return Features({**text, **{c: Value("string") for c in meta}})
