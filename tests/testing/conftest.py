"""One tiny artifact of every artifact kind, made once per session for the contract sweeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelyard.compress import COMPRESSION_METHODS, CompressContext, compress_config
from modelyard.compress.base import MethodSpec, save_variant
from modelyard.pipeline import run_training
from modelyard.recipe import build_recipe
from modelyard.registry import LoadedRun, load_run
from tests.compress.conftest import FAST
from tests.methods.conftest import make_recipe, make_split_files


def _train(base: dict[str, Any], name: str, method: str, pooling: str = "cls") -> Path:
    recipe = {
        **base,
        "run": {**base["run"], "name": name},
        "model": {**base["model"], "pooling": pooling},
        "train": {**base["train"], "method": method, "max_steps": 6},
    }
    return run_training(build_recipe(recipe), progress=False).run_dir


def _compress(ctx: CompressContext, spec: str, out: Path) -> Path:
    name, _, arg = spec.partition(":")
    variant = COMPRESSION_METHODS.get(name)(ctx, arg or None)
    return save_variant(variant, ctx, MethodSpec(name, arg or None), out / spec.replace(":", "-"))


@pytest.fixture(autouse=True)
def _sweeps_on_one_thread(one_thread: None) -> None:
    """Every test here runs its tiny models on one thread."""


@pytest.fixture(scope="session")
def base_recipe(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> dict[str, Any]:
    """A recipe dict for the tiny backbone with its own 90/30-row train and test files."""
    folder = tmp_path_factory.mktemp("contract-data")
    return make_recipe(folder, tiny_backbone, make_split_files(folder))


@pytest.fixture(scope="session")
def classifier_run(base_recipe: dict[str, Any]) -> LoadedRun:
    """The tiny classifier run (full fine-tuning, a few steps), loaded."""
    return load_run(_train(base_recipe, "classifier", "full"))


@pytest.fixture(scope="session")
def artifacts(
    base_recipe: dict[str, Any],
    classifier_run: LoadedRun,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Path]:
    """{artifact kind: a tiny artifact of that kind}, for every built-in kind."""
    work = tmp_path_factory.mktemp("contract-variants")
    ctx = CompressContext(
        classifier_run, compress_config(classifier_run.recipe, FAST), work, seed=7, threads=1
    )
    return {
        "classifier": classifier_run.path,
        "adapter-classifier": _train(base_recipe, "adapter", "lora"),
        "embedding-classifier": _train(base_recipe, "embedding", "full", pooling="mean"),
        "onnx-classifier": _compress(ctx, "onnx", work),
        "torch-compressed-classifier": _compress(ctx, "prune-ffn:0.3", work),
    }
