"""The one error hierarchy of modelyard.

Every error a user can cause is a :class:`ModelyardError`. Its message says what was
expected, what came, and how to fix it; the CLI prints it without a traceback.
"""

from __future__ import annotations


class ModelyardError(Exception):
    """Base class of every error modelyard raises on purpose."""


class RecipeError(ModelyardError):
    """A recipe file or override is invalid; the message lists every problem at once."""


class DataError(ModelyardError):
    """Input data cannot be read or does not fit the recipe."""


class ArtifactError(ModelyardError):
    """A run directory or artifact is missing, changed, corrupt or unsafe."""


class BackboneError(ModelyardError):
    """A backbone cannot be resolved from local files."""


class UnknownPluginError(ModelyardError, KeyError):
    """A name was looked up in a registry that does not hold it."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingExtraError(ModelyardError, ImportError):
    """An optional dependency is not installed; the message gives the pip command."""


class LaunchError(ModelyardError):
    """A multi-process launch (`--nproc`, rendezvous options) is invalid, or a process failed."""
