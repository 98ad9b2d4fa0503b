"""The fine-tuning loop: AdamW, the learning-rate schedule and stopping rule of
`trainer.stopping`, clipping, accumulation, the best checkpoint on dev, atomic checkpoints
and exact resume."""

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
from modelyard.trainer.stopping import (
    LrSchedule,
    StoppingPlan,
    metric_standard_error,
    plan_stopping,
    stop_sentence,
)
from modelyard.trainer.stopping import steps_per_epoch as steps_per_epoch  # re-exported

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


class TrainData(Protocol):
    """What the loop needs of a training set: its size and each example's real token count."""

    def __len__(self) -> int: ...

    def lengths(self) -> np.ndarray:
        """Return the number of real (non-padding) tokens of every example."""
        ...


class Objective(Protocol):
    """What the loop minimises and how it scores dev data: classification, language modelling.

    `metric` names the dev metric early stopping watches; `loss` is lower-is-better, any
    other name higher-is-better.
    """

    metric: str

    def loss(
        self,
        model: torch.nn.Module,
        data: Any,
        index: np.ndarray,
        device: torch.device,
        dtype: torch.dtype | None,
    ) -> torch.Tensor:
        """Return the mean training loss of the examples `index` of `data`."""
        ...

    def evaluate(
        self, model: torch.nn.Module, data: Any, device: torch.device, dtype: torch.dtype | None
    ) -> dict[str, float]:
        """Return the dev metrics of `data` (at least `loss` and `metric`)."""
        ...


class ClassificationObjective:
    """Cross-entropy over a classifier's logits; dev loss, accuracy and macro-F1.

    With `log_prior` the training loss adds it to the logits first (logit adjustment,
    Menon et al., 2021): the model learns scores free of that label prior. A federated
    client passes its own label shares, so clients with skewed labels agree on the head.
    """

    def __init__(self, pad_id: int, metric: str, log_prior: torch.Tensor | None = None) -> None:
        self.pad_id, self.metric, self.log_prior = pad_id, metric, log_prior

    def loss(
        self,
        model: torch.nn.Module,
        data: Encoded,
        index: np.ndarray,
        device: torch.device,
        dtype: torch.dtype | None,
    ) -> torch.Tensor:
        """Return the mean cross-entropy of the examples `index` of `data`."""
        batch = collate(data.input_ids, data.token_type_ids, index, self.pad_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        labels = torch.tensor([data.labels[i] for i in index], device=device)
        with autocast(device, dtype):
            logits = model(**batch).logits.float()
        if self.log_prior is not None:
            logits = logits + self.log_prior.to(device)
        return torch.nn.functional.cross_entropy(logits, labels)

    def evaluate(
        self, model: torch.nn.Module, data: Encoded, device: torch.device, dtype: torch.dtype | None
    ) -> dict[str, float]:
        """Return dev loss, accuracy and macro-F1."""
        return dev_metrics(predict_logits(model, data, self.pad_id, device, dtype), data.labels)


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
    stop_reason: str = ""  # plateau, patience, max_epochs, max_steps, max_minutes, epochs, fallback
    stopped_because: str = ""  # the same as a sentence for reports
    stopping: dict[str, Any] = field(default_factory=dict)  # the resolved plan
    wall_seconds: float = 0.0  # the whole loop (steps, evaluations, checkpoints), over resumes
    train_tokens: int = 0
    tokens_per_s: float = 0.0


@dataclass
class _Run:
    """What the steps of one `fit` call share."""

    train: TrainData
    dev: TrainData
    plan: StoppingPlan
    schedule: LrSchedule
    optimizer: Any
    scheduler: Any
    state: TrainingState
    bar: TrainingProgress
    mark: float  # clock reading at the last step boundary
    samples: int = 0
    tokens: int = 0  # real (non-padding) tokens trained on
    seconds: float = 0.0  # time in training steps alone, for samples/s

    def end(self) -> int:
        """Return the step the run ends at: the cool-down's end once one has started."""
        if self.plan.mode == "plateau" and self.schedule.decay_end is not None:
            return self.schedule.decay_end
        return self.plan.total

    def finished(self) -> bool:
        """Whether the run has reached its end or was told to stop."""
        return self.state.stop_now or self.state.step >= self.end()


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
    return torch.optim.AdamW(groups, lr=cfg.lr, fused=_fusable(groups) or None)


def _fusable(groups: list[dict[str, Any]]) -> bool:
    """Whether torch's fused AdamW kernel takes these parameters (float, on the CPU or CUDA)."""
    # the default per-tensor AdamW took 4-5x longer a step on the CPU (300 vs 65 ms for
    # MiniLM-L6, a third of a batch-16 step); transformers.Trainer defaults to the fused one
    params = [p for g in groups for p in g["params"]]
    return bool(params) and all(
        p.device.type in ("cpu", "cuda") and p.dtype in _FUSED_DTYPES for p in params
    )


_FUSED_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


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
        clock: Callable[[], float] = time.perf_counter,
        objective: Objective | None = None,
        listeners: Sequence[HistoryListener] = (),
        schedule: LrSchedule | None = None,
        optimizer_moments: dict[int, dict[str, torch.Tensor]] | None = None,
    ) -> None:
        self.model, self.cfg, self.device, self.dtype = model, cfg, device, dtype
        # a federated client's optimizer state from its previous round (None: a fresh one);
        # after `fit`, the state the run ended with
        self.optimizer_moments = optimizer_moments
        self.pad_id, self.seed, self.progress = pad_id, seed, progress
        self.hooks = list(hooks)
        self.observers = list(observers)
        self.listeners = list(listeners)
        # instead of the plan's own: a federated round continues the federation's schedule
        self.schedule = schedule
        self.policy = policy
        self.clock = clock  # seconds; the time budget reads it (tests pass a fake one)
        self.objective: Objective = objective or ClassificationObjective(
            pad_id, cfg.early_stopping.metric
        )
        self.ckpt_dir = work_dir / "checkpoints"
        self.best_path = self.ckpt_dir / "best.safetensors"

    def plan(self, n_train: int, n_dev: int) -> StoppingPlan:
        """Return how a run on `n_train` training and `n_dev` dev rows will stop."""
        # DP-SGD calibrates its noise to the planned number of steps
        fixed = "DP-SGD plans its noise for a fixed number of steps" if self.policy else None
        return plan_stopping(self.cfg, n_train, n_dev, fixed)

    def fit(self, train: TrainData, dev: TrainData, resume: bool = False) -> TrainResult:
        """Train on `train`, stop as the plan says (a plateau on `dev`, a budget, the planned
        length), keep the best checkpoint on dev; return what was measured.

        Raises ArtifactError when `resume` finds no usable checkpoint.
        """
        plan = self.plan(len(train), len(dev))
        self.model.to(self.device)
        optimizer = make_optimizer(self.model, self.cfg)
        if self.optimizer_moments:
            carried = optimizer.state_dict()
            carried["state"] = self.optimizer_moments
            optimizer.load_state_dict(carried)
        if self.policy is not None:
            optimizer = self.policy.wrap_optimizer(self.model, optimizer, plan.total)
        schedule = self.schedule or LrSchedule.for_plan(plan)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        state, resumed = self._start(optimizer, scheduler, resume)
        with TrainingProgress(plan.total, state.step, self.progress) as bar:
            run = _Run(train, dev, plan, schedule, optimizer, scheduler, state, bar, self.clock())
            if state.step:
                bar.set_total(run.end())
            while not run.finished():
                self._epoch(run)
            if state.last_eval_step != state.step:
                self._evaluate(run, decide=False)  # the final weights always get a say
            state.elapsed_seconds += self.clock() - run.mark
        self._settle_final(run)
        self._restore_best()
        self.optimizer_moments = optimizer.state_dict()["state"]
        return TrainResult(
            steps=state.step,
            epochs_run=state.epoch,
            train_samples=run.samples,
            train_seconds=round(run.seconds, 3),
            samples_per_s=round(run.samples / max(run.seconds, 1e-9), 2),
            best_metric=state.best_metric,
            # a plateau found in the last epoch cools down to the planned end: nothing was cut
            stopped_early=state.stopped_early and state.step < plan.total,
            resumed_from_step=resumed,
            history=state.history or [],
            stop_reason=state.stop_reason or ("fallback" if plan.fallback else "epochs"),
            stopped_because=stop_sentence(self.cfg, plan, state),
            stopping={
                **plan.summary(),
                "best_step": state.best_step,
                **({"passed_over_step": int(state.passed_over[0])} if state.passed_over else {}),
            },
            wall_seconds=round(state.elapsed_seconds, 3),
            train_tokens=run.tokens,
            tokens_per_s=round(run.tokens / max(run.seconds, 1e-9), 2),
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
        self.best_path.unlink(missing_ok=True)  # an earlier fit's best is not this one's
        return TrainingState(history=[]), None

    def _epoch(self, run: _Run) -> None:
        state = run.state
        batches = (
            self.policy.batches(state.epoch)
            if self.policy is not None
            else epoch_batches(
                run.train.lengths(),
                self.cfg.batch_size,
                self.seed,
                state.epoch,
                self.cfg.group_by_length,
                self.cfg.group_window,
            )
        )
        accum = self.cfg.grad_accum
        self.model.train()
        losses: list[float] = []
        lengths = run.train.lengths()
        for b in range(state.batch_in_epoch, len(batches)):
            start = time.perf_counter()
            losses.append(self._backward(run.train, batches[b], accum))
            run.samples += len(batches[b])
            run.tokens += int(lengths[batches[b]].sum())
            boundary = (b + 1) % accum == 0 or b + 1 == len(batches)
            if boundary:
                self._optimizer_step(run.optimizer, run.scheduler)
                state.step += 1
                state.batch_in_epoch = b + 1
            run.seconds += time.perf_counter() - start
            if boundary:
                loss = float(np.mean(losses))
                run.bar.step(loss)
                self._record({"step": state.step, "epoch": state.epoch, "loss": loss})
                losses = []
                self._observe(state.step)
                self._after_step(run)
                if run.finished():
                    break
        else:
            state.epoch += 1
            state.batch_in_epoch = 0
            self._end_of_epoch(run)
            return
        if not state.stop_now:
            # a run that ends mid-epoch (max_steps, fractional epochs, a cool-down) counts
            # the part it trained and still gets its end-of-epoch evaluation
            state.epoch += 1
            self._end_of_epoch(run)

    def _record(self, entry: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener.record(entry)

    def _observe(self, step: int) -> None:
        for observer in self.observers:
            observer.after_step(self.model, step)
        if self.observers:
            self.model.train()

    def _chunks(self, train: TrainData, index: np.ndarray) -> list[np.ndarray]:
        """Return the batch as one piece, or in length-sorted pieces no larger than the policy's limit."""
        size = getattr(self.policy, "physical_batch_size", None)
        if size is None or len(index) <= size:
            return [index]
        lengths = train.lengths()[index]
        # sorted, each piece pads only to its own longest row
        order = index[np.argsort(lengths, kind="stable")]
        return [order[i : i + size] for i in range(0, len(order), size)]

    def _backward(self, train: TrainData, index: np.ndarray, accum: int) -> float:
        if len(index) == 0:
            return 0.0  # an empty Poisson-sampled batch: the policy's step adds noise only
        pieces = self._chunks(train, index)
        if len(pieces) == 1:
            return self._backward_piece(train, index, accum)
        # Opacus keeps each piece's per-example gradients until the step clips them all
        total = sum(self._backward_piece(train, p, accum) * len(p) for p in pieces)
        return total / len(index)

    def _backward_piece(self, train: TrainData, index: np.ndarray, accum: int) -> float:
        def compute_loss() -> torch.Tensor:
            return self.objective.loss(self.model, train, index, self.device, self.dtype)

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

    def _after_step(self, run: _Run) -> None:
        state, cfg = run.state, self.cfg
        now = self.clock()
        state.elapsed_seconds += now - run.mark
        run.mark = now
        if run.plan.eval_every and state.step % run.plan.eval_every == 0:
            self._evaluate(run)
        self._check_limits(run)
        if cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0:
            save_checkpoint(self.ckpt_dir, self.model, run.optimizer, run.scheduler, state)

    def _check_limits(self, run: _Run) -> None:
        """Stop or cool down for the time budget; cool down in time for the ceiling."""
        state, plan = run.state, run.plan
        cooling = run.schedule.decaying and plan.mode == "plateau"
        budget = None if self.cfg.max_minutes is None else self.cfg.max_minutes * 60
        if budget is not None and state.elapsed_seconds >= budget:
            state.stop_reason, state.stop_now = "max_minutes", True
            return
        if plan.mode != "plateau" or cooling or state.stop_now:
            self._show_budget(run, budget)
            return
        # cool down now if one more step would leave a cool-down ending after the budget
        per_step = state.elapsed_seconds / max(state.step, 1)
        if budget is not None and (state.elapsed_seconds + per_step) * (1 + plan.cooldown) > budget:
            self._cool_down(run, "max_minutes")
        elif state.step >= plan.ceiling_cooldown_start():
            self._cool_down(run, "max_steps" if self.cfg.max_steps else "max_epochs", plan.total)
        self._show_budget(run, budget)

    def _show_budget(self, run: _Run, budget: float | None) -> None:
        """Let the progress bar's total (and ETA) end where the time budget will."""
        state = run.state
        end = run.end()
        if budget is not None and state.step and state.elapsed_seconds > 0:
            per_step = state.elapsed_seconds / state.step
            end = min(end, state.step + math.ceil((budget - state.elapsed_seconds) / per_step))
        run.bar.set_total(max(end, state.step))

    def _cool_down(self, run: _Run, reason: str, end: int | None = None) -> None:
        """Start the final decay of the learning rate (or stop at once when it has no steps)."""
        state = run.state
        if end is None:
            end = min(run.plan.total, state.step + run.plan.cooldown_steps(state.step))
        state.stop_reason = reason
        state.stopped_early = reason == "plateau"
        if end <= state.step:
            state.stop_now = True
            return
        run.schedule.decay(state.step, end)
        run.bar.set_total(end)
        run.bar.phase("cool-down")

    def _end_of_epoch(self, run: _Run) -> None:
        if run.plan.eval_every is None:
            self._evaluate(run)
        save_checkpoint(self.ckpt_dir, self.model, run.optimizer, run.scheduler, run.state)

    def _evaluate(self, run: _Run, decide: bool = True) -> None:
        """Evaluate on dev and keep the best weights; with `decide`, a plateau starts the
        cool-down (epochs auto) or ends the run (a fixed length with patience)."""
        state = run.state
        state.last_eval_step = state.step
        if len(run.dev) == 0:
            return  # nothing to choose by: the final weights stay
        metrics = self.objective.evaluate(self.model, run.dev, self.device, self.dtype)
        self.model.train()
        name = self.objective.metric
        value = metrics[name]
        (state.history if state.history is not None else []).append(
            {"step": state.step, "epoch": state.epoch, **metrics}
        )
        run.bar.dev(name, value)
        self._record({"step": state.step, "epoch": state.epoch, "dev": metrics})
        best = state.best_metric
        improved = best is None or (value < best if name == "loss" else value > best)
        tied = best is not None and value == best
        if improved or tied:  # on a tie the later, longer-trained weights are kept
            state.best_metric, state.best_step = value, state.step
            self._save_best()
        if improved:
            state.evals_without_improvement = 0
            return
        state.evals_without_improvement += 1
        patience = run.plan.patience
        if not decide or patience is None or state.evals_without_improvement < patience:
            return
        if run.plan.mode == "fixed":
            state.stop_reason, state.stopped_early, state.stop_now = "patience", True, True
        elif not run.schedule.decaying:
            self._cool_down(run, "plateau")

    def _settle_final(self, run: _Run) -> None:
        """epochs auto: keep the final, cooled-down weights unless an earlier checkpoint scored
        better on dev by more than one standard error of the metric.

        On a small dev split the best evaluation is picked as much by noise as by the model
        (one standard error of an accuracy near 0.87 on 150 rows is 0.027), and the mid-flight
        checkpoint it points at was taken at the full learning rate; the weights at the end of
        the cool-down are the better bet on unseen data unless dev clearly says otherwise.
        A dev loss has no such error bar here: the best checkpoint on dev is kept.
        """
        state = run.state
        best, value = state.best_step, state.best_metric
        last = state.history[-1] if state.history else None
        if run.plan.mode != "plateau" or best is None or value is None or last is None:
            return
        if best == state.step or last["step"] != state.step or self.objective.metric == "loss":
            return
        final = float(last[self.objective.metric])
        error = metric_standard_error(value, len(run.dev))
        if value - final > error:
            return  # an earlier checkpoint is clearly better: it is restored
        state.passed_over = [best, value, error]
        state.best_step, state.best_metric = state.step, final
        self._save_best()  # the model holds the final weights

    def _save_best(self) -> None:
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.best_path.with_name(".best.tmp")
        save_model(self.model, str(tmp))
        tmp.replace(self.best_path)
        fsync_dir(self.ckpt_dir)

    def _restore_best(self) -> None:
        if self.best_path.is_file():
            load_model(self.model, str(self.best_path))
