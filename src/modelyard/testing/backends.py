"""Deprecated: moved to `modelyard.testing.backend_checks` (`modelyard.backends` is the backends)."""

from modelyard._deprecated import redirect

__getattr__ = redirect("modelyard.testing.backends", "modelyard.testing.backend_checks")
