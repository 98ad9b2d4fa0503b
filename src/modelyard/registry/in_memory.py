"""Build a run from files held in memory (a decrypted artifact): no plaintext touches the disk.

Only built-in transformers architectures are accepted (the config's `model_type` must be one
transformers ships), weights come from safetensors bytes, and the tokenizer from
`tokenizer.json` plus the simple settings of `tokenizer_config.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelyard.errors import ArtifactError
from modelyard.registry.calibration import CALIBRATION, parse_temperature
from modelyard.registry.crypto import EncryptionKey, decrypt_members, read_key
from modelyard.registry.records import LABELS, RECIPE, check_labels, parse_saved_recipe
from modelyard.registry.run import LoadedRun

_SIMPLE = (str, int, float, bool, type(None))
# loader bookkeeping in tokenizer_config.json, not settings of the tokenizer itself
_TOKENIZER_META = {
    "tokenizer_class",
    "backend",
    "is_local",
    "local_files_only",
    "auto_map",
    "name_or_path",
}


def _json(root: Path, name: str, files: dict[str, bytes]) -> Any:
    if name not in files:
        raise ArtifactError(f"{root}: the encrypted artifact holds no {name}")
    try:
        return json.loads(files[name].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{root}: {name} is not valid JSON ({exc})") from None


def model_from_bytes(root: Path, files: dict[str, bytes]) -> Any:
    """Return the sequence classifier described by `config.json` with `model.safetensors` loaded.

    Raises ArtifactError for an unknown architecture or weights that do not fit it.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load
    from transformers import CONFIG_MAPPING, AutoModelForSequenceClassification

    from modelyard.models.build import quiet_transformers

    config = _json(root, "config.json", files)
    model_type = str(config.get("model_type")) if isinstance(config, dict) else ""
    if model_type not in CONFIG_MAPPING:
        raise ArtifactError(
            f"{root}: config.json names no built-in architecture (got {model_type!r})"
        )
    try:
        with quiet_transformers():
            model = AutoModelForSequenceClassification.from_config(
                CONFIG_MAPPING[model_type].from_dict(config)
            )
        state = load(files["model.safetensors"])
    except (ValueError, TypeError, KeyError, SafetensorError) as exc:
        raise ArtifactError(f"{root}: cannot build the model from its files: {exc}") from None
    result = model.load_state_dict(state, strict=False)
    tied = set(getattr(model, "_tied_weights_keys", None) or [])
    missing = [k for k in result.missing_keys if k not in tied]
    if missing or result.unexpected_keys:
        raise ArtifactError(
            f"{root}: model.safetensors does not fit config.json (missing {missing[:5]}, "
            f"unexpected {result.unexpected_keys[:5]})"
        )
    return model


def tokenizer_from_bytes(root: Path, files: dict[str, bytes]) -> Any:
    """Return the fast tokenizer of `tokenizer.json` with the settings of `tokenizer_config.json`.

    Raises ArtifactError when `tokenizer.json` is missing or unreadable.
    """
    import transformers
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    settings = (
        _json(root, "tokenizer_config.json", files) if "tokenizer_config.json" in files else {}
    )
    try:
        backend = Tokenizer.from_str(files["tokenizer.json"].decode("utf-8"))
    except Exception as exc:  # the tokenizers library raises its own exception types
        raise ArtifactError(f"{root}: tokenizer.json cannot be read ({exc})") from None
    cls = getattr(transformers, str(settings.get("tokenizer_class", "")), None)
    if not (isinstance(cls, type) and issubclass(cls, PreTrainedTokenizerFast)):
        cls = PreTrainedTokenizerFast
    kwargs = {
        k: v for k, v in settings.items() if k not in _TOKENIZER_META and isinstance(v, _SIMPLE)
    }
    return cls(tokenizer_object=backend, **kwargs)


def _labels(root: Path, files: dict[str, bytes]) -> list[str]:
    return check_labels(_json(root, LABELS, files), f"{root}: {LABELS}")


def load_encrypted_run(
    root: Path, manifest: dict[str, Any], key: EncryptionKey | str | Path | None, device: str
) -> LoadedRun:
    """Decrypt a verified encrypted run in memory and return it ready for inference.

    `key` is an EncryptionKey, a key file, or None for the environment (see `read_key`).
    Raises ArtifactError for a wrong key, altered or hostile content, or a kind other than
    `classifier` (decrypt those with `modelyard registry decrypt` first).
    """
    if manifest.get("kind", "classifier") != "classifier":
        raise ArtifactError(
            f"{root}: encrypted artifacts of kind '{manifest.get('kind')}' load only after "
            "`modelyard registry decrypt`; in-memory loading covers kind classifier"
        )
    opened = decrypt_members(
        root, manifest, key if isinstance(key, EncryptionKey) else read_key(key)
    )
    files = opened.files
    labels = _labels(root, files)
    recipe = parse_saved_recipe(files.get(RECIPE, b""), root / RECIPE)
    model = model_from_bytes(root, files)
    if model.config.num_labels != len(labels):
        raise ArtifactError(
            f"{root}: the model has {model.config.num_labels} outputs but {LABELS} names {len(labels)} labels"
        )
    model.to(device).eval()
    tokenizer = tokenizer_from_bytes(root, files)
    # the calibration record on disk is ciphertext: read the decrypted one
    calibration = files.get(CALIBRATION)
    temperature = 1.0 if calibration is None else parse_temperature(calibration, root / CALIBRATION)
    return LoadedRun(
        root, model, tokenizer, labels, opened.manifest, recipe, temperature=temperature
    )
