"""The fast tier of execution: straight-line arithmetic evaluated in this process.

Every reference program (procedural generator, GSM8K `<<calc>>` steps, TAT-QA derivations)
is a few assignments of arithmetic over numbers and earlier names. Forking a sandbox child
for each costs ~1.4 ms of CPU; walking its syntax tree costs tens of microseconds. So a
program that is *only* that shape is evaluated here, by the strict interpreter of the
reference teacher (`check_arithmetic` + `evaluate`: the AST is walked, nothing is ever
passed to eval or exec), and everything else goes to the sandbox.

The contract: for every program `run_fast` accepts, its (status, value, error) equals the
sandbox's. It holds by construction, because the fast tier refuses (answers None) instead
of deciding anything a sandbox run could decide differently:
- only `name = expression` statements, each expression numbers (int or float, never bool),
  names already assigned, + - * / // % ** and unary + -; `ans` must be assigned;
- every value finite and at most 1e30 in magnitude, exponents at most 64 over bases at most
  1e6 (so no program here can be slow or large), the source at most 20,000 characters;
- any exception at all (syntax, division by zero, overflow, recursion on deep nesting)
  means "ask the sandbox", which then produces the canonical error text;
- the value goes through the same conversion and JSON round trip as a sandbox result.
tests/test_fast_tier.py checks the contract on generated and hostile programs; the refresh
counts how many went each way (`exec_fast`, `exec_sandbox`).
"""

from __future__ import annotations

import ast
import json
import math

from tasks.teachers.reference import check_arithmetic, evaluate
from tasks.types import ExecResult

MAX_SOURCE = 20_000
_MAX_MAGNITUDE = 1e30


def run_fast(source: object) -> ExecResult | None:
    """The sandbox's result for `source` when the strict interpreter accepts it; None when
    the program must run in the sandbox."""
    if not isinstance(source, str) or len(source) > MAX_SOURCE:
        return None
    try:
        tree = ast.parse(source, mode="exec")
        env: dict[str, int | float] = {}
        for stmt in tree.body:
            if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                    and isinstance(stmt.targets[0], ast.Name)):
                return None
            check_arithmetic(stmt.value, env)
            value = evaluate(stmt.value, env)
            if type(value) not in (int, float) or not math.isfinite(value) \
                    or abs(value) > _MAX_MAGNITUDE:
                return None
            env[stmt.targets[0].id] = value
        if "ans" not in env:
            return None
        # The sandbox's path for a number: `_jsonable` keeps int and float as they are, the
        # worker writes a JSON line, the parent reads it back.
        status, value, error = json.loads(json.dumps(["ok", env["ans"], ""], ensure_ascii=True,
                                                     allow_nan=True))
    except Exception:  # noqa: BLE001 - any doubt goes to the sandbox, which decides
        return None
    return ExecResult(status=status, value=value, error=error)


def split_tiers(programs: list[object]) -> tuple[list[ExecResult | None], list[int]]:
    """Fast-tier results (None where the sandbox must run) and the indices for the sandbox."""
    fast = [run_fast(p) for p in programs]
    return fast, [i for i, r in enumerate(fast) if r is None]
