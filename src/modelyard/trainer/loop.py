"""The fine-tuning loop: AdamW, warmup then linear decay, clipping, accumulation,
early stopping on a dev metric, atomic checkpoints and exact resume."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from sklearn.metrics import f1_score
from transformers import get_linear_schedule_with_warmup

from modelyard.errors import ArtifactError
from modelyard.fsutil import fsync_dir
from modelyard.models.device import autocast
from modelyard.models.encoding import Encoded, collate, epoch_batches
from modelyard.models.predict import predict_logits
from modelyard.recipe import TrainConfig
from modelyard.trainer.checkpoint import (
    TrainingState,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from modelyard.trainer.progress import TrainingProgress

_NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


class TrainingHook(Protocol):
    """Changes each training step without forking the loop (adversarial perturbation, EWC)."""

    def adjust_loss(self, model: torch.nn.Module, loss: torch.Tensor) -> torch.Tensor:
        """Return the loss to back-propagate (e.g. plus a penalty)."""
        ...

    def after_backward(
        self, model: torch.nn.Module, compute_loss: Callable[[], torch.Tensor], accum: int
    ) -> None:
        """Run after the batch's backward pass; `compute_loss` re-runs the forward pass."""
        ...


class StepObserver(Protocol):
    """Looks at the model after optimizer steps without changing training (training dynamics)."""

    def after_step(self, model: torch.nn.Module, step: int) -> None:
        """Run after optimizer step `step`; the loop puts the model back in training mode."""
        ...


class HistoryListener(Protocol):
    """Receives the figures the loop measures, as it measures them (a live training log)."""

    def record(self, entry: dict[str, Any]) -> None:
        """Take one entry: `{"step", "epoch", "loss"}` after each optimizer step, or
        `{"step", "epoch", "dev": {metric: value}}` after each dev evaluation."""
        ...


class StepPolicy(Protocol):
    """Takes over batch sampling and the optimizer step without forking the loop (DP-SGD)."""

    def wrap_optimizer(self, model: torch.nn.Module, optimizer: Any, total_steps: int) -> Any:
        """Return the optimizer the loop steps; it clips gradients itself."""
        ...

    def batches(self, epoch: int) -> list[np.ndarray]:
        """Return the batches (index arrays, possibly empty) of epoch `epoch`."""
        ...


@dataclass
class TrainResult:
    """What a finished training run measured."""

    steps: int
    epochs_run: int
    train_samples: int
    train_seconds: float
    samples_per_s: float
    best_metric: float | None
    stopped_early: bool
    resumed_from_step: int | None
    history: list[dict[str, Any]] = field(default_factory=list)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Return AdamW parameter groups: no weight decay on biases and norm weights."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if name.endswith(_NO_DECAY) else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Return the optimizer `cfg.optimizer` names over the model's trainable parameters."""
    groups = param_groups(model, cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def dev_metrics(logits: np.ndarray, labels: list[int]) -> dict[str, float]:
    """Return dev loss, accuracy and macro-F1 from logits."""
    y = np.asarray(labels)
    loss = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y)).item()
    pred = logits.argmax(axis=1)
    return {
        "loss": loss,
        "accuracy": float((pred == y).mean()),
        "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
    }


def steps_per_epoch(n_train: int, cfg: TrainConfig) -> int:
    """Return the optimizer steps one epoch over `n_train` examples takes (DP-SGD aside)."""
    return math.ceil(math.ceil(n_train / cfg.batch_size) / cfg.grad_accum)


class FineTuner:
    """Runs the loop for one model; `fit` returns a TrainResult and leaves the best weights loaded."""

    def __init__(
        self,
        model: torch.nn.Module,
        cfg: TrainConfig,
        device: torch.device,
        dtype: torch.dtype | None,
        pad_id: int,
        seed: int,
        work_dir: Path,
        progress: bool = True,
        hooks: Sequence[TrainingHook] = (),
        policy: StepPolicy | None = None,
        observers: Sequence[StepObserver] = (),
        listeners: Sequence[HistoryListener] = (),
    ) -> None:
        self.model, self.cfg, self.device, self.dtype = model, cfg, device, dtype
        self.pad_id, self.seed, self.progress = pad_id, seed, progress
        self.hooks = list(hooks)
        self.observers = list(observers)
        self.listeners = list(listeners)
        self.policy = policy
        self.ckpt_dir = work_dir / "checkpoints"
        self.best_path = self.ckpt_dir / "best.safetensors"

    def plan(self, n_train: int) -> tuple[int, int]:
        """Return (optimizer steps per epoch, total optimizer steps)."""
        per_epoch = steps_per_epoch(n_train, self.cfg)
        total = self.cfg.max_steps or math.ceil(self.cfg.epochs * per_epoch)
        return per_epoch, max(total, 1)

    def fit(self, train: Encoded, dev: Encoded, resume: bool = False) -> TrainResult:
        """Train on `train`, early-stop on `dev`, checkpoint as configured; return what was measured."""
        per_epoch, total = self.plan(len(train))
        self.model.to(self.device)
        optimizer = make_optimizer(self.model, self.cfg)
        if self.policy is not None:
            optimizer = self.policy.wrap_optimizer(self.model, optimizer, total)
        scheduler = get_linear_schedule_with_warmup(
            optimizer, int(self.cfg.warmup_ratio * total), total
        )
        state, resumed = self._start(optimizer, scheduler, resume)
        clock: dict[str, float] = {"seconds": 0.0, "samples": 0}
        with TrainingProgress(total, state.step, self.progress) as bar:
            while state.step < total and not state.stopped_early:
                self._epoch(train, dev, state, optimizer, scheduler, (total, per_epoch), bar, clock)
        self._restore_best()
        history = state.history or []
        return TrainResult(
            steps=state.step,
            epochs_run=state.epoch,
            train_samples=int(clock["samples"]),
            train_seconds=round(clock["seconds"], 3),
            samples_per_s=round(clock["samples"] / max(clock["seconds"], 1e-9), 2),
            best_metric=state.best_metric,
            stopped_early=state.stopped_early,
            resumed_from_step=resumed,
            history=history,
        )

    def _start(
        self, optimizer: Any, scheduler: Any, resume: bool
    ) -> tuple[TrainingState, int | None]:
        if resume:
            path = latest_checkpoint(self.ckpt_dir)
            if path is None:
                raise ArtifactError(f"--resume: no complete checkpoint under {self.ckpt_dir}")
            state = load_checkpoint(path, self.model, optimizer, scheduler)
            return state, state.step
        return TrainingState(history=[]), None

    def _epoch(
        self,
        train: Encoded,
        dev: Encoded,
        state: TrainingState,
        optimizer: Any,
        scheduler: Any,
        plan: tuple[int, int],
        bar: TrainingProgress,
        clock: dict[str, Any],
    ) -> None:
        total, _ = plan
        batches = (
            self.policy.batches(state.epoch)
            if self.policy is not None
            else epoch_batches(
                train.lengths(),
                self.cfg.batch_size,
                self.seed,
                state.epoch,
                self.cfg.group_by_length,
            )
        )
        accum = self.cfg.grad_accum
        self.model.train()
        losses: list[float] = []
        for b in range(state.batch_in_epoch, len(batches)):
            start = time.perf_counter()
            losses.append(self._backward(train, batches[b], accum))
            clock["samples"] += len(batches[b])
            boundary = (b + 1) % accum == 0 or b + 1 == len(batches)
            if boundary:
                self._optimizer_step(optimizer, scheduler)
                state.step += 1
                state.batch_in_epoch = b + 1
            clock["seconds"] += time.perf_counter() - start
            if boundary:
                bar.step(float(np.mean(losses)))
                loss = float(np.mean(losses))
                self._record({"step": state.step, "epoch": state.epoch, "loss": loss})
                losses = []
                self._observe(state.step)
                if self._after_step(dev, state, optimizer, scheduler, bar) or state.step >= total:
                    break
        else:
            state.epoch += 1
            state.batch_in_epoch = 0
            self._end_of_epoch(dev, state, optimizer, scheduler, bar)
            return
        if state.step >= total and not state.stopped_early:
            # a run capped by max_steps or fractional epochs still gets its final evaluation
            state.epoch += 1
            self._end_of_epoch(dev, state, optimizer, scheduler, bar)

    def _record(self, entry: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener.record(entry)

    def _observe(self, step: int) -> None:
        for observer in self.observers:
            observer.after_step(self.model, step)
        if self.observers:
            self.model.train()

    def _chunks(self, train: Encoded, index: np.ndarray) -> list[np.ndarray]:
        """Return the batch as one piece, or in length-sorted pieces no larger than the policy's limit."""
        size = getattr(self.policy, "physical_batch_size", None)
        if size is None or len(index) <= size:
            return [index]
        lengths = np.fromiter((len(train.input_ids[i]) for i in index), np.int64, len(index))
        # sorted, each piece pads only to its own longest row
        order = index[np.argsort(lengths, kind="stable")]
        return [order[i : i + size] for i in range(0, len(order), size)]

    def _backward(self, train: Encoded, index: np.ndarray, accum: int) -> float:
        if len(index) == 0:
            return 0.0  # an empty Poisson-sampled batch: the policy's step adds noise only
        pieces = self._chunks(train, index)
        if len(pieces) == 1:
            return self._backward_piece(train, index, accum)
        # Opacus keeps each piece's per-example gradients until the step clips them all
        total = sum(self._backward_piece(train, p, accum) * len(p) for p in pieces)
        return total / len(index)

    def _backward_piece(self, train: Encoded, index: np.ndarray, accum: int) -> float:
        batch = collate(train.input_ids, train.token_type_ids, index, self.pad_id)
        batch = {k: v.to(self.device) for k, v in batch.items()}
        labels = torch.tensor([train.labels[i] for i in index], device=self.device)

        def compute_loss() -> torch.Tensor:
            with autocast(self.device, self.dtype):
                logits = self.model(**batch).logits
            return torch.nn.functional.cross_entropy(logits.float(), labels)

        loss = compute_loss()
        for hook in self.hooks:
            loss = hook.adjust_loss(self.model, loss)
        (loss / accum).backward()
        for hook in self.hooks:
            hook.after_backward(self.model, compute_loss, accum)
        return float(loss.detach())

    def _optimizer_step(self, optimizer: Any, scheduler: Any) -> None:
        if self.cfg.max_grad_norm is not None and self.policy is None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

    def _after_step(
        self,
        dev: Encoded,
        state: TrainingState,
        optimizer: Any,
        scheduler: Any,
        bar: TrainingProgress,
    ) -> bool:
        stop = False
        if self.cfg.eval_every and state.step % self.cfg.eval_every == 0:
            stop = self._evaluate(dev, state, bar)
        if self.cfg.checkpoint_every and state.step % self.cfg.checkpoint_every == 0:
            save_checkpoint(self.ckpt_dir, self.model, optimizer, scheduler, state)
        return stop

    def _end_of_epoch(
        self,
        dev: Encoded,
        state: TrainingState,
        optimizer: Any,
        scheduler: Any,
        bar: TrainingProgress,
    ) -> None:
        if self.cfg.eval_every is None:
            self._evaluate(dev, state, bar)
        save_checkpoint(self.ckpt_dir, self.model, optimizer, scheduler, state)

    def _evaluate(self, dev: Encoded, state: TrainingState, bar: TrainingProgress) -> bool:
        """Evaluate on dev, keep the best weights, and return True when early stopping fires."""
        if len(dev) == 0:
            self._save_best()
            return False
        metrics = dev_metrics(
            predict_logits(self.model, dev, self.pad_id, self.device, self.dtype), dev.labels
        )
        self.model.train()
        name = self.cfg.early_stopping.metric
        value = metrics[name]
        (state.history if state.history is not None else []).append(
            {"step": state.step, "epoch": state.epoch, **metrics}
        )
        bar.dev(name, value)
        self._record({"step": state.step, "epoch": state.epoch, "dev": metrics})
        better = state.best_metric is None or (
            value < state.best_metric if name == "loss" else value > state.best_metric
        )
        if better:
            state.best_metric, state.evals_without_improvement = value, 0
            self._save_best()
            return False
        state.evals_without_improvement += 1
        patience = self.cfg.early_stopping.patience
        state.stopped_early = patience is not None and state.evals_without_improvement >= patience
        return state.stopped_early

    def _save_best(self) -> None:
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.best_path.with_name(".best.tmp")
        save_model(self.model, str(tmp))
        tmp.replace(self.best_path)
        fsync_dir(self.ckpt_dir)

    def _restore_best(self) -> None:
        if self.best_path.is_file():
            load_model(self.model, str(self.best_path))
