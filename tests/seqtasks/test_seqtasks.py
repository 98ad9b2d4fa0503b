"""Multi-label and regression runs through train → save → load → predict → evaluate, on the
tiny BERT with data built in the test."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modelyard
from modelyard.errors import DataError, RecipeError
from modelyard.recipe import build_recipe
from modelyard.registry.manifest import read_manifest
from modelyard.seqtasks import load_head_run
from modelyard.seqtasks.data import parse_labels, target_checks
from modelyard.seqtasks.heads import regression_metrics, task_metrics, tune_thresholds
from tests.conftest import FILLER, WORDS, write_csv

TOPICS = sorted(WORDS)  # account, billing, shipping


def multi_label_rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Rows naming one or two topics; the label cell lists them (JSON or `|`-joined)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topics = sorted(rng.sample(TOPICS, rng.choice([1, 1, 2])))
        words = [w for t in topics for w in rng.sample(WORDS[t], 2)] + rng.sample(FILLER, 3)
        rng.shuffle(words)
        cell = json.dumps(topics) if i % 2 else "|".join(topics)
        rows.append((" ".join(words), cell))
    return rows


def regression_rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Rows whose target is 10 times the number of billing words, plus noise."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        k = rng.randint(0, 3)
        words = rng.sample(WORDS["billing"], k) + rng.sample(FILLER, 4)
        rng.shuffle(words)
        rows.append((" ".join(words), f"{10 * k + rng.uniform(-1, 1):.3f}"))
    return rows


def _recipe(tmp_path: Path, backbone: Path, task: str, data: Path, **train: Any) -> Any:
    return build_recipe(
        {
            "task": task,
            "run": {"name": task, "output_dir": str(tmp_path / "runs"), "seed": 5},
            "data": {"path": str(data), "split": {"dev": 0.2, "test": 0.2}},
            "model": {"backbone": str(backbone), "max_length": 32},
            "train": {
                "epochs": 8,
                "batch_size": 8,
                "lr": 5e-3,
                "precision": "fp32",
                "checkpoint_every": None,
                "num_threads": 1,
                **train,
            },
        },
        "recipe",
        [],
    )


def test_multi_label_trains_tunes_thresholds_and_predicts_label_sets(
    tmp_path: Path, tiny_backbone: Path
) -> None:
    data = write_csv(tmp_path / "ml.csv", multi_label_rows(150))
    result = modelyard.train(_recipe(tmp_path, tiny_backbone, "multi-label", data), progress=False)
    m = result.metrics
    assert m["micro_f1"] > 0.7 and m["subset_accuracy"] > 0.4
    assert set(m["per_label"]) == set(TOPICS)
    assert all(0 < v["threshold"] < 1 for v in m["per_label"].values())
    assert read_manifest(result.run_dir)["kind"] == "multi-label-classifier"
    run = load_head_run(result.run_dir)
    assert run.head["thresholds_tuned_on"] == "dev"
    [answer] = modelyard.predict(result.run_dir, "refund invoice password login the")
    assert set(answer) == {"labels", "probabilities", "truncated"}
    assert list(answer["probabilities"]) == sorted(
        answer["probabilities"], key=lambda k: -answer["probabilities"][k]
    )
    assert "billing" in answer["labels"]
    other = write_csv(tmp_path / "more.csv", multi_label_rows(30, seed=9))
    assert modelyard.evaluate(result.run_dir, other)["rows"] == 30


def test_regression_trains_and_predicts_numbers(tmp_path: Path, tiny_backbone: Path) -> None:
    data = write_csv(tmp_path / "reg.csv", regression_rows(150))
    recipe = _recipe(tmp_path, tiny_backbone, "regression", data, method="lora", lr=1e-2)
    assert recipe.train.early_stopping.metric == "loss"
    result = modelyard.train(recipe, progress=False)
    m = result.metrics
    assert set(m) >= {"mse", "rmse", "mae", "pearson", "spearman"}
    assert m["pearson"] is not None and m["pearson"] > 0.5
    assert result.data_report["target"]["min"] < 1 and result.data_report["target"]["max"] > 29
    assert read_manifest(result.run_dir)["kind"] == "regressor"
    low, high = modelyard.predict(result.run_dir, ["the my help", "refund invoice price bill"])
    assert high["value"] > low["value"] and low["truncated"] is False


def test_multi_label_cells_and_their_errors(tmp_path: Path, tiny_backbone: Path) -> None:
    assert parse_labels('["b", "a", "a"]', "|") == ["a", "b"]
    assert parse_labels("b | a", "|") == ["a", "b"] and parse_labels("", "|") == []
    with pytest.raises(ValueError, match="JSON list"):
        parse_labels("[1, 2]", "|")
    bad = write_csv(tmp_path / "bad.csv", [("a text", "[broken")] * 10)
    with pytest.raises(DataError, match="row 2: the target must be a JSON list"):
        modelyard.train(_recipe(tmp_path, tiny_backbone, "multi-label", bad), progress=False)


def test_regression_refuses_what_is_not_a_number(tmp_path: Path, tiny_backbone: Path) -> None:
    bad = write_csv(tmp_path / "bad.csv", [("a text", "1.5")] * 5 + [("b text", "high")] * 5)
    with pytest.raises(DataError, match="row 7: the target must be a number"):
        modelyard.train(_recipe(tmp_path, tiny_backbone, "regression", bad), progress=False)
    with pytest.raises(RecipeError, match="early-stops on the dev loss"):
        build_recipe(
            {
                "task": "regression",
                "data": {"path": "x.csv"},
                "train": {"early_stopping": {"metric": "accuracy"}},
            },
            "recipe",
            [],
        )


def test_target_checks_report_range_and_outliers() -> None:
    report = target_checks([1.0, 2.0, 2.0, 3.0, 2.5, 100.0])["target"]
    assert report["min"] == 1.0 and report["max"] == 100.0 and report["outliers"] == 1


def test_metrics_and_thresholds() -> None:
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=np.float32)
    logits = np.array([[2.0, -2.0], [-2.0, 0.3], [1.0, -0.2], [-1.0, -3.0]])
    m = task_metrics("multi-label", logits, y, [0.5, 0.5], ["a", "b"])
    assert m["subset_accuracy"] == 0.75 and m["per_label"]["a"]["f1"] == 1.0
    assert tune_thresholds(1 / (1 + np.exp(-logits)), y)[0] <= 0.7
    r = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
    assert r["mae"] == pytest.approx(1 / 3, abs=1e-6) and r["spearman"] == pytest.approx(1.0)
    assert regression_metrics(np.ones(3), np.ones(3))["pearson"] is None
