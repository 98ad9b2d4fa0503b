"""The error of hyper-parameter search."""

from __future__ import annotations

from modelyard.errors import ModelyardError


class TuningError(ModelyardError):
    """A search space, study or search option is invalid, or a study holds no finished trial."""
