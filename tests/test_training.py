"""End to end on the tiny backbone: train, artifacts, evaluate, predict, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from safetensors.torch import load_file

import modelyard
from modelyard.errors import ArtifactError, DataError, RecipeError
from modelyard.recipe import build_recipe
from modelyard.registry import load_run
from tests.conftest import make_rows, write_csv


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Any:
    tmp = tmp_path_factory.mktemp("trained")
    data = write_csv(tmp / "data.csv", make_rows(150))
    recipe = build_recipe(
        {
            "run": {"name": "tiny", "output_dir": str(tmp / "runs"), "seed": 7},
            "data": {"path": str(data)},
            "model": {"backbone": str(tiny_backbone), "max_length": 32},
            "train": {
                "epochs": 4,
                "batch_size": 8,
                "lr": 5e-3,
                "precision": "fp32",
                "num_threads": 1,
            },
            "evaluate": {"speed_samples": 8},
        }
    )
    return modelyard.train(recipe, progress=False)


def test_run_directory_holds_the_artifact(trained: Any) -> None:
    run = trained.run_dir
    for name in (
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "labels.json",
        "recipe.yaml",
        "metrics.json",
        "report.md",
        "confusion.png",
        "data_report.md",
        "MODEL_CARD.md",
        "manifest.json",
    ):
        assert (run / name).is_file(), name
    assert not (run / "checkpoints").exists()
    assert not list(run.glob("*.bin")) and not list(run.glob("*.pkl"))
    manifest = json.loads((run / "manifest.json").read_text())
    assert "model.safetensors" in manifest["files"] and "manifest.json" not in manifest["files"]


def test_tiny_model_learns_the_task(trained: Any) -> None:
    m = trained.metrics
    assert m["accuracy"] > 0.8
    for key in (
        "macro_f1",
        "weighted_f1",
        "ece",
        "latency_p50_ms",
        "latency_p95_ms",
        "throughput_b32_per_s",
    ):
        assert key in m
    assert len(m["confusion_matrix"]) == 3
    assert trained.training["steps"] > 0 and trained.training["samples_per_s"] > 0


def test_model_card_and_recipe_are_saved(trained: Any) -> None:
    card = (trained.run_dir / "MODEL_CARD.md").read_text()
    assert "## Intended use" in card and "## Limits" in card and "billing" in card
    # the data file by name and hash, never the absolute path of someone's disk
    assert "- Source: `data.csv` (sha256 " in card and str(trained.run_dir.parent) not in card


def test_report_has_the_training_history_as_a_table_and_a_curve(trained: Any) -> None:
    report = (trained.run_dir / "report.md").read_text()
    assert "## Training history" in report and "| Step | Epoch | dev " in report
    assert "[{" not in report  # not a raw Python list of dicts
    assert (trained.run_dir / "training.png").read_bytes()[:4] == b"\x89PNG"
    saved = yaml.safe_load((trained.run_dir / "recipe.yaml").read_text())
    assert saved["train"]["lr"] == 5e-3


def test_report_and_model_card_say_why_training_stopped(trained: Any) -> None:
    why = "trained the fixed length (train.epochs=4), at step"
    assert (
        trained.training["stop_reason"] == "epochs" and why in trained.training["stopped_because"]
    )
    assert f"**Training stopped:** {why}" in (trained.run_dir / "report.md").read_text()
    card = (trained.run_dir / "MODEL_CARD.md").read_text()
    assert "- Epochs 4: 4.0 epochs trained" in card and f"Why training stopped: {why}" in card
    saved = json.loads((trained.run_dir / "metrics.json").read_text())["training"]
    assert saved["stopping"]["mode"] == "fixed" and saved["wall_seconds"] > 0


def test_default_length_stops_on_a_plateau(tiny_recipe: dict, tmp_path: Path) -> None:
    tiny_recipe["data"]["path"] = str(write_csv(tmp_path / "more.csv", make_rows(300)))
    tiny_recipe["train"].pop("epochs")  # the default: auto
    tiny_recipe["evaluate"]["speed"] = False
    result = modelyard.train(build_recipe(tiny_recipe), progress=False)
    training = result.training
    assert training["stopping"]["mode"] == "plateau" and training["stop_reason"] == "plateau"
    card = (result.run_dir / "MODEL_CARD.md").read_text()
    assert "Epochs auto (until the dev macro_f1 plateaus, at most 20)" in card
    assert "Why training stopped: the dev macro_f1 stopped improving" in card
    assert (
        "**Training stopped:** the dev macro_f1 stopped improving"
        in (result.run_dir / "report.md").read_text()
    )
    assert not result.metrics["warnings"]


def test_too_few_dev_rows_fall_back_and_say_so(tiny_recipe: dict) -> None:
    tiny_recipe["train"].pop("epochs")  # auto, but 120 rows leave 12 dev rows
    tiny_recipe["evaluate"]["speed"] = False
    result = modelyard.train(build_recipe(tiny_recipe), progress=False)
    assert result.training["stop_reason"] == "fallback"
    assert result.training["steps"] == 3 * result.training["stopping"]["steps_per_epoch"]
    [warning] = result.metrics["warnings"]
    assert "trained a fixed 3 epochs because 12 dev rows are too few" in warning
    assert "hold out at least 20 dev rows" in warning
    assert f"**Warning:** {warning}." in (result.run_dir / "report.md").read_text()
    assert warning in (result.run_dir / "MODEL_CARD.md").read_text()


def test_predict_and_evaluate_round_trip(trained: Any, tmp_path: Path) -> None:
    [pred] = modelyard.predict(trained.run_dir, "refund my invoice payment please")
    assert pred["predicted_label"] == "billing"
    assert abs(sum(pred["probabilities"].values()) - 1) < 1e-4
    assert next(iter(pred["probabilities"])) == "billing"
    with pytest.warns(DeprecationWarning, match="predicted_label"):
        assert pred["label"] == "billing"
    with pytest.warns(DeprecationWarning, match="probabilities"):
        assert pred["prob_billing"] == pred["probabilities"]["billing"]
    [top] = modelyard.predict(trained.run_dir, "refund my invoice payment please", top_k=1)
    assert list(top["probabilities"]) == ["billing"]
    test = write_csv(tmp_path / "test.csv", make_rows(30, seed=5))
    metrics = modelyard.evaluate(trained.run_dir, test)
    assert metrics["n"] == 30 and Path(metrics["report_dir"], "report.md").is_file()
    out = modelyard.predict_file(trained.run_dir, test, tmp_path / "preds.jsonl")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 30 and {
        "text",
        "label",
        "predicted_label",
        "predicted_score",
        "prob_billing",
    } <= set(rows[0])


def test_evaluate_refuses_unknown_label(trained: Any, tmp_path: Path) -> None:
    test = write_csv(
        tmp_path / "test.csv", [("hello there", "billing"), ("what is this", "refunds")]
    )
    with pytest.raises(DataError, match=r"refunds"):
        modelyard.evaluate(trained.run_dir, test)


def test_tampered_weights_are_refused(trained: Any, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained.run_dir, copy)
    blob = bytearray((copy / "model.safetensors").read_bytes())
    blob[-1] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(ArtifactError, match="changed content: model.safetensors"):
        load_run(copy)


def test_existing_run_is_not_clobbered(trained: Any) -> None:
    recipe = build_recipe(yaml.safe_load((trained.run_dir / "recipe.yaml").read_text()))
    with pytest.raises(ArtifactError, match="already holds a finished run"):
        modelyard.train(recipe, progress=False)


def test_resume_without_checkpoint_is_an_error(tiny_recipe: dict) -> None:
    recipe = build_recipe(tiny_recipe)
    with pytest.raises(ArtifactError, match="no interrupted run"):
        modelyard.train(recipe, resume=True, progress=False)


def test_resume_with_other_recipe_is_refused(tiny_recipe: dict, tmp_path: Path) -> None:
    run_dir = Path(tiny_recipe["run"]["output_dir"]) / "tiny"
    run_dir.mkdir(parents=True)
    (run_dir / "recipe.yaml").write_text(build_recipe(tiny_recipe).to_yaml())
    with pytest.raises(RecipeError, match="differs"):
        modelyard.train(
            build_recipe(tiny_recipe), overrides=["train.lr=0.1"], resume=True, progress=False
        )


SCRIPT = textwrap.dedent("""
    import sys, yaml, modelyard
    from modelyard.recipe import build_recipe
    recipe = build_recipe(yaml.safe_load(open(sys.argv[1])))
    modelyard.train(recipe, resume=sys.argv[2] == "resume", progress=False)
""")


def _train_in_subprocess(recipe_file: Path, mode: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(recipe_file), mode],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_for_checkpoint(
    run_dir: Path, proc: subprocess.Popen[bytes], timeout: float = 120
) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if list((run_dir / "checkpoints").glob("step-*/COMPLETE")):
            return
        if proc.poll() is not None:
            raise AssertionError(
                f"training ended before a checkpoint: {proc.stderr.read() if proc.stderr else ''}"
            )
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared in time")


@pytest.mark.slow  # a reference run, then two training subprocesses: about 30 s
def test_resume_after_kill_matches_uninterrupted_run(tiny_recipe: dict, tmp_path: Path) -> None:
    tiny_recipe["train"].update(epochs=4, checkpoint_every=6)
    tiny_recipe["evaluate"]["speed"] = False
    reference = modelyard.train(
        build_recipe({**tiny_recipe, "run": {**tiny_recipe["run"], "name": "ref"}}), progress=False
    )
    recipe_file = tmp_path / "killed.yaml"
    recipe_file.write_text(
        yaml.safe_dump({**tiny_recipe, "run": {**tiny_recipe["run"], "name": "killed"}})
    )
    run_dir = Path(tiny_recipe["run"]["output_dir"]) / "killed"
    proc = _train_in_subprocess(recipe_file, "fresh")
    _wait_for_checkpoint(run_dir, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "manifest.json").exists(), "the run finished before it could be killed"
    resumed = _train_in_subprocess(recipe_file, "resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read() if resumed.stderr else ""
    a = load_file(str(reference.run_dir / "model.safetensors"))
    b = load_file(str(run_dir / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] == b[key]).all(), key


def test_history_jsonl_records_every_step_and_dev_evaluation(tiny_recipe: dict) -> None:
    import json

    from modelyard.pipeline import HISTORY, run_training
    from modelyard.recipe import build_recipe
    from modelyard.registry.manifest import read_manifest

    tiny_recipe["train"].update(epochs=1, eval_every=4)
    result = run_training(build_recipe(tiny_recipe), progress=False)
    lines = (result.run_dir / HISTORY).read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in lines]
    losses = [e for e in entries if "loss" in e]
    devs = [e for e in entries if "dev" in e]
    assert [e["step"] for e in losses] == list(range(1, result.training["steps"] + 1))
    assert [e["step"] for e in devs] == [h["step"] for h in result.training["history"]]
    assert devs[0]["dev"]["accuracy"] == result.training["history"][0]["accuracy"]
    assert HISTORY in read_manifest(result.run_dir)["files"]


def test_history_writer_keeps_every_line_strict_json(tmp_path) -> None:
    import json

    from modelyard.pipeline import HISTORY, HistoryWriter

    writer = HistoryWriter(tmp_path)
    writer.record({"step": 1, "epoch": 0, "loss": float("nan")})
    writer.record({"step": 1, "epoch": 0, "dev": {"loss": float("inf"), "accuracy": 0.5}})
    lines = (tmp_path / HISTORY).read_text(encoding="utf-8").splitlines()
    first, second = (json.loads(line, parse_constant=lambda c: 1 / 0) for line in lines)
    assert first["loss"] is None and first["step"] == 1 and "time" in first
    assert second["dev"] == {"loss": None, "accuracy": 0.5}


def test_list_runs_names_task_method_metric_and_date(trained: Any, tmp_path: Path) -> None:
    from modelyard.api import list_runs

    [row] = [r for r in list_runs(trained.run_dir.parent) if r["name"] == "tiny"]
    assert (row["task"], row["method"], row["metric"]) == ("classification", "full", "accuracy")
    assert 0 <= row["value"] <= 1 and row["created"][:2] == "20" and row["status"] == "finished"
    with pytest.raises(DataError, match="no runs folder"):
        list_runs(tmp_path / "nowhere")


def test_quickstart_keeps_an_earlier_run(tmp_path: Path) -> None:
    from modelyard.api import next_free_name

    assert next_free_name(tmp_path, "quickstart") == "quickstart"
    (tmp_path / "quickstart").mkdir()
    (tmp_path / "quickstart-2").mkdir()
    assert next_free_name(tmp_path, "quickstart") == "quickstart-3"
