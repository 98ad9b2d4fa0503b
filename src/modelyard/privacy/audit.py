"""Deprecated: moved to `modelyard.privacy.membership` (`audit` is the label audit of `modelyard.curation`)."""

from modelyard._deprecated import redirect

__getattr__ = redirect("modelyard.privacy.audit", "modelyard.privacy.membership")
