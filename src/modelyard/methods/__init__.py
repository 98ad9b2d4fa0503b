"""Training methods: a registry of ways to train (full, LoRA, IA3, prompt tuning, BitFit, linear
probe, SetFit-style few-shot), zero-shot classification, adversarial and continual training.

Importing this package registers the built-in methods in TRAINING_METHODS; the artifact kinds
they save (`adapter-classifier`, `embedding-classifier`) are rows of `modelyard.registry.kinds`.
"""

from __future__ import annotations

from modelyard._deprecated import renamed
from modelyard.methods import fewshot, freezing, peft_methods  # noqa: F401  (register methods)
from modelyard.methods.adapters import merge_run
from modelyard.methods.catalog import TRAINING_METHODS, Method, register_training_method
from modelyard.methods.zeroshot import build_zeroshot

__all__ = [
    "TRAINING_METHODS",
    "Method",
    "build_zeroshot",
    "merge_run",
    "register_training_method",
]

__getattr__ = renamed(
    "modelyard.methods",
    {"METHODS": "TRAINING_METHODS", "register_method": "register_training_method"},
    globals(),
)
