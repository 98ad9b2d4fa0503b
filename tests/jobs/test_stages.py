"""Stages as commands: argv per stage, the flags of a rerun, and checks at submit time."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from modelyard.errors import RecipeError, UnknownPluginError
from modelyard.jobs.errors import JobsError
from modelyard.jobs.spec import JobSpec
from modelyard.jobs.stages import STAGES, check_target, job_argv
from tests.conftest import make_rows, write_csv


def _recipe(tmp_path: Path, name: str = "r1") -> Path:
    data = write_csv(tmp_path / "d.csv", make_rows(30))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump({"data": {"path": str(data)}, "run": {"name": name, "output_dir": "runs"}})
    )
    return recipe


def test_every_stage_is_a_modelyard_command(tmp_path: Path) -> None:
    py = sys.executable
    spec = JobSpec("train", "r.yaml", ("train.lr=1e-4",), str(tmp_path))
    assert job_argv(spec, False, py) == [
        py,
        "-m",
        "modelyard",
        "train",
        "r.yaml",
        "train.lr=1e-4",
        "--no-progress",
    ]
    audit = JobSpec("audit", "r.yaml", (), str(tmp_path))
    assert job_argv(audit, False, "python")[3:5] == ["data", "audit"]
    evaluate = JobSpec("evaluate", "runs/a", ("--data", "t.csv"), str(tmp_path))
    assert job_argv(evaluate, True, "python") == [
        "python",
        "-m",
        "modelyard",
        "evaluate",
        "runs/a",
        "--data",
        "t.csv",
    ]
    compress = JobSpec("compress", "runs/a", ("--methods", "int8-dynamic"), str(tmp_path))
    assert job_argv(compress, True, "python")[-1] == "--overwrite"
    assert job_argv(JobSpec("command", "echo", ("hi",)), True, "python") == ["echo", "hi"]
    assert set(STAGES.names()) >= {"train", "compress", "audit", "evaluate", "command"}


def test_a_train_rerun_resumes_from_a_complete_checkpoint(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path)
    spec = JobSpec("train", recipe.name, (), str(tmp_path))
    assert job_argv(spec, True, "python")[-1] == "--no-progress"  # nothing written yet
    run = tmp_path / "runs" / "r1"
    (run / "checkpoints" / "step-10").mkdir(parents=True)
    (run / "checkpoints" / ".tmp-step-20").mkdir()
    (run / "checkpoints" / ".tmp-step-20" / "COMPLETE").write_text("")  # not renamed yet
    assert job_argv(spec, True, "python")[-1] == "--overwrite"  # no complete checkpoint
    (run / "checkpoints" / "step-10" / "COMPLETE").write_text("")
    assert job_argv(spec, True, "python")[-1] == "--resume"
    assert job_argv(spec, False, "python")[-1] == "--no-progress"
    # overrides move the run folder, and the rerun looks there
    moved = JobSpec("train", recipe.name, ("run.name=r2",), str(tmp_path))
    assert job_argv(moved, True, "python")[-1] == "--no-progress"
    (tmp_path / "runs" / "r2").mkdir()
    assert job_argv(moved, True, "python")[-1] == "--overwrite"


def test_submit_checks_catch_mistakes_early(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path)
    check_target(JobSpec("train", str(recipe), ("train.epochs=1",), str(tmp_path)))
    with pytest.raises(RecipeError, match="recipe file not found"):
        check_target(JobSpec("train", "missing.yaml", (), str(tmp_path)))
    with pytest.raises(RecipeError, match="train.bogus"):
        check_target(JobSpec("audit", str(recipe), ("train.bogus=1",), str(tmp_path)))
    with pytest.raises(JobsError, match="takes a run folder"):
        check_target(JobSpec("compress", "no-such-run", (), str(tmp_path)))
    with pytest.raises(JobsError, match="not on PATH"):
        check_target(JobSpec("command", "no-such-program-xyz", (), str(tmp_path)))
    with pytest.raises(UnknownPluginError, match="unknown job stage 'sweep'; available: audit"):
        check_target(JobSpec("sweep", str(recipe), (), str(tmp_path)))


def test_a_tune_job_runs_the_search_and_its_params_are_not_overrides(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path)
    args = ("--param", "train.lr=loguniform:1e-5:1e-3", "--trials", "4", "train.epochs=1")
    spec = JobSpec("tune", recipe.name, args, str(tmp_path))
    assert job_argv(spec, True, "python") == [
        "python",
        "-m",
        "modelyard",
        "tune",
        recipe.name,
        *args,
        "--no-progress",
    ]  # a rerun resumes the study by itself
    check_target(spec)  # the spec after --param is not read as a recipe override
    with pytest.raises(RecipeError, match="train.epochs"):
        check_target(JobSpec("tune", recipe.name, (*args[:4], "train.epochs=x"), str(tmp_path)))
