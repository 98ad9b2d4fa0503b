"""Deprecated: moved to `modelyard.curation.api` (data curation sits above training)."""

from modelyard._deprecated import redirect

__getattr__ = redirect("modelyard.data.api", "modelyard.curation.api")
