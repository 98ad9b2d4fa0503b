"""The local tracking store: a run folder read back as params, metrics, steps and artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelyard.tracking import TrackingError, compare_runs, flatten, read_tracked


def fake_run(folder: Path, lr: float, accuracy: float) -> Path:
    """Write the files a finished classification run keeps (no weights trained)."""
    folder.mkdir(parents=True)
    (folder / "recipe.yaml").write_text(
        f"run:\n  name: {folder.name}\n  seed: 1\ntrain:\n  lr: {lr}\n  epochs: 2\n",
        encoding="utf-8",
    )
    metrics = {
        "test": {"accuracy": accuracy, "macro_f1": 0.5, "labels": ["a", "b"], "ok": True},
        "training": {"steps": 4, "best_metric": None, "history": [{"step": 2}]},
    }
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    lines = [
        {"step": 1, "epoch": 0, "loss": 0.9, "time": 10.0},
        {"step": 2, "epoch": 0, "loss": 0.8, "time": 11.0},
        {"step": 2, "epoch": 1, "dev": {"accuracy": 0.6, "loss": None}, "time": 12.0},
        {"step": 2, "epoch": 0, "loss": 0.7, "time": 13.0},  # a resume repeated step 2
    ]
    (folder / "history.jsonl").write_text(
        "".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8"
    )
    (folder / "model.safetensors").write_bytes(b"weights")
    return folder


def test_flatten_keeps_leaves_by_dotted_key() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": "x"}) == {
        "a.b": 1,
        "a.c.d": [1, 2],
        "e": "x",
    }


def test_a_run_folder_reads_as_a_tracked_run(tmp_path: Path) -> None:
    run = read_tracked(fake_run(tmp_path / "one", 0.001, 0.75))
    assert run.params["train.lr"] == "0.001" and run.params["run.name"] == "one"
    # numeric leaves only: no labels list, no boolean, no null, no history list
    assert run.metrics == {"test.accuracy": 0.75, "test.macro_f1": 0.5, "training.steps": 4.0}
    steps = [(s.key, s.step, s.value) for s in run.steps]
    assert steps == [("train.loss", 1, 0.9), ("dev.accuracy", 2, 0.6), ("train.loss", 2, 0.7)]
    assert [p.name for p in run.artifacts] == ["history.jsonl", "metrics.json", "recipe.yaml"]


def test_a_folder_without_a_recipe_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(TrackingError, match="is not a run folder"):
        read_tracked(tmp_path)


def test_a_corrupt_history_line_is_named(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "one", 0.001, 0.75)
    (run / "history.jsonl").write_text("{not json\n", encoding="utf-8")
    with pytest.raises(TrackingError, match=r"history.jsonl:1 is not a JSON line"):
        read_tracked(run)


def test_compare_lists_the_keys_that_differ_and_every_metric(tmp_path: Path) -> None:
    a = fake_run(tmp_path / "a", 0.001, 0.75)
    b = fake_run(tmp_path / "b", 0.0002, 0.8)
    found = compare_runs(a, b)
    assert found["params"] == [{"key": "train.lr", "a": "0.001", "b": "0.0002"}]  # not run.name
    accuracy = next(m for m in found["metrics"] if m["key"] == "test.accuracy")
    assert accuracy["a"] == 0.75 and accuracy["b"] == 0.8
    assert accuracy["delta"] == pytest.approx(0.05)


def test_runs_compare_reads_names_under_the_runs_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.test_cli import run_cli

    fake_run(tmp_path / "runs" / "a", 0.001, 0.75)
    fake_run(tmp_path / "runs" / "b", 0.0002, 0.8)
    args = ["runs", "compare", "a", "b", "--runs", str(tmp_path / "runs"), "--json"]
    code, out, _ = run_cli(args, monkeypatch, capsys)
    assert code == 0
    assert json.loads(out)["params"] == [{"key": "train.lr", "a": "0.001", "b": "0.0002"}]
    code, out, _ = run_cli(args[:-1], monkeypatch, capsys)
    assert code == 0 and "train.lr" in out and "test.accuracy" in out
    code, _, err = run_cli(
        ["runs", "compare", "a", "nope", "--runs", str(tmp_path / "runs")], monkeypatch, capsys
    )
    assert code == 2 and "is not a run folder" in err
