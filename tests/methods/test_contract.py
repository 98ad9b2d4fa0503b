"""One contract over every registered training method: train, save, reload, predict the same."""

from __future__ import annotations

from pathlib import Path

import pytest

import modelyard
from modelyard.backends import load_backend
from modelyard.methods import METHODS
from modelyard.recipe import build_recipe
from modelyard.registry import load_run
from tests.methods.conftest import with_train

OPTIONS = {"setfit": {"setfit": {"pairs_per_example": 2, "batch_size": 8}}}


@pytest.mark.parametrize("name", METHODS.names())
def test_method_trains_saves_and_reloads_to_the_same_predictions(
    name: str, method_recipe: dict, split_files: tuple[Path, Path]
) -> None:
    recipe = build_recipe(
        with_train(method_recipe, method=name, max_steps=2, **OPTIONS.get(name, {}))
    )
    result = modelyard.train(recipe, progress=False)
    manifest = load_run(result.run_dir).manifest
    assert manifest["kind"] == METHODS.get(name).kind and manifest["method"] == name
    assert 0 < result.training["trainable_pct"] <= 100
    assert result.training["weights_bytes"] > 0 and result.training["peak_rss_mb"] > 0
    again = modelyard.evaluate(result.run_dir, split_files[1])
    assert again["n"] == result.metrics["n"] == 30
    assert again["log_loss"] == pytest.approx(result.metrics["log_loss"], rel=1e-4)
    assert again["confusion_matrix"] == result.metrics["confusion_matrix"]
    texts = ["refund my card", "parcel late again"]
    backend = load_backend(result.run_dir)
    served, _ = backend.predict_proba(texts)
    direct = modelyard.predict(result.run_dir, texts)
    for row, probs in zip(direct, served, strict=True):
        expected = [row[f"prob_{label}"] for label in backend.labels]
        assert list(probs) == pytest.approx(expected, abs=1e-5)
