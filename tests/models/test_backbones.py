from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from modelyard.errors import BackboneError
from modelyard.models import build_classifier, load_tokenizer, resolve_backbone


def test_local_folder_resolves(tiny_backbone: Path) -> None:
    assert resolve_backbone(str(tiny_backbone)) == tiny_backbone.resolve()


def test_hub_id_not_on_machine_says_how_to_supply_files() -> None:
    with pytest.raises(BackboneError) as info:
        resolve_backbone("bert-base-uncased")
    message = str(info.value)
    assert "never downloads" in message and "minilm-l6" in message and "model.backbone" in message


def test_incomplete_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(BackboneError, match="missing \\*.safetensors"):
        resolve_backbone(str(tmp_path))


def test_a_folder_without_tokenizer_files_is_refused(tiny_backbone: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(tiny_backbone, tmp_path / "tiny")
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (copy / name).unlink(missing_ok=True)
    assert len(load_tokenizer(tiny_backbone)) > 5
    with pytest.raises(BackboneError, match="holds no tokenizer files"):
        load_tokenizer(copy)


def test_classifier_head_has_label_names(tiny_backbone: Path) -> None:
    model = build_classifier(tiny_backbone, ["a", "b", "c"])
    assert model.config.num_labels == 3
    assert model.config.id2label == {0: "a", 1: "b", 2: "c"}


@pytest.mark.integration
def test_default_backbone_is_the_packaged_minilm() -> None:
    folder = resolve_backbone("minilm-l6")
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "weights.ckpt"])
def test_a_backbone_folder_with_pickled_weights_is_refused(
    tiny_backbone: Path, tmp_path: Path, name: str
) -> None:
    folder = Path(shutil.copytree(tiny_backbone, tmp_path / "backbone"))
    (folder / name).write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(
        BackboneError, match=f"holds pickled weights \\({name}\\).*safetensors only"
    ):
        resolve_backbone(str(folder))
