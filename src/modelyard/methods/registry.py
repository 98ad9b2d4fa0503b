"""Deprecated: moved to `modelyard.methods.catalog` (one name, one meaning: "registry" is the model registry)."""

from modelyard._deprecated import redirect

__getattr__ = redirect("modelyard.methods.registry", "modelyard.methods.catalog")
