"""The base of every recipe section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationInfo

# validation context key: the recipe is one a finished run saved, not one a user wrote
SAVED_RUN = "saved_run"


def is_saved_run(info: ValidationInfo) -> bool:
    """Return True when a validator runs on a recipe a finished run saved."""
    return bool(info.context and info.context.get(SAVED_RUN))


class Section(BaseModel):
    """Base of every recipe section: typos are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
