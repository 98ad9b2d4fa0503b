"""The compression check failing on deliberately broken methods.
(The compression-method sweep itself is tests/compress/test_contract.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from modelyard.compress import COMPRESSION_METHODS, CompressContext, compress_config
from modelyard.registry import LoadedRun, load_run
from modelyard.testing import check_compression_method
from tests.compress.conftest import FAST


@pytest.fixture()
def fresh_ctx(classifier_run: LoadedRun, tmp_path: Path) -> CompressContext:
    """A context over a fresh load of the tiny classifier run, which a broken method may spoil."""
    run = load_run(classifier_run.path)
    return CompressContext(run, compress_config(run.recipe, FAST), tmp_path / "work", threads=1)


def _fp16_that_spoils_the_parent(ctx: CompressContext, arg: str | None) -> Any:
    variant = COMPRESSION_METHODS.get("fp16")(ctx, arg)
    with torch.no_grad():  # e.g. quantizing the parent in place instead of a copy
        next(ctx.run.model.parameters()).mul_(0.5)
    return variant


class Forgetful:
    """A variant that predicts from its parent in memory but saves the untrained backbone."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.details, self.kind = inner, inner.details, inner.kind

    def predict_proba(self, texts: list[str]) -> Any:
        return self.inner.predict_proba(texts)

    def save(self, directory: Path) -> None:
        self.inner.save(directory)
        path = str(directory / "model.safetensors")
        save_file({k: torch.zeros_like(v) for k, v in load_file(path).items()}, path)


@pytest.mark.parametrize(
    ("method", "clause"),
    [
        (_fp16_that_spoils_the_parent, "leaves the parent's weights unchanged"),
        (
            lambda ctx, arg: Forgetful(COMPRESSION_METHODS.get("fp16")(ctx, arg)),
            "the saved variant predicts what it did in memory",
        ),
    ],
    ids=["spoils-its-parent", "saves-other-weights"],
)
def test_a_broken_compression_method_fails_naming_the_clause(
    method: Any,
    clause: str,
    fresh_ctx: CompressContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(COMPRESSION_METHODS._items, "broken", method)
    with pytest.raises(AssertionError, match=f"compression method 'broken' breaks .*{clause}"):
        check_compression_method("broken", fresh_ctx, out=tmp_path / "variant", atol=1e-2)


def test_an_unregistered_method_fails(fresh_ctx: CompressContext, tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="'tflite' breaks .*registered in COMPRESSION_METHODS"):
        check_compression_method("tflite", fresh_ctx, out=tmp_path / "variant")
