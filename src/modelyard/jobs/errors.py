"""Errors of the job queue: every one says what was expected, what came, and how to fix it."""

from __future__ import annotations

from modelyard.errors import ModelyardError


class JobsError(ModelyardError):
    """A job cannot be submitted, found, changed or reached as asked."""


class JobNotFoundError(JobsError):
    """No job has the id that was asked for."""
