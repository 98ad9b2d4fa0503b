"""Training methods: a registry of ways to train (full, LoRA, IA3, prompt tuning, BitFit, linear
probe, SetFit-style few-shot), zero-shot classification, adversarial and continual training.

Importing this package registers the built-in methods in METHODS and the loaders and
inference backends of the artifact kinds they save (`adapter-classifier`,
`embedding-classifier`).
"""

from __future__ import annotations

from modelyard.backends import BACKENDS, TorchBackend
from modelyard.methods import fewshot, freezing, peft_methods  # noqa: F401  (register methods)
from modelyard.methods.adapters import load_adapter_run, merge_run
from modelyard.methods.embedding import load_embedding_run
from modelyard.methods.registry import ADAPTER, EMBEDDING, METHODS, Method, register_method
from modelyard.methods.zeroshot import build_zeroshot, zeroshot
from modelyard.registry.run import RUN_LOADERS

RUN_LOADERS.add(ADAPTER, load_adapter_run)
RUN_LOADERS.add(EMBEDDING, load_embedding_run)
BACKENDS.add(ADAPTER, TorchBackend)
BACKENDS.add(EMBEDDING, TorchBackend)

__all__ = [
    "METHODS",
    "Method",
    "build_zeroshot",
    "merge_run",
    "register_method",
    "zeroshot",
]
