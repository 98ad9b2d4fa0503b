"""The fine-tuning loop: optimizer choice, step observers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from modelyard.data.splits import Split
from modelyard.errors import RecipeError
from modelyard.recipe import build_recipe
from modelyard.trainer.loop import FineTuner, make_optimizer, steps_per_epoch
from tests.conftest import make_rows


def _model() -> torch.nn.Module:
    model = torch.nn.Module()
    model.dense = torch.nn.Linear(4, 3)
    model.LayerNorm = torch.nn.LayerNorm(3)  # named as in BERT
    model.dense.bias.requires_grad_(False)  # frozen parameters are left out
    return model


def test_default_is_adamw_without_decay_on_norms_and_biases() -> None:
    recipe = build_recipe({"data": {"path": "d.csv"}, "train": {"weight_decay": 0.1}})
    optimizer = make_optimizer(_model(), recipe.train)
    assert isinstance(optimizer, torch.optim.AdamW)
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and len(decay["params"]) == 1  # the linear weight
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) == 2  # the norm's two


def test_sgd_with_momentum_and_a_large_learning_rate() -> None:
    recipe = build_recipe(
        {"data": {"path": "d.csv"}, "train": {"optimizer": "sgd", "lr": 0.5, "momentum": 0.8}}
    )
    optimizer = make_optimizer(_model(), recipe.train)
    assert isinstance(optimizer, torch.optim.SGD)
    assert all(g["lr"] == 0.5 and g["momentum"] == 0.8 for g in optimizer.param_groups)


def test_unknown_optimizer_is_a_recipe_error() -> None:
    with pytest.raises(RecipeError, match=r"train.optimizer.*'adamw' or 'sgd'"):
        build_recipe({"data": {"path": "d.csv"}, "train": {"optimizer": "lion"}})


def test_observers_see_every_optimizer_step_and_training_stays_in_train_mode(
    tmp_path: Path, tiny_backbone: Path
) -> None:
    from modelyard.methods.task_model import build_task_model
    from modelyard.models import load_tokenizer
    from modelyard.models.encoding import Encoded, encode_split

    rows = make_rows(40, seed=1)
    names = sorted({label for _, label in rows})
    split = Split([t for t, _ in rows], [names.index(label) for _, label in rows])
    train = encode_split(load_tokenizer(tiny_backbone), split, 32)
    cfg = build_recipe(
        {"data": {"path": "x.csv"}, "train": {"epochs": 2, "batch_size": 8, "grad_accum": 2}}
    ).train
    seen: list[int] = []
    modes: list[bool] = []

    class Observer:
        def after_step(self, model: torch.nn.Module, step: int) -> None:
            seen.append(step)
            model.eval()  # as a prediction pass leaves it

    class ModeSpy:
        def adjust_loss(self, model: torch.nn.Module, loss: torch.Tensor) -> torch.Tensor:
            modes.append(model.training)
            return loss

        def after_backward(self, model: torch.nn.Module, compute_loss: Any, accum: int) -> None:
            return None

    model = build_task_model(tiny_backbone, names, "cls")
    spies = {"hooks": [ModeSpy()], "observers": [Observer()]}
    tuner = FineTuner(model, cfg, torch.device("cpu"), None, 0, 0, tmp_path, False, **spies)
    result = tuner.fit(train, Encoded([], None, [], 0))
    assert steps_per_epoch(40, cfg) == 3  # 5 batches of 8, two per step
    assert result.steps == 6 and seen == [1, 2, 3, 4, 5, 6]
    assert len(modes) == 10 and all(modes)  # dropout stays on after every observer


# --- stopping: plateau, budgets, the best checkpoint, the fallback, resume -------------------


class _Weights:
    """Records the model's weights and the learning rate after every optimizer step."""

    def __init__(self, tuner: FineTuner | None = None, fail_at: int | None = None) -> None:
        self.at: dict[int, dict[str, torch.Tensor]] = {}
        self.lr: dict[int, float] = {}
        self.fail_at = fail_at
        self.tuner = tuner

    def after_step(self, model: torch.nn.Module, step: int) -> None:
        if step == self.fail_at:
            raise KeyboardInterrupt  # as a kill after the last checkpoint
        self.at[step] = {k: v.detach().clone() for k, v in model.state_dict().items()}


def _data(tiny_backbone: Path, n: int, seed: int = 1) -> tuple[Any, list[str]]:
    from modelyard.models import load_tokenizer
    from modelyard.models.encoding import encode_split

    rows = make_rows(n, seed=seed)
    names = sorted({label for _, label in rows})
    split = Split([t for t, _ in rows], [names.index(label) for _, label in rows])
    return encode_split(load_tokenizer(tiny_backbone), split, 32), names


def _tuner(
    tiny_backbone: Path, names: list[str], work: Path, train: dict[str, Any], **kwargs: Any
) -> FineTuner:
    from modelyard.methods.task_model import build_task_model

    cfg = build_recipe(
        {"data": {"path": "x.csv"}, "train": {"batch_size": 8, "lr": 5e-3, **train}}
    ).train
    torch.manual_seed(0)
    model = build_task_model(tiny_backbone, names, "cls")
    return FineTuner(model, cfg, torch.device("cpu"), None, 0, 0, work, False, **kwargs)


def _scripted(monkeypatch: pytest.MonkeyPatch, values: dict[int, float], default: float) -> None:
    """Make the dev metric a function of the step: `values[step]`, else `default`."""
    import modelyard.trainer.loop as loop

    def metric(logits: Any, labels: Any) -> dict[str, float]:
        step = metric.step  # type: ignore[attr-defined]
        value = values.get(step, default)
        return {"loss": 1 - value, "accuracy": value, "macro_f1": value}

    real_evaluate = loop.FineTuner._evaluate

    def evaluate(self: FineTuner, run: Any, decide: bool = True) -> None:
        metric.step = run.state.step  # type: ignore[attr-defined]
        real_evaluate(self, run, decide)

    monkeypatch.setattr(loop, "dev_metrics", metric)
    monkeypatch.setattr(loop.FineTuner, "_evaluate", evaluate)


def test_a_plateau_cools_down_from_the_weights_reached_and_keeps_them_within_the_noise(
    tmp_path: Path, tiny_backbone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, names = _data(tiny_backbone, 80)  # 10 steps an epoch, evaluated once an epoch
    dev, _ = _data(tiny_backbone, 24, seed=2)
    _scripted(monkeypatch, {10: 0.5, 20: 0.8, 30: 0.7, 48: 0.75}, default=0.6)
    weights = _Weights()
    tuner = _tuner(tiny_backbone, names, tmp_path, {"checkpoint_every": None}, observers=[weights])
    result = tuner.fit(train, dev)
    # best at step 20; steps 30 and 40 do not beat it (patience 2): from step 40's weights the
    # learning rate cools down over 0.2 * 40 = 8 steps. The final weights score 0.75, below
    # step 20's 0.8 by less than one standard error on 24 dev rows (0.082): they are kept
    assert result.stopping["patience_evals"] == 2 and result.stopping["eval_every_steps"] == 10
    assert (result.stop_reason, result.steps, result.stopped_early) == ("plateau", 48, True)
    assert result.stopping["passed_over_step"] == 20
    assert result.stopping["best_step"] == 48 and result.best_metric == 0.75
    assert [h["step"] for h in result.history] == [10, 20, 30, 40, 48]
    assert "kept the final, cooled-down weights (macro_f1 0.7500 on dev)" in result.stopped_because
    assert "(step 20, macro_f1 0.8000) was not better by more than" in result.stopped_because
    final = tuner.model.state_dict()
    for key, value in weights.at[48].items():
        assert torch.equal(final[key], value), key

    # the first cool-down step continues from step 40's weights: nothing goes back to step 20
    def distance(a: int, b: int) -> float:
        key = "classifier.weight"
        return float((weights.at[a][key] - weights.at[b][key]).norm())

    assert distance(41, 40) < distance(41, 20)


@pytest.mark.parametrize(
    ("metric", "final"),
    [("macro_f1", 0.5), ("loss", 0.75)],
    ids=["clearly-worse-final-weights", "dev-loss-has-no-error-bar"],
)
def test_an_earlier_checkpoint_clearly_better_on_dev_is_restored(
    tmp_path: Path,
    tiny_backbone: Path,
    monkeypatch: pytest.MonkeyPatch,
    metric: str,
    final: float,
) -> None:
    train, names = _data(tiny_backbone, 80)
    dev, _ = _data(tiny_backbone, 24, seed=2)
    # macro_f1: the cool-down ends at 0.5, below step 20's 0.8 by more than one standard error;
    # loss (1 - value here): lower is better and the best checkpoint on dev is always kept
    _scripted(monkeypatch, {10: 0.5, 20: 0.8, 30: 0.7, 48: final}, default=0.6)
    weights = _Weights()
    options = {"checkpoint_every": None, "early_stopping": {"metric": metric}}
    tuner = _tuner(tiny_backbone, names, tmp_path, options, observers=[weights])
    result = tuner.fit(train, dev)
    assert result.steps == 48 and "passed_over_step" not in result.stopping
    assert result.stopping["best_step"] == 20
    assert f"kept the best checkpoint on dev: step 20 (epoch 2.0), {metric}" in (
        result.stopped_because
    )
    final_weights = tuner.model.state_dict()
    for key, value in weights.at[20].items():
        assert torch.equal(final_weights[key], value), key


def test_a_cool_down_that_improves_on_dev_keeps_the_final_weights(
    tmp_path: Path, tiny_backbone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, names = _data(tiny_backbone, 80)
    dev, _ = _data(tiny_backbone, 24, seed=2)
    _scripted(monkeypatch, {20: 0.8, 48: 0.85}, default=0.6)
    tuner = _tuner(tiny_backbone, names, tmp_path, {"checkpoint_every": None})
    result = tuner.fit(train, dev)
    assert result.stopping["best_step"] == 48 and "passed_over_step" not in result.stopping
    assert "kept the final weights: step 48 (epoch 4.8), macro_f1 0.8500" in (
        result.stopped_because
    )


def test_a_fixed_length_still_restores_the_best_checkpoint_on_dev(
    tmp_path: Path, tiny_backbone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, names = _data(tiny_backbone, 80)
    dev, _ = _data(tiny_backbone, 24, seed=2)
    # the last epoch is within one standard error of the best, but only epochs auto prefers
    # its final weights: a fixed length keeps the best on dev, as transformers' Trainer does
    _scripted(monkeypatch, {20: 0.8}, default=0.75)
    weights = _Weights()
    options = {"checkpoint_every": None, "epochs": 3}
    tuner = _tuner(tiny_backbone, names, tmp_path, options, observers=[weights])
    result = tuner.fit(train, dev)
    assert result.steps == 30 and result.stopping["best_step"] == 20
    final = tuner.model.state_dict()
    for key, value in weights.at[20].items():
        assert torch.equal(final[key], value), key


def test_a_plateau_keeps_the_best_weights_when_there_is_no_cool_down_to_run(
    tmp_path: Path, tiny_backbone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, names = _data(tiny_backbone, 16)  # 2 steps an epoch
    dev, _ = _data(tiny_backbone, 24, seed=2)
    _scripted(monkeypatch, {2: 0.9}, default=0.5)
    weights = _Weights()
    options = {"checkpoint_every": None, "cooldown": 0, "early_stopping": {"min_dev_rows": 1}}
    tuner = _tuner(tiny_backbone, names, tmp_path, options, observers=[weights])
    result = tuner.fit(train, dev)
    assert (result.stop_reason, result.steps) == ("plateau", 6)  # no step after the plateau
    assert result.stopping["best_step"] == 2 and result.best_metric == 0.9
    final = tuner.model.state_dict()
    for key, value in weights.at[2].items():
        assert torch.equal(final[key], value), key


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        # the plateau is seen at step 30; its cool-down (6 steps) runs into the ceiling (35)
        ({"max_epochs": 3.5}, ("max_epochs", 35)),
        # patience runs out at step 30, the last planned step of 3 fixed epochs
        ({"epochs": 3, "early_stopping": {"patience": 2}}, (None, 30)),
    ],
    ids=["cool-down-reaches-the-ceiling", "patience-at-the-last-epoch"],
)
def test_a_stop_at_the_planned_end_is_not_an_early_stop(
    tmp_path: Path,
    tiny_backbone: Path,
    monkeypatch: pytest.MonkeyPatch,
    options: dict[str, Any],
    expected: tuple[str | None, int],
) -> None:
    train, names = _data(tiny_backbone, 80)
    dev, _ = _data(tiny_backbone, 24, seed=2)
    _scripted(monkeypatch, {10: 0.9}, default=0.5)
    tuner = _tuner(tiny_backbone, names, tmp_path, {"checkpoint_every": None, **options})
    result = tuner.fit(train, dev)
    reason, steps = expected
    assert (result.steps, result.stopped_early) == (steps, False)  # every planned step ran
    assert reason is None or result.stop_reason == reason


def test_no_cool_down_stops_at_the_plateau(
    tmp_path: Path, tiny_backbone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, names = _data(tiny_backbone, 80)
    dev, _ = _data(tiny_backbone, 24, seed=2)
    _scripted(monkeypatch, {10: 0.9}, default=0.5)
    tuner = _tuner(tiny_backbone, names, tmp_path, {"cooldown": 0, "checkpoint_every": None})
    result = tuner.fit(train, dev)
    assert (result.stop_reason, result.steps, result.stopping["best_step"]) == ("plateau", 30, 10)


def test_a_tie_keeps_the_later_weights_but_is_no_improvement(
    tmp_path: Path, tiny_backbone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, names = _data(tiny_backbone, 80)
    dev, _ = _data(tiny_backbone, 24, seed=2)
    _scripted(monkeypatch, {}, default=1.0)
    tuner = _tuner(tiny_backbone, names, tmp_path, {"cooldown": 0, "checkpoint_every": None})
    result = tuner.fit(train, dev)
    assert result.steps == 30 and result.stopping["best_step"] == 30


def test_the_step_budget_cools_down_to_end_at_max_steps(
    tmp_path: Path, tiny_backbone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, names = _data(tiny_backbone, 80)
    dev, _ = _data(tiny_backbone, 24, seed=2)
    _scripted(monkeypatch, {s: s / 100 for s in range(100)}, default=0.0)  # always improving
    lrs: list[float] = []
    tuner = _tuner(tiny_backbone, names, tmp_path, {"max_steps": 36, "checkpoint_every": None})

    class Rate:
        def after_step(self, model: torch.nn.Module, step: int) -> None:
            lrs.append(tuner_optimizer_lr())

    def tuner_optimizer_lr() -> float:
        return float(_Spy.optimizer.param_groups[0]["lr"])

    class _Spy:
        optimizer: Any = None

    real = torch.optim.lr_scheduler.LambdaLR.__init__

    def spy(self: Any, optimizer: Any, *args: Any, **kwargs: Any) -> None:
        _Spy.optimizer = optimizer
        real(self, optimizer, *args, **kwargs)

    monkeypatch.setattr(torch.optim.lr_scheduler.LambdaLR, "__init__", spy)
    tuner.observers.append(Rate())
    result = tuner.fit(train, dev)
    assert (result.stop_reason, result.steps) == ("max_steps", 36)
    start = 36 - round(36 * 0.2 / 1.2)  # 30: 30 steps, then a cool-down of 6
    assert result.stopping["ceiling_steps"] == 36
    assert lrs[start - 1] == pytest.approx(5e-3)  # constant until the cool-down
    assert lrs[-1] == 0.0 and lrs[start:] == sorted(lrs[start:], reverse=True)
    assert "train.max_steps=36" in result.stopped_because


class _FakeClock:
    """A clock that moves only when told: `per_step` seconds at every optimizer step."""

    def __init__(self, per_step: float) -> None:
        self.now, self.per_step = 1000.0, per_step

    def __call__(self) -> float:
        return self.now

    def after_step(self, model: torch.nn.Module, step: int) -> None:
        self.now += self.per_step


@pytest.mark.parametrize(("epochs", "steps"), [("auto", 10), (8, 10)])
def test_the_time_budget_is_honoured(
    tmp_path: Path,
    tiny_backbone: Path,
    monkeypatch: pytest.MonkeyPatch,
    epochs: Any,
    steps: int,
) -> None:
    train, names = _data(tiny_backbone, 80)
    dev, _ = _data(tiny_backbone, 24, seed=2)
    _scripted(monkeypatch, {s: s / 100 for s in range(100)}, default=0.0)
    clock = _FakeClock(per_step=6.0)  # a minute is 10 steps
    tuner = _tuner(
        tiny_backbone,
        names,
        tmp_path,
        {"epochs": epochs, "max_minutes": 1, "checkpoint_every": None},
        observers=[clock],
        clock=clock,
    )
    result = tuner.fit(train, dev)
    assert (result.stop_reason, result.steps) == ("max_minutes", steps)
    assert result.wall_seconds == pytest.approx(60.0)
    assert "train.max_minutes=1 (1.0 min)" in result.stopped_because


def test_auto_starts_the_cool_down_in_time_for_the_budget(
    tmp_path: Path, tiny_backbone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, names = _data(tiny_backbone, 80)
    dev, _ = _data(tiny_backbone, 24, seed=2)
    _scripted(monkeypatch, {s: s / 100 for s in range(100)}, default=0.0)
    clock = _FakeClock(per_step=6.0)
    weights = _Weights()
    cfg = {"max_minutes": 1, "checkpoint_every": None, "warmup_ratio": 0.0}
    tuner = _tuner(tiny_backbone, names, tmp_path, cfg, observers=[clock, weights], clock=clock)
    result = tuner.fit(train, dev)
    # after step 8 (48 s) one more step and a cool-down of 20% would pass 60 s: steps 9 and 10
    # decay the rate, and step 10 ends at the budget
    assert result.steps == 10
    assert torch.equal(weights.at[10]["classifier.weight"], tuner.model.classifier.weight)


@pytest.mark.parametrize(("n_dev", "why"), [(0, "no dev rows"), (12, "12 dev rows are too few")])
def test_auto_without_enough_dev_rows_trains_the_fallback_length(
    tmp_path: Path, tiny_backbone: Path, n_dev: int, why: str
) -> None:
    train, names = _data(tiny_backbone, 80)
    dev, _ = _data(tiny_backbone, n_dev, seed=2)
    weights = _Weights()
    tuner = _tuner(tiny_backbone, names, tmp_path, {"fallback_epochs": 2}, observers=[weights])
    result = tuner.fit(train, dev)
    assert (result.stop_reason, result.steps, result.stopped_early) == ("fallback", 20, False)
    assert why in result.stopped_because and "train.fallback_epochs=2" in result.stopped_because
    if n_dev == 0:  # nothing to pick by: the final weights are kept
        assert torch.equal(weights.at[20]["classifier.weight"], tuner.model.classifier.weight)


def test_resume_during_the_cool_down_matches_an_uninterrupted_run(
    tmp_path: Path, tiny_backbone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, names = _data(tiny_backbone, 80)
    dev, _ = _data(tiny_backbone, 24, seed=2)
    # the budget's cool-down runs from step 25 to 30; checkpoints at 24 and 27; killed at 28
    opts = {"checkpoint_every": 3, "max_steps": 30}
    reference = _tuner(tiny_backbone, names, tmp_path / "ref", opts)
    whole = reference.fit(train, dev)
    work = tmp_path / "killed"
    killed = _tuner(tiny_backbone, names, work, opts, observers=[_Weights(fail_at=28)])
    with pytest.raises(KeyboardInterrupt):
        killed.fit(train, dev)
    resumed = _tuner(tiny_backbone, names, work, opts)
    again = resumed.fit(train, dev, resume=True)
    assert again.resumed_from_step == 27 and again.steps == whole.steps == 30
    assert (again.stop_reason, again.history) == (whole.stop_reason, whole.history)
    for key, value in reference.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
