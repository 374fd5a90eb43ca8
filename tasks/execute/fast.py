"""The fast tier of execution: straight-line arithmetic evaluated in this process.

Every reference program (procedural generator, GSM8K `<<calc>>` steps, TAT-QA derivations)
is a few assignments of arithmetic over numbers and earlier names. Forking a sandbox child
for each costs ~1.4 ms of CPU; walking its syntax tree costs tens of microseconds. So a
program that is *only* that shape is evaluated here, by a strict interpreter with the rules
of the reference teacher's (`check_arithmetic` + `evaluate`) fused into one walk of the AST
(nothing is ever passed to eval or exec), and everything else goes to the sandbox.

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
import operator

from tasks.types import ExecResult

MAX_SOURCE = 20_000
_MAX_MAGNITUDE = 1e30
_MAX_EXPONENT, _MAX_BASE = 64, 1e6
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
        ast.Pow: operator.pow}


class _Refuse(Exception):
    """Not straight-line arithmetic within bounds: the sandbox decides."""


def _bounded(value: object) -> int | float:
    # Exactly int or float (never bool), finite, at most 1e30 in magnitude.
    if (type(value) is not int and type(value) is not float) or not math.isfinite(value) \
            or abs(value) > _MAX_MAGNITUDE:
        raise _Refuse
    return value  # type: ignore[return-value]


def _value(node: ast.AST, env: dict[str, int | float]) -> int | float:
    """Check and evaluate in one walk, in Python's evaluation order (left, then right)."""
    kind = type(node)
    if kind is ast.Constant:
        return _bounded(node.value)  # type: ignore[attr-defined]
    if kind is ast.Name:
        if node.id not in env:  # type: ignore[attr-defined]
            raise _Refuse
        return env[node.id]  # type: ignore[attr-defined]
    if kind is ast.BinOp:
        op = _OPS.get(type(node.op))  # type: ignore[attr-defined]
        if op is None:
            raise _Refuse
        left = _value(node.left, env)  # type: ignore[attr-defined]
        right = _value(node.right, env)  # type: ignore[attr-defined]
        if op is operator.pow and (abs(right) > _MAX_EXPONENT or abs(left) > _MAX_BASE):
            raise _Refuse  # "10**10**10" must not hang anything
        return _bounded(op(left, right))
    if kind is ast.UnaryOp:
        sign = type(node.op)  # type: ignore[attr-defined]
        if sign is ast.USub:
            return _bounded(-_value(node.operand, env))  # type: ignore[attr-defined]
        if sign is ast.UAdd:
            return _bounded(+_value(node.operand, env))  # type: ignore[attr-defined]
    raise _Refuse


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
            env[stmt.targets[0].id] = _value(stmt.value, env)
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
