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
