"""Self-training: pseudo-label selection, and the recipe option end to end on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modelyard
from modelyard.errors import DataError
from modelyard.methods.selftrain import read_unlabelled, select_pseudo_labels
from modelyard.recipe import build_recipe
from tests.conftest import make_rows, write_csv


def _probs(seed: int = 0, n: int = 300, classes: int = 3) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(n, classes)) * 3
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


@pytest.mark.parametrize("threshold", [0.5, 0.8, 0.95])
def test_pseudo_labels_respect_the_threshold(threshold: float) -> None:
    probs = _probs()
    rows, labels = select_pseudo_labels(probs, threshold, np.full(3, 1 / 3))
    assert len(rows) > 0 and len(set(rows.tolist())) == len(rows)
    assert (probs[rows].max(axis=1) >= threshold).all()
    assert (probs[rows].argmax(axis=1) == labels).all()


def test_pseudo_labels_follow_the_labelled_class_shares() -> None:
    probs = _probs(1)
    rows, labels = select_pseudo_labels(probs, 0.6, np.array([0.5, 0.25, 0.25]))
    counts = np.bincount(labels, minlength=3)
    assert counts[0] == 2 * counts[1] == 2 * counts[2] or abs(counts[0] - 2 * counts[1]) <= 1
    confident = probs.max(axis=1) >= 0.6
    scarce = min(
        np.sum(confident & (probs.argmax(axis=1) == c)) / s
        for c, s in [(0, 0.5), (1, 0.25), (2, 0.25)]
    )
    assert len(rows) == pytest.approx(scarce, abs=3)
    for label in range(3):  # the most confident rows of each class are taken first
        taken = probs[rows[labels == label]].max(axis=1)
        left = probs[np.setdiff1d(np.nonzero(confident & (probs.argmax(axis=1) == label))[0], rows)]
        if len(left):
            assert taken.min() >= left.max(axis=1).max()


def test_pseudo_labels_cap_and_empty_cases() -> None:
    probs = _probs(2)
    rows, labels = select_pseudo_labels(probs, 0.5, np.full(3, 1 / 3), max_per_class=4)
    assert len(rows) > 0 and np.bincount(labels, minlength=3).max() <= 4
    assert len(select_pseudo_labels(probs, 0.99999, np.full(3, 1 / 3))[0]) == 0
    assert len(select_pseudo_labels(np.zeros((0, 3)), 0.5, np.full(3, 1 / 3))[0]) == 0


def test_pseudo_labels_total_limits_and_splits_by_share() -> None:
    probs = _probs(3)
    rows, labels = select_pseudo_labels(probs, 0.0, np.array([0.5, 0.25, 0.25]), total=40)
    assert np.bincount(labels, minlength=3).tolist() == [20, 10, 10]
    for label in range(3):  # the most confident of each predicted class
        mine = np.nonzero(probs.argmax(axis=1) == label)[0]
        cut = np.sort(probs[mine].max(axis=1))[::-1][len(rows[labels == label]) - 1]
        assert (probs[rows[labels == label]].max(axis=1) >= cut).all()


def _self_train_stub(cfg: Any, pool_probs: np.ndarray) -> dict[str, Any]:
    """Run self_train with a fake model whose pool predictions are `pool_probs`."""
    import torch

    from modelyard.methods.selftrain import self_train
    from modelyard.models.encoding import Encoded

    def enc(n: int, start: int = 0) -> Encoded:
        return Encoded([[start + i] for i in range(n)], None, [i % 2 for i in range(n)], 0)

    def predict(data: Encoded) -> np.ndarray:
        ids = [row[0] for row in data.input_ids]
        return np.stack([pool_probs[i] if i < 1000 else np.array([0.5, 0.5]) for i in ids])

    fitted: list[int] = []
    model = torch.nn.Linear(1, 1)
    data = (enc(10, 1000), enc(4, 2000), enc(4, 3000))
    report = self_train(
        cfg, model, lambda e: fitted.append(len(e)), predict, data, enc(len(pool_probs))
    )
    report["fitted"] = fitted
    return report


def test_top_fraction_pseudo_labels_a_share_of_the_pool_when_nothing_is_confident() -> None:
    from modelyard.recipe import SelfTrainingConfig

    confidence = np.linspace(0.55, 0.75, 100)  # never 0.9
    probs = np.stack([confidence, 1 - confidence], axis=1)
    probs[1::2] = probs[1::2, ::-1]
    fixed = _self_train_stub(SelfTrainingConfig(unlabelled=Path("u")), probs)
    assert fixed["pseudo_labels_used"] == 0 and fixed["fitted"] == []
    assert "no unlabelled row reached threshold 0.9" in fixed["rounds"][1]["stopped"]
    assert "0.750" in fixed["rounds"][1]["stopped"]
    top = _self_train_stub(
        SelfTrainingConfig(unlabelled=Path("u"), top_fraction=0.2, rounds=2), probs
    )
    assert [r["added"] for r in top["rounds"]] == [0, 20, 20]
    assert top["fitted"] == [30, 50]  # 10 labelled + 20, then + 20 more
    assert top["threshold"] is None and top["top_fraction"] == 0.2


def test_unlabelled_file_errors(tmp_path: Path) -> None:
    bad = write_csv(tmp_path / "u.csv", [("x", "y")], header=("body", "other"))
    recipe = build_recipe(
        {"data": {"path": "d.csv"}, "train": {"self_training": {"unlabelled": str(bad)}}}
    )
    assert recipe.train.self_training is not None
    with pytest.raises(DataError, match=r"train.self_training.unlabelled.*no column\(s\) text"):
        read_unlabelled(recipe.train.self_training, recipe.data)


def test_unlabelled_texts_are_redacted_when_the_recipe_says_so(tmp_path: Path) -> None:
    pool = write_csv(tmp_path / "u.csv", [("mail a@b.com now", ""), ("  ", ""), ("plain", "")])
    recipe = build_recipe(
        {
            "data": {"path": "d.csv", "redact_pii": True},
            "train": {"self_training": {"unlabelled": str(pool)}},
        }
    )
    assert recipe.train.self_training is not None
    split = read_unlabelled(recipe.train.self_training, recipe.data)
    assert split.texts == ["mail [EMAIL] now", "plain"]


@pytest.fixture(scope="module")
def self_trained(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Any:
    tmp = tmp_path_factory.mktemp("selftrain")
    rows = make_rows(300, seed=5)
    data = write_csv(tmp / "data.csv", rows[:150])
    pool = write_csv(tmp / "pool.csv", [(t, "") for t, _ in rows[150:]])
    recipe = build_recipe(
        {
            "run": {"name": "st", "output_dir": str(tmp / "runs"), "seed": 7},
            "data": {"path": str(data), "split": {"dev": 0.2, "test": 0.2}},
            "model": {"backbone": str(tiny_backbone), "max_length": 32},
            "train": {
                "epochs": 8,
                "batch_size": 8,
                "lr": 5e-3,
                "precision": "fp32",
                "num_threads": 1,
                "checkpoint_every": None,
                "early_stopping": {"patience": None},
                "self_training": {"unlabelled": str(pool), "threshold": 0.6, "rounds": 2},
            },
            "evaluate": {"speed": False},
        }
    )
    return modelyard.train(recipe, progress=False)


def test_self_training_reports_every_round(self_trained: Any) -> None:
    report = self_trained.training["self_training"]
    rounds = report["rounds"]
    assert rounds[0]["round"] == 0 and rounds[0]["added"] == 0
    assert 1 <= len(rounds) - 1 <= 2
    assert sum(r["added"] for r in rounds) <= report["unlabelled_rows"] == 150
    assert rounds[1]["added"] > 0
    kept = report["kept_round"]
    assert report["pseudo_labels_used"] == sum(r["added"] for r in rounds[1 : kept + 1])
    assert report["test_accuracy_gain"] == pytest.approx(
        rounds[kept]["test_accuracy"] - rounds[0]["test_accuracy"], abs=1e-4
    )
    # the kept round is the best on dev, and the saved model is that round's model
    assert rounds[kept]["dev_accuracy"] == max(r.get("dev_accuracy") or 0 for r in rounds)
    assert self_trained.metrics["accuracy"] == pytest.approx(rounds[kept]["test_accuracy"])


def test_self_training_reaches_metrics_and_model_card(self_trained: Any) -> None:
    saved = json.loads((self_trained.run_dir / "metrics.json").read_text())
    assert saved["training"]["self_training"]["rounds"]
    assert "Self-training:" in (self_trained.run_dir / "MODEL_CARD.md").read_text()


def test_recipe_rules_for_self_training(tmp_path: Path) -> None:
    from modelyard.errors import RecipeError
    from modelyard.recipe import load_recipe

    path = tmp_path / "r.yaml"
    path.write_text("data: {path: d.csv}\ntrain: {self_training: {unlabelled: pool.csv}}\n")
    loaded = load_recipe(path)
    assert loaded.train.self_training is not None
    assert loaded.train.self_training.unlabelled == tmp_path / "pool.csv"  # relative to the file
    with pytest.raises(RecipeError, match="self_training cannot be combined with privacy"):
        build_recipe(
            {
                "data": {"path": "d.csv"},
                "privacy": {"target_epsilon": 8},
                "train": {"self_training": {"unlabelled": "u.csv"}},
            }
        )
    with pytest.raises(RecipeError, match="threshold or top_fraction, not both"):
        build_recipe(
            {
                "data": {"path": "d.csv"},
                "train": {
                    "self_training": {"unlabelled": "u", "threshold": 0.8, "top_fraction": 0.1}
                },
            }
        )
    with pytest.raises(RecipeError, match=r"train.self_training.threshold"):
        build_recipe(
            {
                "data": {"path": "d.csv"},
                "train": {"self_training": {"unlabelled": "u", "threshold": 1.5}},
            }
        )
