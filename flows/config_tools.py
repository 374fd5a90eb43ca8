"""Nested run configs, flat names: every leaf field of a config's parts has one flat name
(its own), used by the CLI flags and accepted by the config itself, so a field is declared
once, beside its stage, and nowhere restated."""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any

from pydantic import BaseModel, Field

from warehouse.connection import WAREHOUSE_HELP

# The one `warehouse` field of every flow config: empty means $DISTILLERY_WAREHOUSE, else
# data/warehouse.duckdb (a plain string, so the Prefect form needs no type chooser).
WarehouseField = Annotated[str, Field(description=WAREHOUSE_HELP)]


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a field holds (one, or the members of a union)."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(annotation)
                if isinstance(a, type) and issubclass(a, BaseModel)]
    return []


def parts(cls: type[BaseModel]) -> dict[str, list[type[BaseModel]]]:
    """{field name: the model(s) it holds} for the nested parts of a config."""
    return {name: ms for name, f in cls.model_fields.items() if (ms := _models(f.annotation))}


def discriminator(models: list[type[BaseModel]]) -> str | None:
    """The field that tells the members of a union apart (a Literal `kind`)."""
    if len(models) < 2:
        return None
    return "kind" if all("kind" in m.model_fields for m in models) else None


def flat_owner(cls: type[BaseModel]) -> dict[str, str]:
    """{leaf field name: the part that declares it}; top-level plain fields map to ''.
    Raises if two parts declare the same name (a flag would be ambiguous)."""
    owner: dict[str, str] = {}
    for name in cls.model_fields:
        if name not in parts(cls):
            owner[name] = ""
    for part, models in parts(cls).items():
        disc = discriminator(models)
        for m in models:
            for leaf in m.model_fields:
                if leaf == disc:
                    continue
                if owner.get(leaf, part) != part:
                    raise TypeError(f"{cls.__name__}: field {leaf!r} in {part!r} and "
                                    f"{owner[leaf]!r}")
                owner[leaf] = part
    return owner


def nest(cls: type[BaseModel], data: Any) -> Any:
    """Route flat keys to the part that declares them: {"n": 5, "teacher": "openai",
    "model": "m"} -> {"source": {"n": 5}, "teacher": {"kind": "openai", "model": "m"}}.
    Nested input passes unchanged; unknown keys are left for pydantic to refuse."""
    if not isinstance(data, dict):
        return data
    owner = flat_owner(cls)
    nested = parts(cls)
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in nested and isinstance(value, dict | BaseModel):
            base = value.model_dump() if isinstance(value, BaseModel) else value
            out.setdefault(key, {}).update(base)
        elif key in nested and discriminator(nested[key]) and owner.get(key) != key:
            out.setdefault(key, {})[discriminator(nested[key])] = value  # --teacher openai
        elif owner.get(key):
            out.setdefault(owner[key], {})[key] = value
        else:
            out[key] = value
    return out
