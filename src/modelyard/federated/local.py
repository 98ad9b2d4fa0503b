"""One client's local round: load the global adapters, train on the local shard, return the update.

Training is the ordinary FineTuner; FedProx adds its proximal term through a TrainingHook.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelyard.federated.payload import load_trainable_state, trainable_state
from modelyard.models.device import select_device
from modelyard.models.encoding import Encoded
from modelyard.recipe import Recipe
from modelyard.trainer.loop import ClassificationObjective, FineTuner
from modelyard.trainer.stopping import LrSchedule, plan_stopping


class ProximalTerm:
    """FedProx: adds mu/2 * ||w - w_global||^2 over the trained weights to each batch's loss."""

    def __init__(self, model: torch.nn.Module, mu: float) -> None:
        self.mu = mu
        self.anchor = {
            name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad
        }

    def penalty(self, model: torch.nn.Module) -> torch.Tensor:
        """Return mu/2 times the squared distance of the trained weights to the global ones."""
        total = torch.zeros(())
        for name, p in model.named_parameters():
            if name in self.anchor:
                total = total + (p - self.anchor[name].to(p.device)).pow(2).sum().cpu()
        return 0.5 * self.mu * total

    def adjust_loss(self, model: torch.nn.Module, loss: torch.Tensor) -> torch.Tensor:
        """Return the loss plus the proximal penalty."""
        return loss + self.penalty(model).to(loss.device)

    def after_backward(
        self, model: torch.nn.Module, compute_loss: Callable[[], torch.Tensor], accum: int
    ) -> None:
        """Nothing: the penalty is part of the loss already."""


def label_log_prior(labels: list[int], num_labels: int) -> torch.Tensor:
    """Return the log of the smoothed label shares (add-one, so an absent label stays finite)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_labels)[:num_labels]
    shares = (counts + 1.0) / (counts.sum() + num_labels)
    return torch.log(torch.as_tensor(shares, dtype=torch.float32))


def federation_schedule(recipe: Recipe, n_train: int, server_round: int) -> LrSchedule:
    """Return the learning-rate schedule of one client's round when it spans the federation:
    the fixed schedule of `rounds × local_epochs` epochs, started where round
    `server_round` (1-based) begins."""
    fed = recipe.federated
    assert fed is not None
    per_round = plan_stopping(
        recipe.train.model_copy(update={"epochs": fed.local_epochs}), n_train, 0
    )
    whole = plan_stopping(
        recipe.train.model_copy(update={"epochs": fed.local_epochs * fed.rounds}), n_train, 0
    )
    offset = min(per_round.total * (server_round - 1), max(0, whole.total - 1))
    return LrSchedule(whole.warmup, whole.warmup, whole.total, offset=offset)


@dataclass
class LocalResult:
    """What a client returns after its local epochs."""

    arrays: dict[str, np.ndarray]
    num_examples: int
    seconds: float
    privacy: dict[str, Any] | None
    # the optimizer's state at the end of the round, when the client keeps it for the next
    optimizer_moments: dict[int, dict[str, torch.Tensor]] | None = None


def train_locally(
    model: torch.nn.Module,
    recipe: Recipe,
    train: Encoded,
    global_arrays: dict[str, np.ndarray] | None,
    pad_id: int,
    seed: int,
    proximal_mu: float = 0.0,
    server_round: int = 1,
    num_labels: int | None = None,
    optimizer_moments: dict[int, dict[str, torch.Tensor]] | None = None,
) -> LocalResult:
    """Train `model` from the global weights on `train` for `federated.local_epochs`.

    `server_round` (1-based) places the round on the federation's learning-rate schedule;
    `num_labels` turns on logit adjustment by the shard's label shares when the recipe
    asks for it; `optimizer_moments` (with `federated.keep_optimizer_state`) continues
    the optimizer of the client's previous round.

    Returns the trained weights (adapters and head when `federated.lora_only`), the
    number of examples, the client's privacy spend when `federated.dp` is set, and the
    optimizer's final state when the client keeps it.
    """
    fed = recipe.federated
    assert fed is not None
    if global_arrays is not None:
        load_trainable_state(model, global_arrays, fed.lora_only)
    cfg = recipe.train.model_copy(
        update={"epochs": fed.local_epochs, "eval_every": None, "early_stopping": _no_stop(recipe)}
    )
    hooks = [ProximalTerm(model, proximal_mu)] if proximal_mu > 0 else []
    policy = None
    if fed.dp is not None:
        from modelyard.privacy.dp import private_policy

        private = recipe.model_copy(update={"privacy": fed.dp})
        policy = private_policy(private, model, len(train))
    schedule = (
        federation_schedule(recipe, len(train), server_round)
        if fed.schedule == "federation"
        else None
    )
    objective = None
    if fed.logit_adjustment and num_labels is not None and train.labels:
        # logit adjustment by the shard's own label shares (FedLC, Zhang et al., 2022)
        objective = ClassificationObjective(
            pad_id, cfg.early_stopping.metric, label_log_prior(list(train.labels), num_labels)
        )
    # DP-SGD's optimizer is Opacus's own: its state is not carried
    keep = fed.keep_optimizer_state and policy is None
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="modelyard-fed-") as work:
        tuner = FineTuner(
            model,
            cfg,
            select_device(recipe.train.device),
            None,
            pad_id,
            seed,
            Path(work),
            progress=False,
            hooks=hooks,
            policy=policy,
            objective=objective,
            schedule=schedule,
            optimizer_moments=optimizer_moments if keep else None,
        )
        # no dev split on a client: the last weights are the update
        result = tuner.fit(train, Encoded([], None, [], 0))
    privacy = policy.finish(result.steps) if policy is not None else None
    model.cpu()
    return LocalResult(
        arrays=dict(trainable_state(model, fed.lora_only)),
        num_examples=len(train),
        seconds=round(time.perf_counter() - start, 3),
        privacy=privacy,
        optimizer_moments=tuner.optimizer_moments if keep else None,
    )


def moments_to_arrays(moments: dict[int, dict[str, torch.Tensor]]) -> dict[str, np.ndarray]:
    """Return an optimizer's per-parameter state as flat named arrays (`INDEX.NAME`)."""
    return {
        f"{index}.{name}": value.detach().cpu().numpy().copy()
        for index, state in moments.items()
        for name, value in state.items()
    }


def arrays_to_moments(arrays: dict[str, np.ndarray]) -> dict[int, dict[str, torch.Tensor]]:
    """Return the optimizer state `moments_to_arrays` flattened."""
    moments: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in arrays.items():
        index, name = key.split(".", 1)
        moments.setdefault(int(index), {})[name] = torch.from_numpy(np.array(value))
    return moments


def _no_stop(recipe: Recipe) -> Any:
    return recipe.train.early_stopping.model_copy(update={"patience": None})
