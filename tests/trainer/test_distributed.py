"""Data-parallel training (`train --nproc N`): two gloo processes on 127.0.0.1 against one.

The process tests train the tiny BERT without dropout, so one process and two compute the
same thing up to the order of float sums: the two-process run must follow the one-process run
at the same global batch step by step: the same steps, stop and best checkpoint, every step's
loss within 1e-4 relative, and weights within 1e-3 (AdamW divides by the gradients' running
RMS, which magnifies float noise on near-zero gradients; 1.3e-4 was seen here).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from safetensors.torch import load_file
from transformers import BertConfig, BertModel

import modelyard
from modelyard.cli import EXIT_USER_ERROR
from modelyard.errors import LaunchError, RecipeError
from modelyard.pipeline import HISTORY
from modelyard.recipe import build_recipe
from modelyard.trainer.distributed import ENV, launched, rank_seed, shard
from modelyard.trainer.launch import LaunchPlan
from tests.conftest import build_tiny_backbone, make_rows, write_csv
from tests.test_cli import run_cli

# -- without processes -----------------------------------------------------------------------


@pytest.mark.parametrize("world", [1, 2, 3])
def test_shards_split_a_batch_into_disjoint_parts(world: int) -> None:
    index = np.arange(10) * 7
    parts = [shard(index, rank, world) for rank in range(world)]
    assert sorted(np.concatenate(parts).tolist()) == sorted(index.tolist())
    assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1


def test_rank_seeds_differ_by_rank_and_step() -> None:
    seeds = {rank_seed(7, rank, step) for rank in (1, 2) for step in (0, 10)}
    assert len(seeds) == 4


def test_a_process_is_a_rank_only_under_a_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ENV:
        monkeypatch.delenv(key, raising=False)
    assert not launched()
    for key in ENV:
        monkeypatch.setenv(key, "0")
    assert launched()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"nproc": 0}, "--nproc must be a whole number"),
        ({"nproc": -2}, "--nproc must be a whole number"),
        ({"nproc": 10_000}, "each process needs at least one"),
        ({"nproc": 1, "nnodes": 0}, "--nnodes must be 1 or more"),
        ({"nproc": 1, "nnodes": 2}, "needs --rdzv-endpoint"),
        ({"nproc": 1, "nnodes": 2, "rdzv_endpoint": "h:1", "node_rank": 2}, "outside 0..1"),
        ({"nproc": 1, "nnodes": 2, "rdzv_endpoint": "no-port"}, "HOST:PORT"),
        ({"nnodes": 2, "rdzv_endpoint": "h:1"}, "go with --nproc"),
    ],
)
def test_bad_launch_options_are_clear_errors(
    tiny_recipe: dict, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(LaunchError, match=message):
        modelyard.train(build_recipe(tiny_recipe), progress=False, **options)
    assert not Path(tiny_recipe["run"]["output_dir"]).exists()  # nothing was started


def test_launch_plan_counts_gpus_not_cores() -> None:
    with pytest.raises(LaunchError, match="1 GPU"):
        LaunchPlan(2).check(cores=64, gpus=1)
    LaunchPlan(2).check(cores=1, gpus=2)


def test_cli_bad_nproc_is_one_line(
    tiny_recipe: dict,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe), encoding="utf-8")
    code, _, err = run_cli(["train", str(recipe), "--nproc", "0"], monkeypatch, capsys)
    assert code == EXIT_USER_ERROR and "--nproc must be" in err and "Traceback" not in err


def test_what_data_parallel_does_not_cover_is_refused(tiny_recipe: dict) -> None:
    from modelyard.pipeline import _check_data_parallel, _run_data_parallel

    session = type("Session", (), {"method": type("M", (), {"fit": None})(), "hooks": [object()]})
    with pytest.raises(RecipeError, match="loop hooks"):
        _check_data_parallel(build_recipe(tiny_recipe), session())
    recipe = build_recipe(tiny_recipe).model_copy(update={"task": "generation"})
    with pytest.raises(RecipeError, match="covers task classification"):
        _run_data_parallel(recipe, False, False, False)


# -- two processes -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A dropout-free tiny BERT, 120 rows, and a recipe whose length a dev plateau decides."""
    root = tmp_path_factory.mktemp("ddp")
    folder = build_tiny_backbone(root / "backbone")
    config = BertConfig.from_pretrained(folder)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    BertModel.from_pretrained(folder, config=config, use_safetensors=True).save_pretrained(folder)
    data = write_csv(root / "data.csv", make_rows(120))
    recipe = {
        "run": {"name": "one", "output_dir": str(root / "runs"), "seed": 7},
        "data": {"path": str(data)},
        "model": {"backbone": str(folder), "max_length": 32},
        "train": {
            "epochs": "auto",
            "max_epochs": 4,
            "eval_every": 4,
            "early_stopping": {"min_dev_rows": 5, "metric": "loss"},
            "batch_size": 8,
            "lr": 5e-3,
            "precision": "fp32",
            "checkpoint_every": 5,
            "num_threads": 1,
        },
        "evaluate": {"speed": False},
    }
    return {"root": root, "recipe": recipe}


def _named(setup: dict[str, Any], name: str) -> dict[str, Any]:
    recipe = setup["recipe"]
    return {**recipe, "run": {**recipe["run"], "name": name}}


@pytest.fixture(scope="module")
def runs(setup: dict[str, Any]) -> dict[str, Any]:
    """The recipe trained in one process and in two."""
    one = modelyard.train(build_recipe(_named(setup, "one")), progress=False)
    two = modelyard.train(build_recipe(_named(setup, "two")), progress=False, nproc=2)
    return {"one": one, "two": two}


def _losses(run_dir: Path) -> dict[int, float]:
    entries = [json.loads(line) for line in (run_dir / HISTORY).read_text().splitlines()]
    return {e["step"]: e["loss"] for e in entries if "loss" in e}


def _assert_close_weights(a: Path, b: Path, atol: float) -> None:
    x, y = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert x.keys() == y.keys()
    worst = max(float((x[k] - y[k]).abs().max()) for k in x)
    assert worst <= atol, f"largest weight difference {worst}"


@pytest.mark.slow  # two processes start and import torch: about 30 s
def test_two_processes_match_one_at_the_same_global_batch(runs: dict[str, Any]) -> None:
    one, two = runs["one"], runs["two"]
    for key in ("steps", "epochs_run", "stop_reason", "train_samples"):
        assert one.training[key] == two.training[key], key
    assert one.training["stopping"]["best_step"] == two.training["stopping"]["best_step"]
    a, b = _losses(one.run_dir), _losses(two.run_dir)
    assert a.keys() == b.keys()
    np.testing.assert_allclose([b[s] for s in a], list(a.values()), rtol=1e-4)
    _assert_close_weights(one.run_dir, two.run_dir, atol=1e-3)
    assert abs(one.metrics["accuracy"] - two.metrics["accuracy"]) <= 1e-9
    assert two.training["distributed"] == {
        "world_size": 2,
        "processes_per_node": 2,
        "nodes": 1,
        "backend": "gloo",
        "threads_per_process": 1,
    }


@pytest.mark.slow
def test_only_rank_zero_writes_the_run(runs: dict[str, Any]) -> None:
    one, two = runs["one"], runs["two"]
    assert sorted(p.name for p in two.run_dir.parent.iterdir()) == ["one", "two"]
    assert {p.name for p in two.run_dir.iterdir()} == {p.name for p in one.run_dir.iterdir()}
    lines = [json.loads(x) for x in (two.run_dir / HISTORY).read_text().splitlines()]
    steps = [e["step"] for e in lines if "loss" in e]
    assert steps == list(range(1, two.training["steps"] + 1))  # once each: one writer
    assert len(two.training["history"]) == len(one.training["history"])


SCRIPT = textwrap.dedent("""
    import sys, yaml, modelyard
    from modelyard.recipe import build_recipe
    recipe = build_recipe(yaml.safe_load(open(sys.argv[1])))
    modelyard.train(recipe, resume=sys.argv[2] == "resume", progress=False, nproc=2)
""")


def _wait_for_checkpoint(run_dir: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if list((run_dir / "checkpoints").glob("step-*/COMPLETE")):
            return
        if proc.poll() is not None:
            raise AssertionError(f"training ended before a checkpoint: {proc.returncode}")
        time.sleep(0.02)
    raise AssertionError("no checkpoint appeared in time")


@pytest.mark.slow  # a two-process run interrupted, then resumed in two processes: about 60 s
def test_resume_under_ddp_matches_the_uninterrupted_run(
    setup: dict[str, Any], runs: dict[str, Any]
) -> None:
    recipe_file = setup["root"] / "resumed.yaml"
    recipe_file.write_text(yaml.safe_dump(_named(setup, "resumed")), encoding="utf-8")
    run_dir = Path(setup["recipe"]["run"]["output_dir"]) / "resumed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    log = setup["root"] / "stopped.log"  # a file: the processes' output could fill a pipe
    with open(log, "wb") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(recipe_file), "fresh"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
        try:
            _wait_for_checkpoint(run_dir, proc)
        finally:
            proc.send_signal(signal.SIGTERM)  # the launcher stops its processes and exits
            proc.wait(timeout=120)
    assert not (run_dir / "manifest.json").exists(), "the run finished before it was stopped"
    assert "LaunchError: training was stopped (SIGTERM); continue it with --resume" in (
        log.read_text(encoding="utf-8", errors="replace")
    )
    resumed = modelyard.train(
        build_recipe(_named(setup, "resumed")), resume=True, progress=False, nproc=2
    )
    assert resumed.training["resumed_from_step"] is not None
    two = runs["two"]
    assert resumed.training["steps"] == two.training["steps"]
    _assert_close_weights(two.run_dir, resumed.run_dir, atol=1e-6)
