"""A typer command's options generated from a pydantic config model, and parsed back into it.

The config model is the one declaration of a command's settings: the Prefect UI form shows
it, the flow receives it, and the CLI offers every field as an option of the same name
(`learning_rate` -> `--learning-rate`) with the field's description as its help. Nested
models are flattened: each leaf field is one option (named by the leaf alone when that name
is unique, else `<parent>-<leaf>`), and the values go back into the nested structure.

    @app.command()
    @options_from(FinetuneConfig, exclude={"progress"}, fixed={"progress": True})
    def finetune(config: FinetuneConfig) -> None: ...

The decorated function keeps its own parameters (they stay typer options) and receives the
built model as the parameter annotated with the model class. A value pydantic refuses is one
line naming the option (`error: --lora-r: Input should be greater than 0`), exit code 2.
"""

from __future__ import annotations

import enum
import functools
import inspect
import json
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

_SCALARS = (bool, int, float, str, Path)


@dataclass(frozen=True)
class CliField:
    """One leaf field of a (possibly nested) model as one CLI option."""

    path: tuple[str, ...]  # field names from the top model down to the leaf
    param: str  # python identifier of the option (and of the typer parameter)
    kind: str  # scalar | list | json
    annotation: Any  # what typer parses
    default: Any
    help: str
    choices: tuple[Any, ...] = ()  # of a Literal field


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(args) < len(typing.get_args(tp)):
            return args[0], True
    return tp, False


def _submodel(tp: Any) -> type[BaseModel] | None:
    inner, _ = _unwrap_optional(tp)
    return inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None


def _union_members(tp: Any) -> list[type[BaseModel]]:
    """Members of a discriminated union of models (each with a Literal `kind`), else []."""
    if typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return []
    members = typing.get_args(tp)
    if all(isinstance(m, type) and issubclass(m, BaseModel) and "kind" in m.model_fields
           for m in members):
        return list(members)
    return []


def _default(info: FieldInfo) -> Any:
    if info.default is not PydanticUndefined:
        return info.default
    if info.default_factory is not None:
        return info.default_factory()  # type: ignore[call-arg]
    return ...


def _leaf(path: tuple[str, ...], param: str, info: FieldInfo) -> CliField:
    tp, optional = _unwrap_optional(info.annotation)
    default = _default(info)
    help_text = info.description or ""
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = " | ".join(str(c) for c in typing.get_args(tp))
        return CliField(path, param, "scalar", str | None if optional else str, default,
                        f"{help_text} ({choices})".strip(), typing.get_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return CliField(path, param, "scalar", tp | None if optional else tp, default,
                        help_text)
    if tp in _SCALARS:
        return CliField(path, param, "scalar", tp | None if optional else tp, default,
                        help_text)
    if origin in (list, tuple, set, frozenset, Sequence):
        if isinstance(default, list | tuple | set | frozenset):
            default = ",".join(str(v) for v in default)
        return CliField(path, param, "list", str | None, default,
                        f"{help_text} (comma-separated)".strip())
    return CliField(path, param, "json", str | None,
                    None if default is ... or default is None else json.dumps(default),
                    f"{help_text} (JSON)".strip())


def cli_fields(model: type[BaseModel], exclude: Iterable[str] = ()) -> list[CliField]:
    """The leaf fields of `model` in declaration order, with unique option names."""
    excluded = set(exclude)
    leaves: list[tuple[tuple[str, ...], FieldInfo]] = []

    def walk(cls: type[BaseModel], prefix: tuple[str, ...]) -> None:
        for name, info in cls.model_fields.items():
            path = (*prefix, name)
            if name in excluded or ".".join(path) in excluded:
                continue
            sub = _submodel(info.annotation)
            members = _union_members(info.annotation)
            if sub is not None:
                walk(sub, path)
            elif members:
                # `--teacher openai` picks the member; every member's fields are options,
                # and pydantic refuses those the chosen member does not have.
                kinds = tuple(typing.get_args(m.model_fields["kind"].annotation)[0]
                              for m in members)
                default = _default(info)
                leaves.append(((*path, "kind"), FieldInfo(
                    annotation=Literal[kinds], default=getattr(default, "kind", kinds[0]),
                    description=info.description or f"{name} kind")))
                seen: set[str] = set()
                for m in members:
                    for leaf, leaf_info in m.model_fields.items():
                        if leaf != "kind" and leaf not in seen:
                            seen.add(leaf)
                            leaves.append(((*path, leaf), leaf_info))
            else:
                leaves.append((path, info))

    walk(model, ())
    counts: dict[str, int] = {}
    for path, _ in leaves:
        counts[path[-1]] = counts.get(path[-1], 0) + 1
    def param(path: tuple[str, ...]) -> str:
        if path[-1] == "kind" and len(path) > 1:
            return path[-2]  # the union's own name: --teacher
        return path[-1] if counts[path[-1]] == 1 else "_".join(path)

    return [_leaf(path, param(path), info) for path, info in leaves]


def flag(param: str) -> str:
    return "--" + param.replace("_", "-")


def _option(field: CliField, extra_flags: Sequence[str], envvar: str | None) -> Any:
    names = [flag(field.param)]
    if field.annotation is bool:
        names = [f"{names[0]}/--no-{field.param.replace('_', '-')}"]
    return typer.Option(*names, *extra_flags, help=field.help or None, envvar=envvar,
                        show_default=field.default is not ...
                        and field.default not in (None, ""))


def parse_values(model: type[BaseModel], fields: Sequence[CliField],
                 values: Mapping[str, Any], fixed: Mapping[str, Any] | None = None
                 ) -> BaseModel:
    """The model built from option values (by `CliField.param`); None means "not given",
    so the model's own default (or validator) decides. Raises ValidationError."""
    data: dict[str, Any] = {}
    for field in fields:
        value = values.get(field.param)
        # Not given, or given as the default: the model's own default applies (and a union
        # member that lacks the field is not handed it).
        if value is None or value is ... or value == field.default:
            continue
        if field.kind == "list":
            value = [v.strip() for v in str(value).split(",") if v.strip()]
        elif field.kind == "json":
            value = json.loads(value)
        elif isinstance(value, Path):
            value = str(value)
        node = data
        for key in field.path[:-1]:
            node = node.setdefault(key, {})
        node[field.path[-1]] = value
    for field in fields:  # a union member chosen by default still needs its tag
        if field.path[-1] == "kind":
            node = data
            for key in field.path[:-1]:
                node = node.get(key) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node.setdefault("kind", values.get(field.param) or field.default)
    _set_fixed(model, data, fixed or {})
    return model.model_validate(data)


def _set_fixed(model: type[BaseModel], data: dict[str, Any], fixed: Mapping[str, Any]) -> None:
    """Fixed values by leaf name, placed where the leaf lives in the nested model."""
    paths = {f.path[-1]: f.path for f in cli_fields(model)}
    for name, value in fixed.items():
        node = data
        for key in paths.get(name, (name,))[:-1]:
            node = node.setdefault(key, {})
        node[name] = value


def error_line(exc: ValidationError, fields: Sequence[CliField]) -> str:
    """First error of a validation as one line naming the option."""
    err = exc.errors()[0]
    # Union members appear in the location by their tag ("teacher", "reference", "model").
    tags = {str(c) for f in fields if f.path[-1] == "kind" for c in f.choices}
    loc = tuple(str(p) for p in err["loc"] if not isinstance(p, int) and str(p) not in tags)
    by_path = {f.path: f for f in fields}
    for n in range(len(loc), 0, -1):
        if loc[:n] in by_path:
            return f"{flag(by_path[loc[:n]].param)}: {err['msg']}"
    return err["msg"].removeprefix("Value error, ")


def options_from(model: type[BaseModel], *, exclude: Iterable[str] = (),
                 fixed: Mapping[str, Any] | None = None,
                 extra_flags: Mapping[str, Sequence[str]] | None = None,
                 envvars: Mapping[str, str] | None = None,
                 check: Callable[[Any], None] | None = None) -> Callable[[Callable[..., Any]],
                                                                          Callable[..., Any]]:
    """Decorator: the command gets one option per leaf field of `model` (minus `exclude`,
    `fixed` values set without an option), plus its own parameters; it is called with the
    built model as its parameter annotated with `model`. `extra_flags` adds short or older
    spellings per field (`{"warehouse": ["-w"]}`), `envvars` an environment fallback.
    `check(config)` runs after validation (raise ValueError for a one-line error)."""
    fields = cli_fields(model, exclude=[*exclude, *(fixed or {})])

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(func)
        hints = typing.get_type_hints(func, include_extras=True)
        target = next((n for n in sig.parameters if hints.get(n) is model), None)
        if target is None:
            raise TypeError(f"{func.__name__} needs a parameter annotated {model.__name__}")
        own = [p.replace(annotation=hints.get(p.name, p.annotation))
               for p in sig.parameters.values() if p.name != target]
        clash = {p.name for p in own} & {f.param for f in fields}
        if clash:
            raise TypeError(f"{func.__name__}: parameters {clash} shadow config fields")
        generated = [inspect.Parameter(
            f.param, inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[f.annotation, _option(
                f, (extra_flags or {}).get(f.param, ()), (envvars or {}).get(f.param))],
            default=... if f.default is ... else
            (f.default if f.kind == "scalar" else (f.default or None)))
            for f in fields]
        names = {f.param for f in fields}

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            try:
                config = parse_values(model, fields, {k: kwargs[k] for k in names},
                                      fixed=fixed)
                if check is not None:
                    check(config)
            except ValidationError as exc:
                _fail(error_line(exc, fields))
            except (ValueError, json.JSONDecodeError) as exc:
                _fail(str(exc).splitlines()[0])
            rest = {k: v for k, v in kwargs.items() if k not in names}
            return func(**{target: config}, **rest)

        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
        params = [*generated, *own]
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(2)
