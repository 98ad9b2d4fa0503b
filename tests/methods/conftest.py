"""Fixtures of the methods tests: own train/test files, so a reloaded run can be re-scored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_rows, write_csv


def make_split_files(folder: Path) -> tuple[Path, Path]:
    """Write a 90-row training file and a 30-row test file of the 3-class tiny task."""
    rows = make_rows(120)
    return write_csv(folder / "train.csv", rows[:90]), write_csv(folder / "test.csv", rows[90:])


def make_recipe(tmp_path: Path, backbone: Path, files: tuple[Path, Path]) -> dict:
    """Return a recipe dict for the tiny backbone: fp32, one thread, no dev split, one epoch."""
    train, test = files
    return {
        "run": {"name": "m", "output_dir": str(tmp_path / "runs"), "seed": 3},
        "data": {"train": str(train), "test": str(test), "split": {"dev": 0.0, "test": 0.0}},
        "model": {"backbone": str(backbone), "max_length": 32},
        "train": {
            "epochs": 1,
            "batch_size": 8,
            "lr": 5e-3,
            "precision": "fp32",
            "checkpoint_every": None,
            "num_threads": 1,
        },
        "evaluate": {"speed": False},
    }


@pytest.fixture()
def split_files(tmp_path: Path) -> tuple[Path, Path]:
    """A 90-row training file and a 30-row test file of the 3-class tiny task."""
    return make_split_files(tmp_path)


@pytest.fixture()
def method_recipe(tmp_path: Path, tiny_backbone: Path, split_files: tuple[Path, Path]) -> dict:
    """A recipe dict for the tiny backbone on the split files."""
    return make_recipe(tmp_path, tiny_backbone, split_files)


def with_train(recipe: dict, **train: Any) -> dict:
    """Return a copy of `recipe` with `train` keys replaced."""
    return {**recipe, "train": {**recipe["train"], **train}}
