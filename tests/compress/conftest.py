"""A tiny trained run and a compression context over it, shared by the compression tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import modelyard
from modelyard.compress import CompressContext, compress_config
from modelyard.recipe import build_recipe
from modelyard.registry import load_run
from tests.conftest import make_rows, write_csv

# small enough that every method runs in about a second on the tiny model
FAST = [
    "compress.quantize.calibration_samples=16",
    "compress.quantize.parity_samples=8",
    "compress.prune.importance_samples=32",
    "compress.prune.recovery_steps=3",
    "compress.distill.epochs=2",
    "compress.distill.batch_size=16",
    "compress.speed_samples=8",
    "compress.latency_runs=3",
    "compress.rounds=1",
    "compress.threads=1",
    "compress.isolate_memory=false",
]


def train_tiny_run(tmp: Path, backbone: Path, pooling: str = "cls") -> Path:
    """Train a tiny 3-class run to high accuracy (its test split has 30 rows); return its folder."""
    data = write_csv(tmp / "data.csv", make_rows(150))
    recipe = build_recipe(
        {
            "run": {"name": "tiny", "output_dir": str(tmp / "runs"), "seed": 7},
            "data": {"path": str(data), "split": {"dev": 0.0, "test": 0.2}},
            "model": {"backbone": str(backbone), "max_length": 32, "pooling": pooling},
            "train": {
                "epochs": 4,
                "batch_size": 8,
                "lr": 5e-3,
                "precision": "fp32",
                "num_threads": 1,
                "checkpoint_every": None,
            },
            "evaluate": {"speed": False},
        }
    )
    return modelyard.train(recipe, progress=False).run_dir


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    """A tiny 3-class run trained to high accuracy (its test split has 30 rows)."""
    return train_tiny_run(tmp_path_factory.mktemp("compress-run"), tiny_backbone)


@pytest.fixture(scope="session")
def ctx(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> CompressContext:
    """A compression context over the tiny run with fast settings, on one thread."""
    run = load_run(trained_run)
    cfg = compress_config(run.recipe, FAST)
    return CompressContext(run, cfg, tmp_path_factory.mktemp("compress-work"), seed=7, threads=1)


def texts(n: int = 12, seed: int = 3) -> list[str]:
    """Return n texts of the toy task, unseen in training."""
    return [t for t, _ in make_rows(n, seed=seed)]


def snapshot(model: Any) -> dict[str, Any]:
    """Return a copy of a model's weights and config, to check it was not changed."""
    return {
        "weights": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "config": model.config.to_dict(),
    }


@pytest.fixture(scope="session")
def onnx_artifact(ctx: CompressContext, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny run exported to ONNX and saved as an `onnx-classifier` artifact."""
    from modelyard.compress import COMPRESSION_METHODS
    from modelyard.compress.base import MethodSpec, save_variant

    variant = COMPRESSION_METHODS.get("onnx")(ctx, None)
    return save_variant(
        variant, ctx, MethodSpec("onnx", None), tmp_path_factory.mktemp("onnx") / "onnx"
    )
