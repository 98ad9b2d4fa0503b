"""What a run keeps for continual training later (`train.memory`), and reading it back.

Both are opt-in: a rehearsal sample (`rehearsal.csv`, a stratified sample of the training
rows, size-bounded; it keeps training data in the artifact) and the diagonal Fisher
information of the weights (`fisher.safetensors`, no data), which EWC needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from modelyard.data import DataBundle, Split
from modelyard.errors import ArtifactError
from modelyard.models.encoding import Encoded, collate
from modelyard.recipe import Recipe

REHEARSAL = "rehearsal.csv"
FISHER = "fisher.safetensors"


def sample_indices(labels: list[int], size: int, seed: int) -> np.ndarray:
    """Return up to `size` row indices drawn per class in proportion to its share, seeded and sorted."""
    y = np.asarray(labels)
    if size >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    chosen: list[np.ndarray] = []
    classes = np.unique(y)
    quota = np.floor(size * np.array([(y == c).mean() for c in classes])).astype(int)
    # give what rounding left over to the largest classes, one row each
    for i in np.argsort(-quota)[: size - int(quota.sum())]:
        quota[i] += 1
    for c, n in zip(classes, quota, strict=True):
        rows = np.flatnonzero(y == c)
        chosen.append(rng.choice(rows, size=min(n, len(rows)), replace=False))
    return np.sort(np.concatenate(chosen))


def save_rehearsal(run_dir: Path, split: Split, labels: list[str], size: int, seed: int) -> Path:
    """Write a stratified sample of at most `size` rows of `split` to `run_dir/rehearsal.csv`."""
    index = sample_indices(split.labels, size, seed)
    frame = pd.DataFrame(
        {"text": [split.texts[i] for i in index], "label": [labels[split.labels[i]] for i in index]}
    )
    if split.pairs is not None:
        frame["pair"] = [split.pairs[i] for i in index]
    frame.to_csv(run_dir / REHEARSAL, index=False)
    return run_dir / REHEARSAL


def read_rehearsal(run_dir: Path) -> pd.DataFrame:
    """Return the rehearsal sample stored in a run; raise ArtifactError when it has none."""
    path = run_dir / REHEARSAL
    if not path.is_file():
        raise ArtifactError(
            f"{run_dir} stored no rehearsal sample; train it with train.memory.rehearsal_rows=N "
            "(opt-in: the run then keeps N training rows), or use continual.strategy ewc or naive"
        )
    return pd.read_csv(path, keep_default_na=False, dtype=str)


def diagonal_fisher(
    model: torch.nn.Module, data: Encoded, samples: int, seed: int
) -> dict[str, torch.Tensor]:
    """Return the empirical diagonal Fisher information of every weight, from up to `samples` examples.

    Each example is its own backward pass (squared per-example gradients, averaged); the
    model is in eval mode so dropout does not add noise. requires_grad flags are restored.
    """
    params = dict(model.named_parameters())
    flags = {name: p.requires_grad for name, p in params.items()}
    fisher = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in params.items()}
    index = np.random.default_rng(seed).permutation(len(data))[:samples]
    model.eval()
    try:
        for p in params.values():
            p.requires_grad_(True)
        for i in index:
            batch = collate(data.input_ids, data.token_type_ids, np.array([i]), 0)
            logits = model(**batch).logits
            loss = torch.nn.functional.cross_entropy(logits.float(), torch.tensor([data.labels[i]]))
            grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            for (name, _), grad in zip(params.items(), grads, strict=True):
                if grad is not None:
                    fisher[name] += grad.detach().float() ** 2
    finally:
        for name, p in params.items():
            p.requires_grad_(flags[name])
    return {name: f / max(len(index), 1) for name, f in fisher.items()}


def read_fisher(run_dir: Path) -> dict[str, torch.Tensor] | None:
    """Return the Fisher information a run stored, or None when it stored none."""
    path = run_dir / FISHER
    return load_file(str(path)) if path.is_file() else None


def save_memory(
    run_dir: Path, recipe: Recipe, model: Any, bundle: DataBundle, train: Encoded
) -> None:
    """Write what `train.memory` asks the run to keep (nothing by default)."""
    memory = recipe.train.memory
    if memory.rehearsal_rows:
        save_rehearsal(run_dir, bundle.train, bundle.labels, memory.rehearsal_rows, recipe.run.seed)
    if memory.fisher:
        fisher = diagonal_fisher(model, train, memory.fisher_samples, recipe.run.seed)
        save_file({k: v.contiguous() for k, v in fisher.items()}, str(run_dir / FISHER))
