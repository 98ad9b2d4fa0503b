"""The methods commands: `methods`, `merge`, `zeroshot`, and `evaluate --robustness`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

import modelyard
from modelyard.cli import EXIT_USER_ERROR, main
from modelyard.recipe import build_recipe
from tests.conftest import make_rows, write_csv
from tests.methods.conftest import with_train


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


def test_methods_lists_every_registered_method(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(["methods", "--json"], monkeypatch, capsys)
    listed = {row["name"]: row["kind"] for row in json.loads(out)}
    assert code == 0 and listed["lora"] == "adapter-classifier" and listed["full"] == "classifier"


def test_merge_and_robustness_from_the_command_line(
    method_recipe: dict,
    split_files: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = modelyard.train(
        build_recipe(with_train(method_recipe, method="lora", max_steps=2)), progress=False
    ).run_dir
    code, out, _ = run_cli(
        ["merge", str(run), "--output", str(tmp_path / "merged")], monkeypatch, capsys
    )
    assert code == 0 and "merged classifier written" in out
    code, _, err = run_cli(["merge", str(tmp_path / "merged")], monkeypatch, capsys)
    assert (
        code == EXIT_USER_ERROR and "merge needs an adapter run" in err and "Traceback" not in err
    )
    code, out, _ = run_cli(
        ["evaluate", str(run), "--data", str(split_files[1]), "--robustness"], monkeypatch, capsys
    )
    assert code == 0 and "word_swap" in out and "clean" in out, err


def test_zeroshot_command(
    tiny_backbone: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    labels = tmp_path / "labels.yaml"
    labels.write_text(
        yaml.safe_dump({"billing": "refund", "shipping": "parcel", "account": "password"})
    )
    data = write_csv(tmp_path / "test.csv", make_rows(12))
    args = [
        "zeroshot",
        "--labels",
        str(labels),
        "--data",
        str(data),
        "--output",
        str(tmp_path / "zs"),
        "--backbone",
        str(tiny_backbone),
        "--json",
    ]
    code, out, _ = run_cli(args, monkeypatch, capsys)
    assert code == 0 and json.loads(out)["n"] == 12
    labels.write_text("just text\n")
    code, _, err = run_cli([*args, "--overwrite"], monkeypatch, capsys)
    assert code == EXIT_USER_ERROR and "mapping of at least 2 labels" in err
