"""The backbone sweep, and the backbone check on the tiny backbone and on broken entries."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from modelyard.errors import BackboneError
from modelyard.testing import BoundCheck, check_backbone, parametrize_with_checks


@parametrize_with_checks("backbone")
def test_backbone_keeps_its_contract(entry: str, check: BoundCheck) -> None:
    try:
        folder = check()
    except BackboneError as exc:  # its weights ship in a package that is not installed here
        pytest.skip(str(exc))
    assert folder.is_dir()


def test_a_sound_backbone_folder_passes(tiny_backbone: Path) -> None:
    assert check_backbone(lambda: tiny_backbone, name="tiny") == tiny_backbone


def test_a_backbone_without_safetensors_fails(tiny_backbone: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(tiny_backbone, tmp_path / "tiny")
    for weights in copy.glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(AssertionError, match="backbone 'tiny' breaks .*holds safetensors weights"):
        check_backbone(lambda: copy, name="tiny")


def test_a_backbone_without_a_tokenizer_fails(tiny_backbone: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(tiny_backbone, tmp_path / "tiny")
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        (copy / name).unlink(missing_ok=True)
    with pytest.raises(AssertionError, match="holds a tokenizer that loads"):
        check_backbone(lambda: copy, name="tiny")


def test_a_missing_package_must_raise_backbone_error() -> None:
    def needs_a_package() -> Path:
        import gt_no_such_model  # type: ignore[import-not-found]  # noqa: F401

        return Path(".")

    with pytest.raises(AssertionError, match="not on this machine raises BackboneError"):
        check_backbone(needs_a_package)

    def says_so() -> Path:
        raise BackboneError("pip install gt-no-such-model")

    with pytest.raises(BackboneError):
        check_backbone(says_so)
