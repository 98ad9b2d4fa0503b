"""Training methods: a registry of ways to train (full, LoRA, IA3, prompt tuning, BitFit, linear
probe, SetFit-style few-shot), zero-shot classification, adversarial and continual training.

Importing this package registers the built-in methods in METHODS; the artifact kinds they save
(`adapter-classifier`, `embedding-classifier`) are rows of `modelyard.registry.kinds`.
"""

from __future__ import annotations

from modelyard.methods import fewshot, freezing, peft_methods  # noqa: F401  (register methods)
from modelyard.methods.adapters import merge_run
from modelyard.methods.registry import METHODS, Method, register_method
from modelyard.methods.zeroshot import build_zeroshot

__all__ = [
    "METHODS",
    "Method",
    "build_zeroshot",
    "merge_run",
    "register_method",
]
