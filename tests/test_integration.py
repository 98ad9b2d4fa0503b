"""The real bundled backbone on a small slice of the demo data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import modelyard
from modelyard.api import demo_data_path
from modelyard.recipe import build_recipe


@pytest.mark.integration
def test_minilm_fine_tunes_on_200_demo_rows(tmp_path: Path) -> None:
    rows = pd.read_csv(demo_data_path(), keep_default_na=False).head(260)
    rows.to_csv(tmp_path / "slice.csv", index=False)
    recipe = build_recipe(
        {
            "run": {"name": "slice", "output_dir": str(tmp_path / "runs"), "seed": 1},
            "data": {"path": str(tmp_path / "slice.csv"), "split": {"dev": 0.1, "test": 0.2}},
            "model": {"backbone": "minilm-l6", "max_length": 48},
            "train": {"epochs": 3, "batch_size": 16, "lr": 1e-4, "checkpoint_every": None},
            "evaluate": {"speed_samples": 16},
        }
    )
    result = modelyard.train(recipe, progress=False)
    assert result.training["train_samples"] >= 3 * 180
    majority = max(result.data_report["class_counts"]["test"].values()) / result.metrics["n"]
    assert result.metrics["accuracy"] > majority + 0.2
    [pred] = modelyard.predict(
        result.run_dir, "my parcel never arrived and the tracking number is wrong"
    )
    assert pred["label"] == "shipping"
