"""The stages whose code lives in a component package, under the names of their commands:
compression, training methods, privacy audit and the data tools."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from modelyard.compress import CompressResult
from modelyard.compress import compress as _compress
from modelyard.curation.api import audit as audit
from modelyard.curation.api import scan_pii as scan_pii
from modelyard.curation.api import simulate_al as simulate_al
from modelyard.methods import merge_run as merge
from modelyard.privacy.membership import audit_membership as audit_membership


@functools.wraps(_compress, assigned=())  # its signature, for help() and the docs
def compress(run: Any, *args: Any, **kwargs: Any) -> CompressResult:
    """Compress a trained run (see `modelyard.compress.compress`); a token-classification run
    is loaded here and compresses with onnx and int8-dynamic (its accuracy is entity F1)."""
    from modelyard.tagging import is_tagger

    if isinstance(run, str | Path) and is_tagger(run):
        from modelyard.tagging.compression import tagger_parent

        run = tagger_parent(run)
    return _compress(run, *args, **kwargs)


def compression_methods() -> dict[str, str]:
    """Return each compression method's spec (e.g. `distill:N`) and what it does."""
    from modelyard.compress import describe_methods

    return dict(describe_methods())


def training_methods() -> list[dict[str, Any]]:
    """Return the training methods a recipe can name in train.method: name, artifact kind
    and what trains."""
    from modelyard.methods import TRAINING_METHODS

    return [
        {
            "name": n,
            "kind": TRAINING_METHODS.get(n).kind,
            "summary": TRAINING_METHODS.get(n).summary,
        }
        for n in TRAINING_METHODS.names()
    ]


__all__ = [
    "audit",
    "audit_membership",
    "compress",
    "compression_methods",
    "merge",
    "scan_pii",
    "simulate_al",
    "training_methods",
]
