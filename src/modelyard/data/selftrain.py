"""Deprecated: moved to `modelyard.methods.selftrain` (self-training is a training method)."""

from modelyard._deprecated import redirect

__getattr__ = redirect("modelyard.data.selftrain", "modelyard.methods.selftrain")
