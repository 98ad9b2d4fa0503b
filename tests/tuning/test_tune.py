"""`modelyard tune`: trials are runs of the tiny BERT; the study resumes, prunes and reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from modelyard.api import tune
from modelyard.recipe import build_recipe, load_recipe
from modelyard.tuning import TuningError
from modelyard.tuning import study as study_module
from modelyard.tuning.report import best_so_far
from modelyard.tuning.study import _Reporter
from tests.test_cli import run_cli

SPACE = ["train.lr=loguniform:1e-3:1e-2", "train.epochs=int:1:2"]


@pytest.fixture()
def recipe_file(tmp_path: Path, tiny_recipe: dict[str, Any]) -> Path:
    """The tiny recipe as a file, cut to what a trial needs (no speed measurement)."""
    raw = {
        **tiny_recipe,
        "train": {**tiny_recipe["train"], "epochs": 1, "checkpoint_every": None},
        "evaluate": {"speed": False},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_a_study_runs_writes_its_best_recipe_and_resumes(recipe_file: Path) -> None:
    first = tune(recipe_file, SPACE, trials=1, pruner="none", progress=False)
    assert [t["state"] for t in first.trials] == ["complete"]
    assert first.study.is_file() and first.study.parent.name == "tiny-tune"
    assert first.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = load_recipe(first.best_recipe)
    assert best.run.name == "tiny-tuned"
    assert best.train.lr == first.best_params["train.lr"]
    assert best.train.epochs == first.best_params["train.epochs"]
    for trial in first.trials:  # every trial is a full run with its test figures
        assert (Path(trial["run_dir"]) / "metrics.json").is_file()
        assert 0.0 <= trial["test"]["accuracy"] <= 1.0
    # running again resumes: the finished trial counts, one more runs
    again = tune(recipe_file, SPACE, trials=2, pruner="none", progress=False)
    assert len(again.trials) == 2
    assert again.trials[0]["params"] == first.trials[0]["params"]
    summary = json.loads((again.tune_dir / "tune.json").read_text(encoding="utf-8"))
    assert len(summary["trials"]) == 2 and summary["best_trial"] == again.best_trial
    # a study of another space is not silently mixed in
    with pytest.raises(TuningError, match="holds a study of"):
        tune(recipe_file, SPACE[:1], trials=3, pruner="none", progress=False)


def test_a_trial_is_pruned_on_its_dev_metric(
    recipe_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a pruner that stops every trial at its first dev evaluation: the hook reaches the trainer
    monkeypatch.setattr(
        study_module,
        "_pruner",
        lambda name: optuna.pruners.ThresholdPruner(lower=2.0, n_warmup_steps=0),
    )
    overrides = ["train.epochs=3", "train.eval_every=null"]
    with pytest.raises(TuningError, match="no trial of .* finished; every one was pruned"):
        tune(recipe_file, SPACE[:1], trials=1, overrides=overrides, progress=False)
    stored = optuna.load_study(
        study_name="tiny", storage=f"sqlite:///{recipe_file.parent / 'runs/tiny-tune/study.db'}"
    )
    (trial,) = stored.trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert list(trial.intermediate_values) == [0]  # pruned after its first of three evaluations


class _FakeTrial:
    def __init__(self, prune: bool) -> None:
        self.prune = prune
        self.reported: list[tuple[float, int]] = []

    def report(self, value: float, step: int) -> None:
        self.reported.append((value, step))

    def should_prune(self) -> bool:
        return self.prune


def test_the_reporter_counts_dev_evaluations_and_prunes() -> None:
    trial = _FakeTrial(prune=False)
    reporter = _Reporter(trial, "accuracy")
    reporter.record({"step": 3, "epoch": 0, "loss": 0.5})  # a training step: nothing to report
    reporter.record({"step": 4, "epoch": 1, "dev": {"accuracy": 0.5, "loss": 0.7}})
    reporter.record({"step": 8, "epoch": 2, "dev": {"accuracy": 0.6, "loss": 0.6}})
    assert trial.reported == [(0.5, 0), (0.6, 1)]
    with pytest.raises(optuna.TrialPruned):
        _Reporter(_FakeTrial(prune=True), "accuracy").record({"dev": {"accuracy": 0.1}})


def test_best_so_far_follows_the_direction() -> None:
    assert best_so_far([0.5, 0.4, 0.7, 0.6], maximize=True) == [0.5, 0.5, 0.7, 0.7]
    assert best_so_far([0.5, 0.4, 0.7, 0.3], maximize=False) == [0.5, 0.4, 0.4, 0.3]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"trials": 0}, "--trials must be 1 or more"),
        ({"parallel": 0}, "--parallel must be 1 or more"),
        ({"pruner": "asha"}, "unknown pruner 'asha'"),
    ],
)
def test_bad_search_options_are_clear_errors(
    tmp_path: Path, tiny_recipe: dict[str, Any], options: dict[str, Any], message: str
) -> None:
    with pytest.raises(TuningError, match=message):
        tune(build_recipe(tiny_recipe), SPACE, **options)
    assert not (tmp_path / "runs").exists()  # nothing ran


def test_the_command_reports_a_bad_param_in_one_line(
    recipe_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        ["tune", str(recipe_file), "--param", "train.lrr=loguniform:1e-5:1e-3"], monkeypatch, capsys
    )
    assert code == 2
    assert "unknown recipe key 'lrr'" in err and "Traceback" not in err


@pytest.mark.slow  # a spawned process imports torch and modelyard afresh
def test_parallel_processes_share_one_study(recipe_file: Path) -> None:
    result = tune(recipe_file, SPACE, trials=2, pruner="none", parallel=2, progress=False)
    finished = [t for t in result.trials if t["state"] == "complete"]
    # each process stops once the study holds 2; one may finish the trial it had started
    assert 2 <= len(finished) <= 3
    assert len({t["run_dir"] for t in finished}) == len(finished)
