"""The optimizer the loop builds: torch's fused AdamW where its kernel takes the parameters."""

from __future__ import annotations

import torch

from modelyard.recipe import build_recipe
from modelyard.trainer.loop import _fusable, make_optimizer


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.LayerNorm(5), torch.nn.Linear(5, 3))
    return model


def _train(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(1))
    for _ in range(3):
        model(x).pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def test_adamw_on_cpu_float_parameters_is_the_fused_kernel() -> None:
    recipe = build_recipe({"data": {"path": "d.csv"}, "train": {"weight_decay": 0.1}})
    optimizer = make_optimizer(_model(), recipe.train)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert all(g["fused"] for g in optimizer.param_groups)


def test_fused_steps_match_the_per_tensor_adamw() -> None:
    recipe = build_recipe({"data": {"path": "d.csv"}, "train": {"weight_decay": 0.1, "lr": 0.01}})
    fused_model, plain_model = _model(), _model()
    _train(fused_model, make_optimizer(fused_model, recipe.train))
    plain = make_optimizer(plain_model, recipe.train)
    for group in plain.param_groups:
        group["fused"] = None  # torch's per-tensor loop, as before
    _train(plain_model, plain)
    moved = [
        (a - b).abs().max().item()
        for a, b in zip(fused_model.parameters(), _model().parameters(), strict=True)
    ]
    assert min(moved) > 1e-4  # the steps changed every parameter
    for a, b in zip(fused_model.parameters(), plain_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_parameters_the_kernel_does_not_take_keep_the_per_tensor_adamw() -> None:
    on_meta = torch.nn.Parameter(torch.zeros(3, device="meta"))
    assert not _fusable([{"params": [on_meta]}])
    assert not _fusable([{"params": []}])
    assert _fusable([{"params": [torch.nn.Parameter(torch.zeros(3, dtype=torch.bfloat16))]}])
