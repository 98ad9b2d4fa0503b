"""The contract of backbones (`modelyard.models.backbones.BACKBONES`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from safetensors import SafetensorError, safe_open
from transformers import AutoConfig

from modelyard.errors import BackboneError
from modelyard.models.backbones import BACKBONES, resolve_backbone
from modelyard.models.build import load_tokenizer
from modelyard.testing.contract import Contract


def check_backbone(backbone: Callable[[], Path] | str, *, name: str | None = None) -> Path:
    """Check a backbone entry: a function returning a local Hugging Face model folder.

    It returns an existing folder holding a config.json that transformers reads, at least
    one readable safetensors file of tensors, and a tokenizer that loads and encodes text;
    a registered name resolves (`resolve_backbone`) to that folder. A backbone whose files
    are not on this machine raises BackboneError, which is passed on (a test skips on it).
    Returns the folder; raises AssertionError naming the broken clause.
    """
    label = (
        backbone if isinstance(backbone, str) else name or str(getattr(backbone, "__name__", "?"))
    )
    factory = BACKBONES.get(backbone) if isinstance(backbone, str) else backbone
    c = Contract("backbone", label)
    try:
        found = factory()
    except BackboneError:
        raise
    except Exception as exc:
        raise c.fail(
            "a backbone that is not on this machine raises BackboneError",
            f"it raised {type(exc).__name__}: {exc}",
        ) from exc
    c.require(isinstance(found, str | Path), "returns a folder path", type(found).__name__)
    folder = Path(found)
    c.require(folder.is_dir(), "returns an existing folder", str(folder))
    _check_files(c, folder)
    if isinstance(backbone, str):
        c.require(
            resolve_backbone(backbone) == folder,
            "resolve_backbone gives the same folder",
            f"{resolve_backbone(backbone)} != {folder}",
        )
    return folder


def _check_files(c: Contract, folder: Path) -> None:
    c.require((folder / "config.json").is_file(), "holds config.json", str(folder))
    try:
        AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise c.fail("transformers reads its config.json", str(exc)) from None
    weights = sorted(folder.glob("*.safetensors"))
    c.require(weights, "holds safetensors weights", f"no *.safetensors in {folder}")
    for path in weights:
        try:
            with safe_open(str(path), framework="pt") as handle:
                keys = list(handle.keys())
        except (SafetensorError, OSError) as exc:
            raise c.fail("its safetensors files are readable", f"{path.name}: {exc}") from None
        c.require(keys, "its safetensors files hold tensors", path.name)
    try:
        tokenizer = load_tokenizer(folder)
    except BackboneError as exc:
        raise c.fail("holds a tokenizer that loads", str(exc)) from None
    ids = tokenizer("hello world")["input_ids"]
    c.require(len(ids) > 0, "its tokenizer encodes text", f"got {ids!r}")
