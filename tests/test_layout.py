"""The package's shape, checked from the source: dependency direction, no import circles, a
refresh flow that reads as its stages, and no per-teacher branches in flows/."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("flows", "tasks", "quality", "warehouse", "deployments")


def _module(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    """Module -> the project modules it imports (any depth of the file, function-level
    imports included: a circle through a lazy import is still a circle)."""
    modules = {_module(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        tree = ast.parse(path.read_text())
        # Imports for type checkers only never run: they cannot make a circle.
        typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and ast.unparse(block.test).endswith("TYPE_CHECKING")
                       for n in ast.walk(block)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != mod and not mod.startswith(t + "."):
                    graph[mod].add(t)
    return graph


def test_no_import_circles():
    graph = _imports()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert cycles == []


def test_dependency_direction():
    graph = _imports()
    for mod, deps in graph.items():
        if mod.startswith("tasks"):
            assert not {d for d in deps if d.split(".")[0] in ("flows", "warehouse",
                                                               "deployments")}, mod
        if mod.startswith(("warehouse", "quality")):
            assert not {d for d in deps if d.split(".")[0] == "flows"}, mod


def test_refresh_flow_reads_as_its_stages():
    tree = ast.parse((REPO / "flows" / "refresh.py").read_text())
    funcs = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    for name in ("refresh", "_stages"):
        f = funcs[name]
        assert f.end_lineno - f.lineno + 1 <= 60, name


def test_no_teacher_branches_or_sql_in_flows():
    for path in (REPO / "flows").rglob("*.py"):
        text = path.read_text()
        assert "teacher ==" not in text and "teacher !=" not in text, path
        for stmt in ("SELECT ", "INSERT ", "CREATE TABLE", "DELETE FROM"):
            assert stmt not in text, (path, stmt)


def test_experiment_flows_read_as_one_sequence():
    """finetune, dpo and ladder are short flows over plans; the evaluation runs through one
    call; configs are parts, not stacked mixins."""
    path = REPO / "flows" / "experiments.py"
    tree = ast.parse(path.read_text())
    assert len(path.read_text().splitlines()) <= 300
    flows = [n for n in tree.body if isinstance(n, ast.FunctionDef)
             and any(ast.unparse(d).startswith("flow(") for d in n.decorator_list)]
    assert {f.name for f in flows} == {"finetune_flow", "dpo_flow", "ladder_flow",
                                       "evaluate_flow"}
    for f in flows:
        assert f.end_lineno - f.lineno + 1 <= 30, f.name
    text = "".join(p.read_text() for p in (REPO / "flows").rglob("*.py"))
    assert text.count("evaluate_task(") - text.count("def evaluate_task(") == 1
    for p in (REPO / "flows").rglob("*.py"):
        for cls in ast.walk(ast.parse(p.read_text())):
            if isinstance(cls, ast.ClassDef):
                assert len(cls.bases) <= 1, (p.name, cls.name)
