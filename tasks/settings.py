"""The base of every config a user fills in (CLI options, Prefect run forms, deployments)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Settings(BaseModel):
    """A config part: an unknown field is refused, not ignored, so a misspelt option in a run
    form or a deployment's parameters fails at once with the field's name (and Prefect's form
    schema says `additionalProperties: false`)."""

    model_config = ConfigDict(extra="forbid")
