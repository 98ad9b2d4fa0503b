"""When a fine-tuning run stops: the plan the recipe and the data resolve to, the learning-rate
schedule that goes with it, and the sentence the report gives.

Two modes. `fixed` (a number of epochs, or the fallback of `epochs: auto`): warmup, then a
linear decay to zero over the planned steps, as transformers' linear schedule. `plateau`
(`epochs: auto` with enough dev rows): warmup, then a constant learning rate while the dev
metric still improves; after `patience` evaluations without a better value (or before the
ceiling or a budget) the rate cools down linearly to zero over a fraction of the steps
trained so far, from the weights the run has reached, and the run stops; it keeps the cooled-down final weights unless an earlier checkpoint is better on dev by
more than the metric's standard error. Cooling down before stopping is the warmup-stable-decay
idea: the final decay is what makes a linearly decayed run end well, and it can be started
whenever the length becomes known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from modelyard.recipe import TrainConfig
from modelyard.recipe.training import EVAL_ROWS, EVALS_PER_EPOCH
from modelyard.trainer.checkpoint import TrainingState

Mode = Literal["plateau", "fixed"]


def steps_per_epoch(n_train: int, cfg: TrainConfig) -> int:
    """Return the optimizer steps one epoch over `n_train` examples takes (DP-SGD aside)."""
    return math.ceil(math.ceil(n_train / cfg.batch_size) / cfg.grad_accum)


@dataclass(frozen=True)
class StoppingPlan:
    """How one run decides when to stop, resolved from the recipe and the data sizes."""

    mode: Mode
    per_epoch: int
    total: int  # fixed: the planned steps; plateau: the ceiling
    warmup: int
    eval_every: int | None  # None: at the end of each epoch
    patience: int | None
    cooldown: float
    fallback: str | None = None  # why epochs auto trains a fixed length instead

    def cooldown_steps(self, step: int) -> int:
        """Return the steps of a cool-down that starts after `step` steps."""
        return round(self.cooldown * step)

    def ceiling_cooldown_start(self) -> int:
        """Return the step at which a cool-down must start to end exactly at the ceiling."""
        return self.total - round(self.total * self.cooldown / (1 + self.cooldown))

    def summary(self) -> dict[str, Any]:
        """Return the plan as plain data for the run's metrics."""
        return {
            "mode": self.mode,
            "steps_per_epoch": self.per_epoch,
            "planned_steps" if self.mode == "fixed" else "ceiling_steps": self.total,
            "warmup_steps": self.warmup,
            "eval_every_steps": self.eval_every or self.per_epoch,
            "patience_evals": self.patience,
            **({"cooldown": self.cooldown} if self.mode == "plateau" else {}),
            **({"fallback": self.fallback} if self.fallback else {}),
        }


def eval_interval(cfg: TrainConfig, per_epoch: int) -> int | None:
    """Return the optimizer steps between dev evaluations (None: at each epoch's end).

    auto: about every EVAL_ROWS training rows, at least once and at most EVALS_PER_EPOCH
    times an epoch, so small data is evaluated once an epoch and large data a few times.
    """
    if cfg.eval_every != "auto":
        return cfg.eval_every
    rows_per_step = cfg.batch_size * cfg.grad_accum
    by_rows = math.ceil(EVAL_ROWS / rows_per_step)
    return max(1, min(per_epoch, max(math.ceil(per_epoch / EVALS_PER_EPOCH), by_rows)))


def _no_plateau_reason(cfg: TrainConfig, n_dev: int) -> str | None:
    """Return why a plateau cannot decide this run's length, or None when it can."""
    if cfg.early_stopping.patience is None:
        return "early stopping is off (train.early_stopping.patience: null)"
    if n_dev == 0:
        return "there are no dev rows to stop on"
    least = cfg.early_stopping.min_dev_rows
    if n_dev < least:
        return (
            f"{n_dev} dev rows are too few to tell a plateau from noise "
            f"(train.early_stopping.min_dev_rows: {least})"
        )
    return None


def plan_stopping(
    cfg: TrainConfig, n_train: int, n_dev: int, fixed_reason: str | None = None
) -> StoppingPlan:
    """Return the stopping plan of a run on `n_train` training and `n_dev` dev rows.

    `fixed_reason` says why the run must have a fixed length (DP-SGD plans its noise for
    it); with `epochs: auto` that reason, or too little dev data, selects the fallback.
    """
    per_epoch = steps_per_epoch(n_train, cfg)
    interval = eval_interval(cfg, per_epoch)
    patience = cfg.early_stopping.patience
    if cfg.epochs != "auto":
        return _fixed(
            cfg, per_epoch, cfg.epochs, interval, None if patience == "auto" else patience
        )
    fallback = fixed_reason or _no_plateau_reason(cfg, n_dev)
    if fallback is not None:
        plan = _fixed(cfg, per_epoch, cfg.fallback_epochs, interval, None)
        return StoppingPlan(**{**plan.__dict__, "fallback": fallback})
    total = max(cfg.max_steps or math.ceil(cfg.max_epochs * per_epoch), 1)
    # the length is unknown in advance: warm up as the fallback-length run would
    nominal = math.ceil(cfg.fallback_epochs * per_epoch)
    if patience == "auto":
        patience = max(2, math.ceil(per_epoch / (interval or per_epoch)))
    return StoppingPlan(
        "plateau",
        per_epoch,
        total,
        int(cfg.warmup_ratio * min(nominal, total)),
        interval,
        patience,
        cfg.cooldown,
    )


def _fixed(
    cfg: TrainConfig, per_epoch: int, epochs: float, interval: int | None, patience: int | None
) -> StoppingPlan:
    total = max(cfg.max_steps or math.ceil(epochs * per_epoch), 1)
    return StoppingPlan(
        "fixed", per_epoch, total, int(cfg.warmup_ratio * total), interval, patience, 0.0
    )


class LrSchedule:
    """The learning-rate factor of each step: linear warmup, constant until a decay starts,
    then linear from there to zero at `decay_end`.

    A callable object, so torch's LambdaLR keeps its fields in the scheduler's state and a
    resumed run continues the same decay. With the decay from the warmup's end to the
    planned total it gives the same factors as transformers' linear schedule.
    """

    def __init__(
        self,
        warmup: int,
        decay_start: int | None = None,
        decay_end: int | None = None,
        offset: int = 0,
    ):
        self.warmup = warmup
        self.decay_start = decay_start
        self.decay_end = decay_end
        # a run that is one slice of a longer schedule (a federated client's round) starts
        # at this step of it
        self.offset = offset

    @classmethod
    def for_plan(cls, plan: StoppingPlan) -> LrSchedule:
        """Return the schedule a plan starts with (plateau: no decay until it is started)."""
        if plan.mode == "fixed":
            return cls(plan.warmup, plan.warmup, plan.total)
        return cls(plan.warmup)

    @property
    def decaying(self) -> bool:
        """Whether a decay has been set."""
        return self.decay_end is not None

    def decay(self, start: int, end: int) -> None:
        """Decay linearly from the factor at step `start` to zero at step `end`."""
        self.decay_start, self.decay_end = start, end

    def _warm(self, step: int) -> float:
        return float(step) / float(max(1, self.warmup)) if step < self.warmup else 1.0

    def __call__(self, step: int) -> float:
        step += self.offset
        if self.decay_start is None or self.decay_end is None or step < self.decay_start:
            return self._warm(step)
        # from the factor the decay starts at (1 after the warmup) down to zero
        span = float(max(1, self.decay_end - self.decay_start))
        return self._warm(self.decay_start) * max(0.0, float(self.decay_end - step) / span)


def metric_standard_error(value: float, n: int) -> float:
    """Return the binomial standard error of a rate `value` (accuracy, macro-F1) measured on
    `n` rows, with the rate kept at least 1/n away from 0 and 1 so a perfect score has one."""
    n = max(n, 1)
    p = min(max(value, 1 / n), 1 - 1 / n)
    return math.sqrt(p * (1 - p) / n)


def _epoch_of(step: int, plan: StoppingPlan) -> str:
    return f"{step / plan.per_epoch:.1f}"


def _reason_text(reason: str, cfg: TrainConfig, plan: StoppingPlan, state: TrainingState) -> str:
    metric = cfg.early_stopping.metric
    if reason == "plateau":
        return (
            f"the dev {metric} stopped improving ({plan.patience} evaluations without a better "
            "value), so the learning rate cooled down to zero and training stopped"
        )
    if reason == "patience":
        return f"early stopping: the dev {metric} did not improve for {plan.patience} evaluations"
    if reason == "max_epochs":
        return f"reached the ceiling of train.max_epochs={cfg.max_epochs:g} without a plateau"
    if reason == "max_steps":
        return f"reached the step budget train.max_steps={cfg.max_steps}"
    if reason == "max_minutes":
        return (
            f"spent the time budget train.max_minutes={cfg.max_minutes:g} "
            f"({state.elapsed_seconds / 60:.1f} min)"
        )
    if reason == "fallback":
        return (
            f"epochs auto could not stop on a plateau because {plan.fallback}, so it trained "
            f"the fixed train.fallback_epochs={cfg.fallback_epochs:g}"
        )
    epochs = cfg.epochs if isinstance(cfg.epochs, str) else f"{cfg.epochs:g}"
    budget = f", train.max_steps={cfg.max_steps}" if cfg.max_steps else ""
    return f"trained the fixed length (train.epochs={epochs}{budget})"


def stop_sentence(cfg: TrainConfig, plan: StoppingPlan, state: TrainingState) -> str:
    """Return why the run stopped, where, and which checkpoint it kept, as one sentence."""
    reason = state.stop_reason or ("fallback" if plan.fallback else "epochs")
    sentence = (
        f"{_reason_text(reason, cfg, plan, state)}, at step {state.step} "
        f"(epoch {_epoch_of(state.step, plan)})"
    )
    metric = cfg.early_stopping.metric
    if state.passed_over is not None:
        step, value, error = state.passed_over
        sentence += (
            f"; kept the final, cooled-down weights ({metric} {state.best_metric:.4f} on dev): "
            f"the best checkpoint on dev (step {int(step)}, {metric} {value:.4f}) was not "
            f"better by more than the split's standard error ({error:.4f})"
        )
    elif state.best_step is not None and state.best_metric is not None:
        which = "final weights" if state.best_step == state.step else "best checkpoint on dev"
        sentence += (
            f"; kept the {which}: step {state.best_step} (epoch "
            f"{_epoch_of(state.best_step, plan)}), {metric} {state.best_metric:.4f}"
        )
    return sentence
