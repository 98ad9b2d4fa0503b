"""Deprecated: moved to `modelyard.curation.active` (data curation sits above training)."""

from modelyard._deprecated import redirect

__getattr__ = redirect("modelyard.data.active", "modelyard.curation.active")
