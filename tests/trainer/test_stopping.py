"""The stopping plan and the learning-rate schedule, without training."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import get_linear_schedule_with_warmup

from modelyard.errors import RecipeError
from modelyard.recipe import TrainConfig, build_recipe
from modelyard.trainer.stopping import (
    LrSchedule,
    eval_interval,
    metric_standard_error,
    plan_stopping,
)


def _cfg(**train: Any) -> TrainConfig:
    return build_recipe({"data": {"path": "d.csv"}, "train": train}).train


@pytest.mark.parametrize(
    ("n_train", "expected"),
    [
        (320, 10),  # 10 steps an epoch: once an epoch
        (3_200, 32),  # 100 steps: every 1,000 rows (32 steps of 32), about 3 times an epoch
        (64_000, 500),  # 2,000 steps: 4 times an epoch
    ],
)
def test_auto_eval_interval_scales_with_the_data(n_train: int, expected: int) -> None:
    cfg = _cfg()
    per_epoch = -(-n_train // cfg.batch_size)
    assert eval_interval(cfg, per_epoch) == expected


def test_explicit_eval_interval_is_kept() -> None:
    assert eval_interval(_cfg(eval_every=7), 100) == 7
    assert eval_interval(_cfg(eval_every=None), 100) is None


def test_auto_plans_a_plateau_search_under_a_ceiling() -> None:
    plan = plan_stopping(_cfg(), n_train=3_200, n_dev=400)
    assert plan.mode == "plateau" and plan.fallback is None
    assert plan.total == 20 * 100  # max_epochs
    assert plan.eval_every == 32 and plan.patience == 4  # about one epoch of evaluations
    assert plan.warmup == int(0.06 * 3 * 100)  # as long as a fallback_epochs run's
    assert plan.cooldown == 0.2


def test_patience_is_at_least_two_evaluations() -> None:
    assert plan_stopping(_cfg(), 320, 40).patience == 2  # one evaluation an epoch
    assert plan_stopping(_cfg(early_stopping={"patience": 5}), 320, 40).patience == 5


def test_max_steps_replaces_the_ceiling() -> None:
    assert plan_stopping(_cfg(max_steps=150), 3_200, 400).total == 150
    fixed = plan_stopping(_cfg(epochs=2, max_steps=150), 3_200, 400)
    assert fixed.mode == "fixed" and fixed.total == 150


def test_a_number_of_epochs_is_that_many_without_patience() -> None:
    plan = plan_stopping(_cfg(epochs=2.5), 3_200, 400)
    assert (plan.mode, plan.total, plan.patience, plan.warmup) == ("fixed", 250, None, 15)
    assert plan_stopping(_cfg(epochs=2, early_stopping={"patience": 3}), 3_200, 400).patience == 3


@pytest.mark.parametrize(
    ("n_dev", "train", "fixed_reason", "reason"),
    [
        (0, {}, None, "no dev rows"),
        (19, {}, None, "19 dev rows are too few"),
        (5, {"early_stopping": {"min_dev_rows": 5}}, None, None),
        (400, {"early_stopping": {"patience": None}}, None, "early stopping is off"),
        (400, {}, "DP-SGD plans its noise", "DP-SGD plans its noise"),
    ],
)
def test_auto_falls_back_to_a_fixed_length(
    n_dev: int, train: dict[str, Any], fixed_reason: str | None, reason: str | None
) -> None:
    plan = plan_stopping(_cfg(**train), 3_200, n_dev, fixed_reason)
    if reason is None:
        assert plan.mode == "plateau"
        return
    assert plan.mode == "fixed" and reason in (plan.fallback or "")
    assert plan.total == 3 * 100 and plan.patience is None  # fallback_epochs, exactly


def test_fixed_schedule_matches_transformers_linear_schedule() -> None:
    for warmup, total in ((0, 10), (3, 10), (6, 100), (1, 1)):
        ours = LrSchedule(warmup, warmup, total)
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        reference = get_linear_schedule_with_warmup(optimizer, warmup, total).lr_lambdas[0]
        assert [ours(s) for s in range(total + 2)] == [reference(s) for s in range(total + 2)]


def test_plateau_schedule_is_constant_until_the_cool_down() -> None:
    schedule = LrSchedule(4)
    assert [schedule(s) for s in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert schedule(10_000) == 1.0 and not schedule.decaying
    schedule.decay(100, 120)
    assert schedule(100) == 1.0 and schedule(110) == 0.5 and schedule(120) == 0.0
    assert schedule.decaying


def test_a_cool_down_started_in_the_warmup_never_raises_the_rate() -> None:
    schedule = LrSchedule(10)
    schedule.decay(2, 6)
    factors = [schedule(s) for s in range(2, 7)]
    assert factors == pytest.approx([0.2, 0.15, 0.1, 0.05, 0.0])


def test_the_ceiling_cool_down_ends_at_the_ceiling() -> None:
    plan = plan_stopping(_cfg(), 3_200, 400)
    start = plan.ceiling_cooldown_start()
    assert start + plan.cooldown_steps(start) == plan.total


def test_schedule_state_survives_the_scheduler_state_dict() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = LrSchedule(2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    schedule.decay(5, 9)
    fresh = LrSchedule(2)
    torch.optim.lr_scheduler.LambdaLR(optimizer, fresh).load_state_dict(scheduler.state_dict())
    assert (fresh.decay_start, fresh.decay_end) == (5, 9)


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"epochs": 0}, "train.epochs: must be auto or a number above 0"),
        ({"epochs": "long"}, "train.epochs: must be auto or a number above 0"),
        ({"eval_every": 2.5}, "train.eval_every: must be auto or a whole number"),
        ({"early_stopping": {"patience": 0}}, "patience: must be auto or a whole number"),
        ({"cooldown": 2}, "train.cooldown"),
        ({"max_minutes": 0}, "train.max_minutes"),
    ],
)
def test_bad_stopping_options_are_recipe_errors(train: dict[str, Any], message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        _cfg(**train)


@pytest.mark.parametrize(
    ("value", "n", "expected"),
    [
        (0.8, 24, (0.8 * 0.2 / 24) ** 0.5),
        (0.87, 150, (0.87 * 0.13 / 150) ** 0.5),
        # a perfect score still has an error bar, as if one row of n were wrong
        (1.0, 150, ((1 - 1 / 150) / 150 / 150) ** 0.5),
        (0.0, 10, (0.1 * 0.9 / 10) ** 0.5),
    ],
)
def test_the_standard_error_of_a_dev_rate(value: float, n: int, expected: float) -> None:
    assert metric_standard_error(value, n) == pytest.approx(expected)
