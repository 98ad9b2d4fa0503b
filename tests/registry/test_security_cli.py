"""`modelyard signing-keys|encryption-keys create` (and the deprecated `keys gen-*`), `registry sign|verify|encrypt|decrypt`."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest

from modelyard.cli import EXIT_USER_ERROR, main

pytest.importorskip("cryptography")


@pytest.fixture()
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["modelyard", *args])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_sign_and_verify(cli, run_copy: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("keys", "gen-signing", str(tmp_path / "k" / "team.key"), "--json")
    assert code == 0, err
    made = json.loads(out)
    assert Path(made["public_key"]).name == "team.pub" and "PRIVATE" not in out
    code, _, err = cli("registry", "verify", str(run_copy), "--trusted-key", made["public_key"])
    assert code == EXIT_USER_ERROR and "is not signed" in err and "Traceback" not in err
    code, out, err = cli("registry", "sign", str(run_copy), "--key", made["private_key"])
    assert code == 0 and made["key_id"] in out, err
    code, out, err = cli("registry", "verify", str(run_copy), "--trusted-key", str(tmp_path / "k"))
    assert code == 0 and f"signed by trusted key {made['key_id']}" in out, err
    code, _, err = cli("registry", "verify", str(run_copy))
    assert code == EXIT_USER_ERROR and "--trusted-key" in err


def test_encrypt_predict_decrypt_without_printing_the_key(  # type: ignore[no-untyped-def]
    cli, run_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "model.key"
    outputs = []
    code, out, err = cli("keys", "gen-encryption", str(key_file))
    outputs += [out, err]
    assert code == 0, err
    code, out, err = cli("registry", "encrypt", str(run_copy), "--key-file", str(key_file))
    outputs += [out, err]
    assert code == 0 and "run-encrypted" in out, err
    encrypted = run_copy.with_name("run-encrypted")
    code, out, err = cli("predict", str(encrypted), "refund my invoice")
    outputs += [out, err]
    assert code == EXIT_USER_ERROR and "no encryption key" in err
    monkeypatch.setenv("MODELYARD_ENCRYPTION_KEY_FILE", str(key_file))
    code, out, err = cli("predict", str(encrypted), "refund my invoice", "--json")
    outputs += [out, err]
    assert code == 0 and '"predicted_label"' in out, err
    code, out, err = cli("registry", "decrypt", str(encrypted), "--output", str(tmp_path / "plain"))
    outputs += [out, err]
    assert code == 0 and (tmp_path / "plain" / "model.safetensors").is_file(), err
    secret = key_file.read_text().strip()
    raw = base64.b64decode(secret)
    for text in outputs:
        assert secret not in text and raw.hex() not in text


@pytest.mark.parametrize(
    ("new", "old", "made"),
    [
        (("signing-keys", "create"), ("keys", "gen-signing"), "signing key"),
        (("encryption-keys", "create"), ("keys", "gen-encryption"), "encryption key"),
    ],
)
def test_key_groups_and_the_deprecated_spellings(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, new: tuple[str, str], old: tuple[str, str], made: str
) -> None:
    code, out, err = cli(*new, str(tmp_path / "new.key"))
    assert code == 0 and made in out and "deprecated" not in err, err
    code, out, err = cli(*old, str(tmp_path / "old.key"))
    assert code == 0 and made in out, err
    assert f"`modelyard {' '.join(old)}` is deprecated; use `modelyard {' '.join(new)}`" in err
