"""Continual learning: continue an earlier run on new data or new classes without forgetting.

The model starts from the earlier run; new labels are appended to its label list and
its head grows rows for them. `rehearsal` mixes the earlier run's stored sample into the
training data; `ewc` adds lambda/2 · sum F (w - w_old)² with the earlier run's Fisher.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import torch

from modelyard.data import DataBundle, Split
from modelyard.errors import ArtifactError, BackboneError, RecipeError
from modelyard.methods.freezing import head_prefixes
from modelyard.methods.memory import diagonal_fisher, read_fisher, read_rehearsal
from modelyard.models import resolve_backbone
from modelyard.models.encoding import Encoded, encode_texts
from modelyard.recipe import Recipe
from modelyard.registry.run import LoadedRun, load_run


class EWCPenalty:
    """A TrainingHook adding the elastic-weight-consolidation penalty to the loss."""

    def __init__(
        self, model: torch.nn.Module, fisher: dict[str, torch.Tensor], strength: float
    ) -> None:
        self.strength = strength
        self.terms: list[tuple[torch.nn.Parameter, torch.Tensor, torch.Tensor]] = []
        for name, param in model.named_parameters():
            weight = fisher.get(name)
            if weight is None or weight.dim() != param.dim():
                continue
            # a grown head keeps its earlier rows first; only those are anchored
            rows = weight.shape[0]
            if weight.shape[1:] != param.shape[1:] or rows > param.shape[0]:
                continue
            self.terms.append((param, weight, param.detach()[:rows].clone()))

    def penalty(self) -> torch.Tensor:
        """Return lambda/2 · sum F (w - w_old)² over the anchored weights."""
        total = torch.zeros((), device=self.terms[0][0].device if self.terms else "cpu")
        for param, weight, old in self.terms:
            rows = old.shape[0]
            total = total + (weight * (param[:rows] - old) ** 2).sum()
        return 0.5 * self.strength * total

    def adjust_loss(self, model: torch.nn.Module, loss: torch.Tensor) -> torch.Tensor:
        """Return the loss plus the EWC penalty."""
        return loss + self.penalty().to(loss.device)

    def after_backward(
        self, model: torch.nn.Module, compute_loss: Callable[[], torch.Tensor], accum: int
    ) -> None:
        """Do nothing: the penalty is part of the loss already."""


def _head_linear(model: torch.nn.Module, classes: int) -> tuple[torch.nn.Module, str]:
    prefixes = head_prefixes(model)
    found = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
        and name.startswith(tuple(p.rstrip(".") for p in prefixes))
        and module.out_features == classes
    ]
    if not found:
        raise ArtifactError(f"cannot find the output layer ({classes} outputs) of the earlier run")
    name, _ = found[-1]
    parent_name, _, attr = name.rpartition(".")
    return model.get_submodule(parent_name) if parent_name else model, attr


def grow_head(model: Any, labels: list[str]) -> Any:
    """Return `model` with an output layer for `labels`; earlier rows are kept, new rows start small."""
    old = model.config.num_labels
    if len(labels) == old:
        return model
    owner, attr = _head_linear(model, old)
    layer: torch.nn.Linear = getattr(owner, attr)
    grown = torch.nn.Linear(layer.in_features, len(labels), bias=layer.bias is not None)
    std = getattr(model.config, "initializer_range", 0.02)
    with torch.no_grad():
        grown.weight.normal_(0.0, std)
        grown.weight[:old] = layer.weight
        if layer.bias is not None:
            grown.bias.zero_()
            grown.bias[:old] = layer.bias
    setattr(owner, attr, grown)
    model.config.num_labels = len(labels)
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {label: i for i, label in enumerate(labels)}
    return model


def _remap(split: Split, old: list[str], new: list[str]) -> None:
    position = {label: i for i, label in enumerate(new)}
    split.labels = [position[old[i]] for i in split.labels]


def merge_labels(bundle: DataBundle, earlier: list[str]) -> list[str]:
    """Put the earlier run's labels first in `bundle` (new ones after) and re-index its splits."""
    labels = list(earlier) + [label for label in bundle.labels if label not in earlier]
    for split in (bundle.train, bundle.dev, bundle.test):
        _remap(split, bundle.labels, labels)
    bundle.labels = labels
    bundle.report.labels = list(labels)
    return labels


def replay_factor(stored_labels: list[str], new_labels: list[int]) -> int:
    """Return how many times to repeat the stored sample so its classes match the new data's mean class size."""
    if not stored_labels or not new_labels:
        return 1
    per_stored = len(stored_labels) / len(set(stored_labels))
    per_new = len(new_labels) / len(set(new_labels))
    return max(1, round(per_new / per_stored))


def add_rehearsal(bundle: DataBundle, parent: LoadedRun, replay: str = "once") -> int:
    """Append the earlier run's stored sample (repeated when `replay` is balanced); return how many rows."""
    frame = read_rehearsal(parent.path)
    unknown = sorted(set(frame["label"]) - set(bundle.labels))
    if unknown:
        raise ArtifactError(f"{parent.path}: rehearsal labels not in the run: {unknown}")
    if replay == "balanced":
        factor = replay_factor(frame["label"].tolist(), bundle.train.labels)
        frame = pd.concat([frame] * factor, ignore_index=True)
    position = {label: i for i, label in enumerate(bundle.labels)}
    bundle.train.texts.extend(frame["text"].tolist())
    bundle.train.labels.extend(position[label] for label in frame["label"])
    if bundle.train.pairs is not None:
        if "pair" not in frame:
            raise ArtifactError(f"{parent.path}: the rehearsal sample has no second-text column")
        bundle.train.pairs.extend(frame["pair"].tolist())
    return len(frame)


def _earlier_fisher(parent: LoadedRun, samples: int, seed: int) -> dict[str, torch.Tensor]:
    stored = read_fisher(parent.path)
    if stored is not None:
        return stored
    try:
        frame = read_rehearsal(parent.path)
    except ArtifactError:
        raise ArtifactError(
            f"EWC needs Fisher information from the earlier data, and {parent.path} kept none: "
            "train it with train.memory.fisher=true (keeps no data) or "
            "train.memory.rehearsal_rows=N"
        ) from None
    ids, types, _ = encode_texts(parent.tokenizer, frame["text"].tolist(), None, parent.max_length)
    labels = [parent.labels.index(label) for label in frame["label"]]
    return diagonal_fisher(parent.model, Encoded(ids, types, labels, 0), samples, seed)


def _same_backbone(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return resolve_backbone(a) == resolve_backbone(b)
    except BackboneError:
        return False


def _check_backbone(recipe: Recipe, parent: LoadedRun) -> None:
    earlier = parent.manifest.get("backbone")
    if earlier is not None and not _same_backbone(str(earlier), recipe.model.backbone):
        raise RecipeError(
            f"train.continual.from_run {parent.path} was trained on backbone '{earlier}' but "
            f"model.backbone is '{recipe.model.backbone}'; set model.backbone={earlier}"
        )


def continue_from(recipe: Recipe, bundle: DataBundle) -> tuple[Any, list[Any]]:
    """Return the earlier run's model, grown to the merged labels, and the loop hooks of the strategy.

    Mutates `bundle`: labels merged and, for rehearsal, the stored sample appended.
    Raises ArtifactError for an unusable earlier run, RecipeError for a backbone mismatch.
    """
    cfg = recipe.train.continual
    assert cfg is not None
    parent = load_run(cfg.from_run)
    if not hasattr(parent.model, "config") or "embedding" in str(parent.manifest.get("kind")):
        raise ArtifactError(f"{cfg.from_run}: continual training needs a fine-tuned classifier")
    _check_backbone(recipe, parent)
    hooks: list[Any] = []
    fisher = None
    if cfg.strategy == "ewc":
        fisher = _earlier_fisher(parent, recipe.train.memory.fisher_samples, recipe.run.seed)
    labels = merge_labels(bundle, parent.labels)
    if cfg.strategy == "rehearsal":
        add_rehearsal(bundle, parent, cfg.replay)
    model = grow_head(parent.model, labels).train()
    if fisher is not None:
        hooks.append(EWCPenalty(model, fisher, cfg.ewc_lambda))
    return model, hooks
