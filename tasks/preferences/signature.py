"""What makes two programs the same solution: a signature with variable names and formatting
removed, then an edit distance between signatures. Also how a program splits into steps."""

from __future__ import annotations

import ast
import builtins

_BUILTINS = frozenset(dir(builtins))


class _Rename(ast.NodeTransformer):
    """Every variable becomes v0, v1, ... in order of first appearance; `ans` stays (it is
    the contract with the sandbox), and so do builtins and attribute names."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id != "ans" and node.id not in _BUILTINS:
            node.id = self.names.setdefault(node.id, f"v{len(self.names)}")
        return node


def program_signature(program: str) -> str:
    """The program with names v0, v1, ... and canonical formatting (ast.unparse: no comments,
    one spacing, one quoting). A program that does not parse keeps its whitespace-collapsed
    lines: it can still be compared, only less cleverly."""
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError):
        return "\n".join(" ".join(line.split()) for line in program.splitlines()
                         if line.strip())
    return ast.unparse(_Rename().visit(tree))


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance over characters (two rows; signatures are a few hundred chars)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def relative_distance(a: str, b: str) -> float:
    """Edit distance over the longer length: 0 same, 1 nothing in common."""
    longest = max(len(a), len(b))
    return edit_distance(a, b) / longest if longest else 0.0


def split_steps(program: str) -> list[str]:
    """A program's steps: its non-blank lines, right-stripped (the teachers write
    straight-line programs, one assignment per line)."""
    return [line.rstrip() for line in (program or "").splitlines() if line.strip()]
