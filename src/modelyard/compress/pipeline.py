"""Deprecated: moved to `modelyard.compress.sweep` (`modelyard.pipeline` is the training run)."""

from modelyard._deprecated import redirect

__getattr__ = redirect("modelyard.compress.pipeline", "modelyard.compress.sweep")
