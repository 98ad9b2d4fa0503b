"""CLI exit codes and messages: a user's mistake is one clear line, never a traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from modelyard.cli import EXIT_USER_ERROR, main
from tests.conftest import make_rows, write_csv


def run_cli(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["modelyard", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_the_stages(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(["--help"], monkeypatch, capsys)
    assert code == 0
    for command in ("init", "train", "evaluate", "predict", "quickstart"):
        assert command in out


def test_init_writes_a_trainable_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(["init", str(tmp_path / "proj")], monkeypatch, capsys)
    assert code == 0 and "modelyard train" in out
    assert (tmp_path / "proj" / "recipe.yaml").is_file() and (
        tmp_path / "proj" / "data.csv"
    ).is_file()
    code, _, err = run_cli(["init", str(tmp_path / "proj")], monkeypatch, capsys)
    assert code == EXIT_USER_ERROR and "already exists" in err and "Traceback" not in err


def test_recipe_errors_exit_2_without_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data: {path: d.csv}\ntrain: {lr: -1}\n", encoding="utf-8")
    code, _, err = run_cli(["train", str(recipe), "train.bogus=1"], monkeypatch, capsys)
    assert code == EXIT_USER_ERROR
    assert "train.lr" in err and "train.bogus: unknown key" in err and "Traceback" not in err


def test_missing_data_column_exit_2(
    tmp_path: Path,
    tiny_backbone: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = write_csv(tmp_path / "d.csv", make_rows(30), header=("body", "label"))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump({"data": {"path": str(data)}, "model": {"backbone": str(tiny_backbone)}})
    )
    code, _, err = run_cli(["train", str(recipe), "--no-progress"], monkeypatch, capsys)
    assert code == EXIT_USER_ERROR
    assert "no column 'text'" in err and "'body'" in err and "Traceback" not in err


def test_unknown_backbone_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_csv(tmp_path / "d.csv", make_rows(30))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump({"data": {"path": str(data)}, "model": {"backbone": "org/some-model"}})
    )
    code, _, err = run_cli(["train", str(recipe)], monkeypatch, capsys)
    assert code == EXIT_USER_ERROR and "never downloads" in err


def test_train_predict_evaluate_through_the_cli(
    tmp_path: Path,
    tiny_recipe: dict,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tiny_recipe["evaluate"]["speed"] = False
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe))
    code, out, err = run_cli(
        ["train", str(recipe), "train.epochs=2", "--json"], monkeypatch, capsys
    )
    assert code == 0, err
    payload = json.loads(out)
    run_dir = payload["run_dir"]
    assert payload["training"]["steps"] > 0 and Path(run_dir, "manifest.json").is_file()

    code, out, _ = run_cli(["predict", run_dir, "refund my invoice", "--json"], monkeypatch, capsys)
    assert code == 0 and '"predicted_label"' in out
    code, out, _ = run_cli(["predict", run_dir, "refund my invoice"], monkeypatch, capsys)
    assert code == 0 and "probability" in out and "billing" in out

    code, _, err = run_cli(["predict", run_dir], monkeypatch, capsys)
    assert code == EXIT_USER_ERROR and "TEXT or --input" in err

    src = write_csv(tmp_path / "in.csv", make_rows(9))
    code, _, err = run_cli(
        ["predict", run_dir, "--input", str(src), "--output", str(tmp_path / "p.txt")],
        monkeypatch,
        capsys,
    )
    assert code == EXIT_USER_ERROR and ".csv or .jsonl" in err

    code, out, _ = run_cli(["evaluate", run_dir, "--data", str(src), "--json"], monkeypatch, capsys)
    assert code == 0 and json.loads(out)["n"] == 9

    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"text,label\n\xff\xfe broken,billing\n")
    code, _, err = run_cli(["evaluate", run_dir, "--data", str(bad)], monkeypatch, capsys)
    assert code == EXIT_USER_ERROR and "UTF-8" in err and "Traceback" not in err


def test_train_says_why_training_stopped(
    tmp_path: Path,
    tiny_recipe: dict,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tiny_recipe["evaluate"]["speed"] = False
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe))
    args = ["train", str(recipe), "train.epochs=1", "--no-progress"]
    code, out, err = run_cli(args, monkeypatch, capsys)
    assert code == 0, err
    assert "training stopped: trained the fixed length (train.epochs=1), at step 12" in out


def test_loading_a_non_run_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(["predict", str(tmp_path / "empty"), "hi"], monkeypatch, capsys)
    assert code == EXIT_USER_ERROR and "manifest.json" in err
