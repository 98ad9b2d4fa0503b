"""A client's round: its place on the federation's schedule and its label-prior adjustment."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from modelyard.federated.local import federation_schedule, label_log_prior
from modelyard.models.encoding import Encoded
from modelyard.recipe import Recipe
from modelyard.trainer.loop import ClassificationObjective
from modelyard.trainer.stopping import LrSchedule, plan_stopping


def test_offset_schedule_is_a_slice_of_the_whole() -> None:
    whole = LrSchedule(10, 10, 100)
    third = LrSchedule(10, 10, 100, offset=40)
    assert [third(s) for s in range(60)] == [whole(s + 40) for s in range(60)]


def test_rounds_continue_the_federation_schedule(fed_recipe: Recipe) -> None:
    n_train = 120
    fed = fed_recipe.federated
    assert fed is not None and fed.schedule == "federation"
    per_round = plan_stopping(fed_recipe.train.model_copy(update={"epochs": 1}), n_train, 0).total
    first = federation_schedule(fed_recipe, n_train, 1)
    second = federation_schedule(fed_recipe, n_train, 2)
    factors = [first(s) for s in range(per_round)] + [second(s) for s in range(per_round)]
    # one warmup at the start, then a single decay that reaches zero at the end of round 2 only
    assert factors[0] == 0.0
    assert max(factors) == 1.0
    assert factors[per_round] < factors[per_round - 1]  # round 2 does not warm up again
    tail = factors[first.warmup :]
    assert all(a >= b for a, b in itertools.pairwise(tail))
    assert second(per_round) == 0.0
    assert first(per_round - 1) > 0.25


def test_recipe_defaults_and_refuses_an_unknown_schedule(fed_recipe: Recipe) -> None:
    from pydantic import ValidationError

    fed = fed_recipe.federated
    assert fed is not None and fed.schedule == "federation" and fed.logit_adjustment is True
    spec = fed_recipe.model_dump()
    spec["federated"]["schedule"] = "per-epoch"
    with pytest.raises(ValidationError, match="schedule"):
        Recipe.model_validate(spec)


def test_log_prior_is_smoothed_label_shares() -> None:
    prior = label_log_prior([0, 0, 0, 1], 3)
    # add-one: (3+1)/7, (1+1)/7, (0+1)/7 -- a label the client lacks stays finite
    assert torch.allclose(prior.exp(), torch.tensor([4 / 7, 2 / 7, 1 / 7]))
    assert math.isclose(float(prior.exp().sum()), 1.0, rel_tol=1e-6)


class _Fixed(torch.nn.Module):
    """A 'model' whose logits are fixed, to read the loss off by hand."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.out = logits

    def forward(self, **batch: torch.Tensor) -> object:
        class Out:
            logits = self.out[: batch["input_ids"].shape[0]]

        return Out()


def test_adjusted_loss_adds_the_log_prior_to_the_logits() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    data = Encoded([[5, 6], [7, 8]], None, [0, 1], 2)
    index = np.arange(2)
    device = torch.device("cpu")
    log_prior = torch.log(torch.tensor([0.9, 0.1]))
    plain = ClassificationObjective(0, "accuracy").loss(_Fixed(logits), data, index, device, None)
    adjusted = ClassificationObjective(0, "accuracy", log_prior).loss(
        _Fixed(logits), data, index, device, None
    )
    expected = torch.nn.functional.cross_entropy(logits + log_prior, torch.tensor([0, 1]))
    assert float(adjusted) == pytest.approx(float(expected))
    # the minority label's example costs more when the client mostly sees the other label
    assert float(adjusted) > float(plain)


def test_frozen_lora_a_stays_at_the_global_value_through_a_round(fed_recipe: Recipe) -> None:
    from modelyard.data import load_data
    from modelyard.federated.app import FederationSetup, build_model
    from modelyard.federated.local import train_locally
    from modelyard.federated.payload import trainable_state
    from modelyard.models import load_tokenizer, resolve_backbone
    from modelyard.models.encoding import encode_split

    spec = fed_recipe.model_dump(mode="json")
    spec["federated"]["freeze_lora_a"] = True
    recipe = Recipe.model_validate(spec)
    folder = resolve_backbone(recipe.model.backbone)
    tokenizer = load_tokenizer(folder)
    bundle = load_data(recipe.data, recipe.run.seed)
    train = encode_split(tokenizer, bundle.train, recipe.model.max_length)
    setup = FederationSetup(recipe, folder, bundle.labels, 0, [train], train, folder)
    model = build_model(setup)
    before = trainable_state(model, lora_only=True)
    after = train_locally(model, recipe, train, before, 0, 1, num_labels=len(bundle.labels))
    a_names = [k for k in before if "lora_A" in k]
    b_names = [k for k in before if "lora_B" in k]
    assert a_names and b_names
    for name in a_names:
        np.testing.assert_array_equal(after.arrays[name], before[name])
    # B (zero at the start) and the head did train
    assert max(float(np.abs(after.arrays[k]).max()) for k in b_names) > 0


def _one_client_setup(fed_recipe: Recipe, **fed: object):  # type: ignore[no-untyped-def]
    from modelyard.data import load_data
    from modelyard.federated.app import FederationSetup
    from modelyard.models import load_tokenizer, resolve_backbone
    from modelyard.models.encoding import encode_split

    spec = fed_recipe.model_dump(mode="json")
    spec["federated"].update(fed)
    recipe = Recipe.model_validate(spec)
    folder = resolve_backbone(recipe.model.backbone)
    bundle = load_data(recipe.data, recipe.run.seed)
    train = encode_split(load_tokenizer(folder), bundle.train, recipe.model.max_length)
    return FederationSetup(recipe, folder, bundle.labels, 0, [train], train, folder)


def _two_rounds(setup) -> tuple[list[float], object]:  # type: ignore[no-untyped-def]
    from flwr.app import RecordDict

    from modelyard.federated.app import ClientSide, _local_round, build_model
    from modelyard.federated.payload import trainable_state

    memory = RecordDict()
    side = ClientSide(setup, 0, 0, memory)
    weights = dict(trainable_state(build_model(setup), lora_only=True))
    steps = []
    for server_round in (1, 2):
        result, _ = _local_round(side, weights, {"server-round": server_round})
        weights = result.arrays
        moments = result.optimizer_moments or {}
        steps.append(max((float(s["step"]) for s in moments.values()), default=0.0))
    return steps, memory


def test_a_client_keeps_its_optimizer_state_from_round_to_round(fed_recipe: Recipe) -> None:
    pytest.importorskip("flwr")
    setup = _one_client_setup(fed_recipe)  # the default keeps it
    steps, memory = _two_rounds(setup)
    # round 2's AdamW continued round 1's: its step count is twice one round's
    assert steps[0] > 0 and steps[1] == 2 * steps[0]
    assert "optimizer-state" in memory.array_records  # type: ignore[attr-defined]


def test_without_keeping_every_round_starts_a_fresh_optimizer(fed_recipe: Recipe) -> None:
    pytest.importorskip("flwr")
    steps, memory = _two_rounds(_one_client_setup(fed_recipe, keep_optimizer_state=False))
    assert steps == [0.0, 0.0]  # nothing returned, nothing kept
    assert "optimizer-state" not in memory.array_records  # type: ignore[attr-defined]
