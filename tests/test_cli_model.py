"""flows/cli/options.py: options generated from a pydantic model, parsed back into it, through a
real typer app and CliRunner."""

from __future__ import annotations

from typing import Literal

import typer
from pydantic import BaseModel, ConfigDict, Field, model_validator
from typer.testing import CliRunner

from flows.cli.options import cli_fields, options_from


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate: float = Field(0.5, gt=0, description="how fast")
    name: str = Field("a", description="inner name")


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("top", description="outer name")
    count: int = Field(3, ge=1, description="how many")
    flag: bool = Field(False, description="switch it on")
    maybe: int | None = Field(None, description="optional number")
    kind: Literal["x", "y"] = Field("x", description="which kind")
    sizes: list[int] = Field(default_factory=lambda: [1, 2], description="sizes")
    inner: Inner = Field(default_factory=Inner, description="nested part")
    progress: bool = Field(False, description="bars")

    @model_validator(mode="after")
    def _check(self) -> Outer:
        if self.count == 7:
            raise ValueError("seven is not allowed")
        return self


def _app(seen: list) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @options_from(Outer, fixed={"progress": True}, extra_flags={"count": ["-c"]})
    def run(config: Outer, verbose: bool = False) -> None:
        """Run it."""
        seen.append((config, verbose))

    @app.command()
    def other() -> None:
        pass

    return app


def test_fields_flattened_with_unique_names():
    names = [f.param for f in cli_fields(Outer)]
    # `name` exists twice (outer and nested): each is named by its path; `rate` is unique.
    assert names == ["name", "count", "flag", "maybe", "kind", "sizes", "rate", "inner_name",
                     "progress"]
    by = {f.param: f for f in cli_fields(Outer)}
    assert by["rate"].path == ("inner", "rate") and by["rate"].help == "how fast"


def test_defaults_and_values_reach_the_model():
    seen: list = []
    runner = CliRunner()
    res = runner.invoke(_app(seen), ["run"])
    assert res.exit_code == 0, res.output
    assert seen[-1] == (Outer(progress=True), False)

    res = runner.invoke(_app(seen), ["run", "-c", "5", "--flag", "--maybe", "4", "--kind",
                                     "y", "--sizes", "10,20", "--rate", "0.25",
                                     "--inner-name", "b", "--verbose"])
    assert res.exit_code == 0, res.output
    config, verbose = seen[-1]
    assert verbose is True
    assert config == Outer(count=5, flag=True, maybe=4, kind="y", sizes=[10, 20],
                           inner=Inner(rate=0.25, name="b"), progress=True)


def test_help_is_the_field_description():
    res = CliRunner().invoke(_app([]), ["run", "--help"], terminal_width=200)
    assert res.exit_code == 0
    for text in ("--count", "how many", "--rate", "how fast", "--no-flag", "(x | y)",
                 "--verbose"):
        assert text in res.output, text
    assert "--progress" not in res.output  # fixed values have no option


def test_bad_value_is_one_line_naming_the_option():
    runner = CliRunner()
    res = runner.invoke(_app([]), ["run", "--rate", "-1"])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == ["error: --rate: Input should be greater than 0"]
    res = runner.invoke(_app([]), ["run", "--kind", "z"])
    assert res.exit_code == 2 and res.output.startswith("error: --kind: Input should be")
    res = runner.invoke(_app([]), ["run", "--count", "7"])
    assert res.exit_code == 2 and "seven is not allowed" in res.output
