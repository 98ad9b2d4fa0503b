"""The contract of compression methods (`modelyard.compress.base.COMPRESSION_METHODS`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelyard.backends import load_backend
from modelyard.compress import COMPRESSION_METHODS  # importing it registers the built-in methods
from modelyard.compress.base import (
    COMPRESSION_FILE,
    CompressContext,
    MethodSpec,
    parse_methods,
    save_variant,
)
from modelyard.inference import predict_proba
from modelyard.registry.kinds import ARTIFACT_KINDS
from modelyard.registry.manifest import parent_of, read_manifest
from modelyard.testing.backend_checks import TEXTS, check_backend
from modelyard.testing.contract import Contract


def check_compression_method(
    name: str,
    ctx: CompressContext,
    arg: str | None = None,
    *,
    out: str | Path,
    texts: Sequence[str] | None = None,
    atol: float = 1e-5,
    parent_atol: float = 0.2,
    batch_atol: float | None = None,
) -> Path:
    """Check a registered compression method on the parent run of `ctx`.

    The spec `name[:arg]` parses; the method leaves the parent's weights and config alone;
    the variant's kind is a known artifact kind and its in-memory predictions are
    probabilities no further than `parent_atol` from the parent's; saved at `out`, the
    variant is an artifact whose manifest names its kind and its parent, whose
    compression.json names the spec, which `load_backend` serves with the parent's labels,
    predicting what the variant did in memory (within `atol`) and keeping the backend
    contract (`check_backend`, with `batch_atol`). Returns the variant's path; raises AssertionError naming
    the broken clause.
    """
    c = Contract("compression method", name)
    c.require(
        name in COMPRESSION_METHODS,
        "is registered in COMPRESSION_METHODS (with register_compression_method)",
    )
    label = MethodSpec(name, arg).label
    [spec] = parse_methods([label])
    batch = list(texts or TEXTS)
    parent = predict_proba(ctx.run, batch).probs
    before = _snapshot(ctx.run.model)
    variant = COMPRESSION_METHODS.get(name)(ctx, spec.arg)
    _check_parent_unchanged(c, before, _snapshot(ctx.run.model))
    c.require(
        variant.kind in ARTIFACT_KINDS,
        "the variant's kind is a known artifact kind",
        f"'{variant.kind}' is not one of {sorted(ARTIFACT_KINDS)}",
    )
    probs, _ = c.probabilities(variant.predict_proba(batch), len(batch), ctx.run.labels)
    gap = float(np.abs(probs - parent).max())
    c.require(
        gap <= parent_atol,
        "the variant predicts close to its parent",
        f"largest probability difference {gap:.3g} (allowed {parent_atol})",
    )
    path = save_variant(variant, ctx, spec, Path(out))
    _check_artifact(c, path, variant.kind, ctx, label)
    reloaded = load_backend(path)
    c.require(reloaded.labels == ctx.run.labels, "the saved variant has its parent's labels")
    again, _ = c.probabilities(reloaded.predict_proba(batch), len(batch), ctx.run.labels)
    c.require(
        np.allclose(again, probs, atol=atol),
        "the saved variant predicts what it did in memory",
        f"largest difference {np.abs(again - probs).max():.3g} (atol {atol})",
    )
    check_backend(reloaded, batch, atol=atol, batch_atol=batch_atol)
    return path


def _snapshot(model: Any) -> dict[str, Any]:
    return {
        "weights": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "config": model.config.to_dict() if hasattr(model, "config") else None,
    }


def _check_parent_unchanged(c: Contract, before: dict[str, Any], after: dict[str, Any]) -> None:
    c.require(after["config"] == before["config"], "leaves the parent's config unchanged")
    c.require(
        after["weights"].keys() == before["weights"].keys(),
        "leaves the parent's weights unchanged",
        "the parent's parameter names changed",
    )
    for key, value in before["weights"].items():
        c.require(
            torch.equal(after["weights"][key], value),
            "leaves the parent's weights unchanged",
            f"{key} changed",
        )


def _check_artifact(c: Contract, path: Path, kind: str, ctx: CompressContext, label: str) -> None:
    manifest = read_manifest(path)
    c.require(
        manifest.get("kind") == kind,
        "the saved variant's manifest names its kind",
        f"got {manifest.get('kind')!r}, expected {kind!r}",
    )
    c.require(
        parent_of(path, manifest) == ctx.run.path.resolve(),
        "the saved variant's manifest names its parent run",
        f"got {manifest.get('parent')!r}",
    )
    info = json.loads((path / COMPRESSION_FILE).read_text(encoding="utf-8"))
    c.require(info.get("method") == label, f"{COMPRESSION_FILE} names the method's spec")
