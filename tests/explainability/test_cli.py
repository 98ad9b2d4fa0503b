"""`modelyard explain`: one text, a file, an evaluation, and clear one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from modelyard.cli import EXIT_USER_ERROR, main
from tests.conftest import write_csv
from tests.explainability.conftest import KEY, key_rows


def run_cli(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["modelyard", "explain", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_one_text_prints_coloured_words_and_the_figures(
    key_run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(key_run_dir), f"my {KEY} is late", "--method", "ig", "--method", "occlusion"]
    code, out, _ = run_cli([*args, "--steps", "8"], monkeypatch, capsys)
    assert code == 0
    assert out.count(f"my {KEY} is late") == 2
    assert "ig -> yes" in out and "occlusion -> yes" in out and "convergence delta" in out


def test_one_text_as_json(
    key_run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(key_run_dir), f"{KEY} late", "--json", "--score", "probability"]
    code, out, _ = run_cli(args, monkeypatch, capsys)
    [exp] = json.loads(out)
    assert code == 0 and exp["units"] == "probability" and exp["words"][0]["word"] == KEY


def test_file_to_json_and_html(
    key_run_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = write_csv(tmp_path / "in.csv", key_rows(6, seed=8))
    args = [str(key_run_dir), "--input", str(source), "--output", str(tmp_path / "o"), "--json"]
    code, out, _ = run_cli([*args, "--method", "occlusion"], monkeypatch, capsys)
    files = json.loads(out)["files"]
    assert code == 0 and Path(files["html"]).is_file() and Path(files["global_png"]).is_file()
    code, out, _ = run_cli([*args[:-1], "--method", "gxi"], monkeypatch, capsys)
    assert code == 0 and "top words per class (gxi)" in out


def test_evaluate_prints_the_faithfulness_table(
    key_run_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = write_csv(tmp_path / "t.csv", key_rows(6, seed=8))
    args = [str(key_run_dir), "--evaluate", "--data", str(data), "--output", str(tmp_path / "f")]
    code, out, _ = run_cli([*args, "--method", "occlusion"], monkeypatch, capsys)
    assert code == 0 and "occlusion" in out and "random" in out and "vs random" in out
    assert (tmp_path / "f" / "faithfulness.md").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give exactly one of: TEXT, --input FILE --output DIR, or --evaluate --data FILE"),
        (["a text", "--evaluate"], "give exactly one of"),
        (["--evaluate"], "--evaluate needs --data FILE"),
        (["--input", "x.csv"], "--input needs --output DIR"),
        (["--input", "x.csv", "--method", "ig", "--method", "gxi"], "--input takes one --method"),
        (["a text", "--method", "lime"], "unknown explanation method 'lime'; available: gxi, ig"),
        (["a text", "--steps", "1"], "invalid explain options: steps: Input should be greater"),
        (["a text", "--score", "odds"], "invalid explain options: score: Input should be"),
        (["a text", "--target", "maybe"], "'maybe' is not one of the model's labels: no, yes"),
    ],
)
def test_user_errors_exit_2_with_one_clear_line(
    key_run_dir: Path,
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run_cli([str(key_run_dir), *args], monkeypatch, capsys)
    assert code == EXIT_USER_ERROR and message in err and "Traceback" not in err


def test_a_missing_run_is_an_artifact_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli([str(tmp_path / "nope"), "text"], monkeypatch, capsys)
    assert code == EXIT_USER_ERROR and "nope" in err and "Traceback" not in err
