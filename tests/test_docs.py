"""The docs keep up with the code: every table and view of the migrations is described in
docs/warehouse.md (and nothing there names one that does not exist), every command of the CLI
has a section in docs/cli.md, every relative link in README.md and docs/*.md points at a file
(and heading) that exists, and the README stays short. Fast: no refresh, no Prefect, no model."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from warehouse.connection import MIGRATIONS_DIR, connect

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
WAREHOUSE_DOC = DOCS / "warehouse.md"
CLI_DOC = DOCS / "cli.md"

_CREATE = re.compile(r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:TABLE|VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?"
                     r"\"?(\w+)\"?", re.IGNORECASE)
_HEADING = re.compile(r"^#{2,4}\s+`([^`]+)`\s*$", re.MULTILINE)
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _migration_names() -> set[str]:
    names = set()
    for sql in sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9]_*.sql")):
        text = re.sub(r"--[^\n]*", "", sql.read_text())  # comments may say "CREATE TABLE"
        names |= {m.lower() for m in _CREATE.findall(text)}
    return names | {"schema_migrations"}  # created by migrate() itself


def _documented() -> set[str]:
    return set(_HEADING.findall(WAREHOUSE_DOC.read_text()))


def test_the_parsed_names_are_what_a_fresh_warehouse_holds(tmp_path: Path) -> None:
    """The regex over the migrations finds exactly the fresh file's tables and views, so the
    next test cannot pass by missing a spelling."""
    with connect(tmp_path / "fresh.duckdb") as con:
        fresh = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
        ).fetchall()}
    assert _migration_names() == fresh


def test_every_table_and_view_is_described_in_warehouse_md() -> None:
    missing = sorted(_migration_names() - _documented())
    assert not missing, (f"docs/warehouse.md has no '### `name`' section for {missing}: "
                         "describe each new table or view there (one row is ..., its columns)")


def test_warehouse_md_describes_no_table_that_does_not_exist() -> None:
    stale = sorted(_documented() - _migration_names())
    assert not stale, f"docs/warehouse.md describes {stale}, which no migration creates"


def _cli_commands() -> set[str]:
    """'refresh', 'runs cost', ...: every command registered in flows/cli/, read from the
    source (importing the app would import Prefect, torch and the flows)."""
    subapps: dict[str, str] = {}
    commands: list[tuple[str, str]] = []
    for path in sorted((REPO / "flows" / "cli").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "add_typer" and node.args):
                name = next(k.value.value for k in node.keywords if k.arg == "name")
                subapps[ast.unparse(node.args[0])] = name
            if isinstance(node, ast.FunctionDef):
                for dec in node.decorator_list:
                    if (isinstance(dec, ast.Call) and isinstance(dec.func, ast.Attribute)
                            and dec.func.attr == "command"):
                        name = (dec.args[0].value if dec.args
                                else node.name.replace("_", "-"))
                        commands.append((ast.unparse(dec.func.value), name))
    return {name if owner == "app" else f"{subapps[owner]} {name}" for owner, name in commands}


def test_every_cli_command_has_a_section_in_cli_md() -> None:
    commands = _cli_commands()
    assert {"refresh", "sql", "finetune", "ladder", "runs cost", "teacher serve"} <= commands
    headings = set(re.findall(r"^##\s+`distillery ([^`]+)`\s*$", CLI_DOC.read_text(),
                              re.MULTILINE))
    assert not commands - headings, f"docs/cli.md lacks a section for {commands - headings}"
    assert not headings - commands, f"docs/cli.md documents no such command: {headings - commands}"


def _markdown_files() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.glob("*.md"))]


def _anchors(doc: Path) -> set[str]:
    """GitHub's heading anchors of a markdown file: lower case, punctuation dropped, spaces
    to hyphens (`## The warehouse is locked` -> `the-warehouse-is-locked`)."""
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.DOTALL)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, re.MULTILINE)}


@pytest.mark.parametrize("doc", _markdown_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_point_at_files_and_headings_that_exist(doc: Path) -> None:
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.DOTALL)  # code is not links
    broken = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # a URL
        path, _, anchor = target.partition("#")
        file = doc.parent / path if path else doc
        missing_heading = (anchor and file.suffix == ".md" and file.exists()
                           and anchor not in _anchors(file))
        if not file.exists() or missing_heading:
            broken.append(target)
    assert not broken, f"{doc.name}: links to missing files or headings: {broken}"


def test_the_readme_stays_a_readme() -> None:
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; move detail into docs/"
