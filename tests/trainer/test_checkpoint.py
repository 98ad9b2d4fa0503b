from __future__ import annotations

from pathlib import Path

import pytest
import torch

from modelyard.errors import ArtifactError
from modelyard.trainer.checkpoint import (
    TrainingState,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)


def setup() -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    return model, opt, sched


def step(
    model: torch.nn.Module, opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LambdaLR
) -> None:
    loss = model(torch.randn(5, 4)).pow(2).sum()
    loss.backward()
    opt.step()
    sched.step()
    opt.zero_grad()


def test_round_trip_restores_everything(tmp_path: Path) -> None:
    model, opt, sched = setup()
    for _ in range(3):
        step(model, opt, sched)
    save_checkpoint(
        tmp_path, model, opt, sched, TrainingState(epoch=1, batch_in_epoch=4, step=3, history=[])
    )
    step(model, opt, sched)
    expected = [p.detach().clone() for p in model.parameters()]

    model2, opt2, sched2 = setup()
    state = load_checkpoint(latest_checkpoint(tmp_path) or tmp_path, model2, opt2, sched2)
    assert (state.epoch, state.batch_in_epoch, state.step) == (1, 4, 3)
    step(model2, opt2, sched2)  # same RNG draw, same optimizer moments, same lr
    for a, b in zip(expected, model2.parameters(), strict=True):
        assert torch.equal(a, b)


def test_only_complete_checkpoints_count(tmp_path: Path) -> None:
    model, opt, sched = setup()
    save_checkpoint(tmp_path, model, opt, sched, TrainingState(step=1, history=[]))
    (tmp_path / "step-00000009").mkdir()  # a crash before the marker was written
    latest = latest_checkpoint(tmp_path)
    assert latest is not None and latest.name == "step-00000001"
    with pytest.raises(ArtifactError, match="incomplete"):
        load_checkpoint(tmp_path / "step-00000009", model, opt, sched)


def test_newer_checkpoint_replaces_older(tmp_path: Path) -> None:
    model, opt, sched = setup()
    save_checkpoint(tmp_path, model, opt, sched, TrainingState(step=1, history=[]))
    save_checkpoint(tmp_path, model, opt, sched, TrainingState(step=2, history=[]))
    assert [p.name for p in tmp_path.glob("step-*")] == ["step-00000002"]


def test_corrupt_checkpoint_gives_clear_error(tmp_path: Path) -> None:
    model, opt, sched = setup()
    path = save_checkpoint(tmp_path, model, opt, sched, TrainingState(step=1, history=[]))
    (path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="cannot resume"):
        load_checkpoint(path, model, opt, sched)
