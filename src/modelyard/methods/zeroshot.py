"""Zero-shot classification: a text gets the label whose descriptions its embedding is closest to.

The default backbone is a sentence-embedding model, so with no training a label's head
row is the mean of its descriptions' unit embeddings, scaled by 1 / temperature; the
result is an ordinary embedding classifier that evaluates, predicts and serves as any run.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from modelyard.errors import DataError
from modelyard.fsutil import atomic_write_text, replace_dir
from modelyard.methods.catalog import EMBEDDING
from modelyard.methods.embedding import build_embedding_classifier, save_embedding_files
from modelyard.methods.fewshot import embed_all
from modelyard.models import load_tokenizer, resolve_backbone
from modelyard.models.encoding import Encoded, encode_texts
from modelyard.recipe import DEFAULT_BACKBONE, DEFAULT_MAX_LENGTH, build_recipe
from modelyard.registry.manifest import write_manifest
from modelyard.registry.run import RECIPE

DESCRIPTIONS = "label_descriptions.yaml"


def read_label_descriptions(path: str | Path) -> dict[str, list[str]]:
    """Return label -> descriptions from a YAML mapping (each value a string or a list of strings).

    Raises DataError for a missing or non-YAML file, fewer than two labels, or an empty description.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"label file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid YAML: {exc}") from None
    example = "positive: [a great film, I loved it]\nnegative: a terrible film"
    if not isinstance(raw, dict) or len(raw) < 2:
        raise DataError(
            f"{path}: expected a mapping of at least 2 labels to descriptions, e.g.\n{example}"
        )
    labels: dict[str, list[str]] = {}
    for label, value in raw.items():
        texts = [value] if isinstance(value, str) else value
        if (
            not isinstance(texts, list)
            or not texts
            or not all(isinstance(t, str) and t.strip() for t in texts)
        ):
            raise DataError(
                f"{path}: label '{label}' needs a description or a list of non-empty descriptions "
                f"(got {value!r}), e.g.\n{example}"
            )
        labels[str(label)] = [t.strip() for t in texts]
    return labels


def zeroshot_model(
    descriptions: dict[str, list[str]], backbone: str, max_length: int, temperature: float
) -> tuple[Any, Any, list[str]]:
    """Return (embedding classifier, tokenizer, labels) whose head scores cosine similarity / temperature.

    Raises BackboneError when the backbone cannot be resolved locally.
    """
    folder = resolve_backbone(backbone)
    tokenizer = load_tokenizer(folder)
    labels = list(descriptions)
    model = build_embedding_classifier(folder, labels)
    set_head_from_descriptions(model, tokenizer, descriptions, labels, max_length, temperature)
    return model, tokenizer, labels


def set_head_from_descriptions(
    model: Any,
    tokenizer: Any,
    descriptions: dict[str, list[str]],
    labels: list[str],
    max_length: int,
    temperature: float,
) -> None:
    """Make `model`'s head score cosine similarity / temperature to each label's descriptions.

    Head row i is the normalised mean unit embedding of `labels[i]`'s descriptions; the bias is
    zero. Raises DataError when a label has no descriptions.
    """
    missing = [label for label in labels if not descriptions.get(label)]
    if missing:
        raise DataError(
            f"label descriptions are missing for {missing}; give every label "
            f"({', '.join(labels)}) at least one description"
        )
    texts = [t for label in labels for t in descriptions[label]]
    owner = np.repeat(np.arange(len(labels)), [len(descriptions[label]) for label in labels])
    ids, types, _ = encode_texts(tokenizer, texts, None, max_length)
    vectors = embed_all(model, Encoded(ids, types, [0] * len(ids), 0))
    rows = np.stack([vectors[owner == i].mean(axis=0) for i in range(len(labels))])
    rows /= np.linalg.norm(rows, axis=1, keepdims=True).clip(min=1e-12)
    head = model.head
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(rows / temperature).to(head.weight))
        head.bias.zero_()


def init_head(
    model: Any, folder: Path, labels: list[str], recipe: Any, tokenizer: Any = None
) -> None:
    """Apply the recipe's `model.head_init` to a mean-pooled `model` (a no-op when it is unset).

    Descriptions default to each label's own name; `tokenizer` is the backbone's (loaded from
    `folder` when not given). Raises DataError when the recipe's descriptions name a label the
    data lacks or miss one it has.
    """
    cfg = recipe.model.head_init
    if cfg is None:
        return
    given = cfg.descriptions or {label: label for label in labels}
    unknown = sorted(set(given) - set(labels))
    if unknown:
        raise DataError(
            f"model.head_init.descriptions names labels the data does not have: {unknown} "
            f"(the data's labels: {', '.join(labels)})"
        )
    # the recipe has checked that every description has text
    descriptions = {k: [v] if isinstance(v, str) else list(v) for k, v in given.items()}
    tokenizer = tokenizer or load_tokenizer(folder)
    set_head_from_descriptions(
        model, tokenizer, descriptions, labels, recipe.model.max_length, cfg.temperature
    )
    model.train()


def build_zeroshot(
    labels_file: str | Path,
    output: str | Path,
    backbone: str = DEFAULT_BACKBONE,
    max_length: int = DEFAULT_MAX_LENGTH,
    temperature: float = 0.05,
    overwrite: bool = False,
    data: str | Path | None = None,
) -> Path:
    """Write a zero-shot artifact (kind embedding-classifier) for the labels in `labels_file`; return its path.

    `data`, when given, is recorded as the recipe's data file (the file it was built to label).

    Raises DataError for a bad label file, ArtifactError when `output` exists, BackboneError
    when the backbone is not available locally.
    """
    from modelyard.errors import ArtifactError

    if temperature <= 0:
        raise DataError(f"--temperature must be above 0, got {temperature}")
    out = Path(output)
    if out.exists() and not overwrite:
        raise ArtifactError(f"{out} already exists; pass --overwrite or choose another --output")
    descriptions = read_label_descriptions(labels_file)
    model, tokenizer, labels = zeroshot_model(descriptions, backbone, max_length, temperature)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_embedding_files(tmp, model, tokenizer, labels)
    atomic_write_text(tmp / DESCRIPTIONS, yaml.safe_dump(descriptions, sort_keys=False))
    recipe = build_recipe(
        {
            "run": {"name": out.name, "output_dir": str(out.parent)},
            "data": {"path": str(Path(data or labels_file).resolve()), "labels": labels},
            "model": {"backbone": backbone, "max_length": max_length},
        }
    )
    atomic_write_text(tmp / RECIPE, recipe.to_yaml())
    extra = {"backbone": backbone, "method": "zeroshot", "temperature": temperature}
    write_manifest(tmp, kind=EMBEDDING, extra=extra)
    return replace_dir(tmp, out)
