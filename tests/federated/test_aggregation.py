"""Flower's FedAvg weights by examples; FedProx's term; the LoRA payload is a small share."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch

from modelyard.federated.local import ProximalTerm
from modelyard.federated.payload import payload_bytes, trainable_state

flwr = pytest.importorskip("flwr")


def test_fedavg_is_the_example_weighted_mean() -> None:
    from flwr.app import ArrayRecord, MetricRecord, RecordDict
    from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

    a = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([0.0])}
    b = {"w": torch.tensor([3.0, 6.0]), "b": torch.tensor([4.0])}
    replies = []
    for state, n in ((a, 10), (b, 30)):
        content = RecordDict(
            {
                "arrays": ArrayRecord(OrderedDict(state)),
                "metrics": MetricRecord({"num-examples": n}),
            }
        )
        replies.append(content)
    # what FedAvg.aggregate_train does with its valid replies
    arrays = aggregate_arrayrecords(replies, "num-examples")
    got = arrays.to_torch_state_dict()
    # (10 * a + 30 * b) / 40, by hand
    assert torch.allclose(got["w"], torch.tensor([2.5, 5.0]))
    assert torch.allclose(got["b"], torch.tensor([3.0]))


def test_proximal_term_is_half_mu_squared_distance() -> None:
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0]]))
    term = ProximalTerm(model, mu=0.5)
    assert float(term.penalty(model).detach()) == 0.0
    with torch.no_grad():
        model.weight.add_(torch.tensor([[3.0, 4.0]]))
    # mu/2 * (3^2 + 4^2) = 0.25 * 25
    assert float(term.penalty(model).detach()) == pytest.approx(6.25)
    loss = torch.tensor(1.0)
    assert float(term.adjust_loss(model, loss)) == pytest.approx(7.25)


def test_lora_payload_is_a_small_share_of_the_model(tiny_backbone) -> None:  # type: ignore[no-untyped-def]
    from modelyard.methods.peft_methods import prepare_lora
    from modelyard.models import build_classifier
    from modelyard.recipe import Recipe

    recipe = Recipe.model_validate(
        {
            "data": {"path": "x.csv"},
            "model": {"backbone": str(tiny_backbone)},
            "train": {"method": "lora"},
        }
    )
    model = prepare_lora(build_classifier(tiny_backbone, ["a", "b"]), recipe)
    lora = trainable_state(model, lora_only=True)
    full = trainable_state(model, lora_only=False)
    assert all("lora_" in k or "classifier" in k for k in lora)
    assert any("classifier" in k for k in lora)  # the head travels too
    assert payload_bytes(lora) < 0.25 * payload_bytes(full)
    assert payload_bytes(lora) == sum(np.asarray(v).nbytes for v in lora.values())


def _reply(values: list[float], n: int) -> object:
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

    content = RecordDict(
        {
            "arrays": ArrayRecord(OrderedDict({"w": torch.tensor(values)})),
            "metrics": MetricRecord({"num-examples": n}),
        }
    )
    return Message(content=content, dst_node_id=1, message_type="train")


def _fedavgm(fed_recipe, ledger, **fed):  # type: ignore[no-untyped-def]
    from modelyard.federated.app import make_strategy
    from modelyard.recipe import Recipe

    spec = fed_recipe.model_dump()
    spec["federated"].update(strategy="fedavgm", **fed)
    recipe = Recipe.model_validate(spec)
    setup = type("Setup", (), {"recipe": recipe})()
    return make_strategy(setup, ledger, 0)


def _round(strategy, start: list[float], replies: list[tuple[list[float], int]]) -> list[float]:  # type: ignore[no-untyped-def]
    from flwr.app import ArrayRecord

    strategy.current_arrays = ArrayRecord(OrderedDict({"w": torch.tensor(start)}))
    arrays, _ = strategy.aggregate_train(1, [_reply(v, n) for v, n in replies])
    return [float(x) for x in arrays.to_torch_state_dict()["w"]]


def test_fedavgm_steps_the_mean_update_by_server_lr_with_momentum(fed_recipe) -> None:  # type: ignore[no-untyped-def]
    from modelyard.federated.app import Ledger

    strategy = _fedavgm(fed_recipe, Ledger(), server_lr=2.0, server_momentum=0.5)
    # round 1: the example-weighted mean is [2.5, 2]; the update 2 x (mean - start)
    assert _round(strategy, [0.0, 0.0], [([1.0, 2.0], 10), ([3.0, 2.0], 30)]) == [5.0, 4.0]
    # round 2 from [5, 4] (min_clients 2 replies): mean [6, 4], delta [1, 0]; momentum 0.5 x [2.5, 2] + [1, 0]
    assert _round(strategy, [5.0, 4.0], [([6.0, 4.0], 1), ([6.0, 4.0], 3)]) == pytest.approx(
        [9.5, 6.0]
    )


def test_fedavgm_server_lr_defaults_to_one(fed_recipe) -> None:  # type: ignore[no-untyped-def]
    from modelyard.federated.app import Ledger

    strategy = _fedavgm(fed_recipe, Ledger())
    assert _round(strategy, [0.0], [([1.0], 1), ([3.0], 1)]) == [2.0]


def test_resumed_fedavgm_continues_its_momentum(fed_recipe, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from modelyard.federated.app import (
        Ledger,
        resume_momentum,
        save_state,
        strategy_momentum,
    )

    steady = _fedavgm(fed_recipe, Ledger(), server_lr=1.0, server_momentum=0.9)
    first = _round(steady, [0.0], [([1.0], 1), ([1.0], 1)])
    ledger = Ledger()
    save_state(tmp_path, 1, {"w": torch.tensor(first)}, ledger, strategy_momentum(steady, ["w"]))
    # a server killed after round 1 and started again: a new strategy object
    resumed = _fedavgm(fed_recipe, Ledger(), server_lr=1.0, server_momentum=0.9)
    resume_momentum(resumed, tmp_path, ["w"])
    replies = [([first[0] + 1.0], 1), ([first[0] + 1.0], 2)]
    later = _round(resumed, first, replies)
    expected = _round(steady, first, replies)
    assert later == pytest.approx(expected)
    assert later == pytest.approx([1.0 + 0.9 * 1.0 + 1.0])
