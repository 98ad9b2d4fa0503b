"""`modelyard keys`, `modelyard registry` and `modelyard serve` from the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from modelyard.cli import EXIT_USER_ERROR, main
from modelyard.serve.auth import KeyStore


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MODELYARD_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


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


def test_keys_create_list_revoke(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(
        ["keys", "create", "--scope", "admin", "--name", "ops", "--json"], monkeypatch, capsys
    )
    created = json.loads(out)
    assert code == 0 and created["scope"] == "admin" and created["key"].startswith("myd_")
    assert KeyStore(home / "keys.json").verify(created["key"]) is not None
    assert created["key"] not in (home / "keys.json").read_text()
    code, out, _ = run_cli(["keys", "list"], monkeypatch, capsys)
    assert code == 0 and created["id"] in out and "ops" in out and created["key"] not in out
    code, out, _ = run_cli(["keys", "revoke", created["id"]], monkeypatch, capsys)
    assert code == 0 and KeyStore(home / "keys.json").list() == []
    code, _, err = run_cli(["keys", "revoke", created["id"]], monkeypatch, capsys)
    assert code == EXIT_USER_ERROR and "no key with id" in err and "Traceback" not in err
    code, _, err = run_cli(["keys", "create", "--scope", "root"], monkeypatch, capsys)
    assert code == EXIT_USER_ERROR and "unknown scope 'root'" in err


def test_registry_push_alias_list(
    home: Path,
    tiny_runs: list[Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_cli(
        ["registry", "push", str(tiny_runs[0]), "--name", "support", "--json"], monkeypatch, capsys
    )
    assert code == 0 and json.loads(out)["version"] == 1
    assert Path(json.loads(out)["path"]).is_relative_to(home / "registry")
    run_cli(["registry", "push", str(tiny_runs[1]), "--name", "support"], monkeypatch, capsys)
    code, out, _ = run_cli(["registry", "alias", "support:2", "production"], monkeypatch, capsys)
    assert code == 0 and "support:production -> version 2" in out
    code, out, _ = run_cli(["registry", "list", "--json"], monkeypatch, capsys)
    assert json.loads(out) == {"support": {"versions": [1, 2], "aliases": {"production": 2}}}
    code, _, err = run_cli(["registry", "alias", "support:7", "production"], monkeypatch, capsys)
    assert code == EXIT_USER_ERROR and "no such version; support has versions 1, 2" in err


def test_serve_refuses_unsafe_or_impossible_settings(
    home: Path,
    tiny_runs: list[Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_cli(["registry", "push", str(tiny_runs[0]), "--name", "tiny"], monkeypatch, capsys)
    code, _, err = run_cli(["serve", "tiny", "--host", "0.0.0.0", "--no-auth"], monkeypatch, capsys)
    assert code == EXIT_USER_ERROR and "refusing to bind 0.0.0.0 with auth off" in err
    code, _, err = run_cli(["serve", "tiny"], monkeypatch, capsys)
    assert code == EXIT_USER_ERROR and "no API keys" in err and "modelyard keys create" in err
    code, _, err = run_cli(["serve", "missing", "--no-auth"], monkeypatch, capsys)
    assert code == EXIT_USER_ERROR and "no model 'missing'" in err
    code, _, err = run_cli(["serve", "./runs/x", "--no-auth"], monkeypatch, capsys)
    assert code == EXIT_USER_ERROR and "invalid model name" in err
    code, _, err = run_cli(
        ["serve", "tiny", "--max-batch-size", "0", "--no-auth"], monkeypatch, capsys
    )
    assert code == EXIT_USER_ERROR and "max_batch_size" in err


def test_serve_reads_the_recipe_section(tmp_path: Path) -> None:
    from modelyard.cli.serve import build_settings

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "data: {path: x.csv}\nserve: {max_batch_size: 8, rate_limit: null, port: 9000}\n"
    )
    settings = build_settings(["tiny:production"], recipe, {"port": 9100, "host": None})
    assert (settings.max_batch_size, settings.rate_limit, settings.port, settings.host) == (
        8,
        None,
        9100,
        "127.0.0.1",
    )
    recipe.write_text("serve: {max_batch: 8}\n")
    with pytest.raises(Exception, match="max_batch: unknown key"):
        build_settings(["tiny"], recipe, {})


def test_registry_push_refuses_what_predict_refuses(
    home: Path,
    tiny_runs: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from modelyard.testing.hostile import HOSTILE_ARTIFACTS, damaged_copy

    case = next(c for c in HOSTILE_ARTIFACTS if "positions" in c.message)
    root = damaged_copy(tiny_runs[0], case, tmp_path / "hostile")
    code, _, err = run_cli(["registry", "push", str(root), "--name", "bad"], monkeypatch, capsys)
    assert code == EXIT_USER_ERROR and "positions" in err and "Traceback" not in err
    assert not (home / "registry" / "bad" / "versions" / "1").exists()
