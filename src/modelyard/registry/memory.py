"""Deprecated: moved to `modelyard.registry.in_memory` (`memory` is what a run keeps for continual training)."""

from modelyard._deprecated import redirect

__getattr__ = redirect("modelyard.registry.memory", "modelyard.registry.in_memory")
