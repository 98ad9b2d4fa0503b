"""`evaluate --robustness` on a trained run, and the old module path of the noises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import modelyard
from modelyard.evaluation import NOISES
from modelyard.recipe import build_recipe


def test_evaluate_with_robustness_reports_clean_and_noisy_accuracy(
    method_recipe: dict, split_files: tuple[Path, Path]
) -> None:
    result: Any = modelyard.train(build_recipe(method_recipe), progress=False)
    metrics = modelyard.evaluate(result.run_dir, split_files[1], robustness=True)
    report = metrics["robustness"]
    assert report["clean_accuracy"] == pytest.approx(metrics["accuracy"])
    assert set(report["noise"]) == set(NOISES)
    for value in report["noise"].values():
        assert value["drop"] == pytest.approx(report["clean_accuracy"] - value["accuracy"])
    assert (Path(metrics["report_dir"]) / "robustness.md").read_text().count("|") > 20


def test_old_module_path_still_works() -> None:
    from modelyard.evaluation import robustness as new
    from modelyard.methods import robustness as old

    assert old.NOISES is new.NOISES and old.perturb is new.perturb
    with (
        pytest.warns(DeprecationWarning, match="modelyard.evaluation"),
        pytest.raises(ValueError, match="noise rate must be in"),
    ):
        old.robustness_metrics(None, None, rate=0)  # type: ignore[arg-type]
