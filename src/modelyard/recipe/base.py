"""The base of every recipe section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Base of every recipe section: typos are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
