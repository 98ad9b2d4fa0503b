"""Resumable training checkpoints: safetensors and JSON only, written atomically.

A checkpoint directory `step-N` holds the model weights, the optimizer's tensors, a JSON
file with everything else (optimizer hyper-parameters, scheduler, loop position, RNG
state) and a `COMPLETE` marker written last; resume ignores directories without it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model

from modelyard.errors import ArtifactError
from modelyard.fsutil import replace_dir

MARKER = "COMPLETE"


@dataclass
class TrainingState:
    """Where the loop is, and what early stopping has seen so far."""

    epoch: int = 0
    batch_in_epoch: int = 0
    step: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    last_eval_step: int | None = None
    history: list[dict[str, Any]] | None = None
    stopped_early: bool = False  # the dev metric ended the run (patience or a plateau)
    stop_reason: str | None = None  # why the run stopped or is cooling down to stop
    stop_now: bool = False  # end the run at this step (patience, time budget spent)
    elapsed_seconds: float = 0.0  # wall time of the loop, over resumes too
    # epochs auto kept its final weights over a better-on-dev checkpoint within one standard
    # error of the metric: [that checkpoint's step, its dev metric, the standard error]
    passed_over: list[float] | None = None


def _split_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, slots in state["state"].items():
        for name, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _join_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    for idx, slots in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(slots)
    return {"state": state, "param_groups": meta["param_groups"]}


def _rng_tensors() -> dict[str, torch.Tensor]:
    rng = {"rng.cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            rng[f"rng.cuda.{i}"] = s
    return rng


def _restore_rng(tensors: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(tensors["rng.cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(
    root: Path, model: torch.nn.Module, optimizer: Any, scheduler: Any, state: TrainingState
) -> Path:
    """Write checkpoint `root/step-N` atomically, drop older ones, and return its path."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{state.step:08d}"
    tmp = root / f".tmp-{final.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))
    opt_tensors, opt_meta = _split_optimizer_state(optimizer.state_dict())
    save_file({**opt_tensors, **_rng_tensors()}, str(tmp / "optimizer.safetensors"))
    meta = {"optimizer": opt_meta, "scheduler": scheduler.state_dict(), "loop": state.__dict__}
    (tmp / "state.json").write_text(json.dumps(meta, default=float), encoding="utf-8")
    (tmp / MARKER).write_text("ok\n", encoding="utf-8")
    replace_dir(tmp, final)
    for old in root.glob("step-*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(root: Path) -> Path | None:
    """Return the newest complete checkpoint under `root`, or None."""
    done = sorted(p for p in root.glob("step-*") if (p / MARKER).is_file())
    return done[-1] if done else None


def load_checkpoint(
    path: Path, model: torch.nn.Module, optimizer: Any, scheduler: Any
) -> TrainingState:
    """Restore model, optimizer, scheduler and RNG from `path`; return the loop state.

    Raises ArtifactError when the checkpoint is incomplete or does not fit the model.
    """
    if not (path / MARKER).is_file():
        raise ArtifactError(f"checkpoint {path} is incomplete (no {MARKER} marker)")
    try:
        meta = json.loads((path / "state.json").read_text(encoding="utf-8"))
        load_model(model, str(path / "model.safetensors"))
        tensors = load_file(str(path / "optimizer.safetensors"))
    except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as exc:
        raise ArtifactError(f"cannot resume from {path}: {exc}") from None
    opt = {k: v for k, v in tensors.items() if not k.startswith("rng.")}
    optimizer.load_state_dict(_join_optimizer_state(opt, meta["optimizer"]))
    scheduler.load_state_dict(meta["scheduler"])
    _restore_rng(tensors)
    known = TrainingState.__dataclass_fields__
    # a checkpoint of an earlier version may hold fields this one no longer has
    return TrainingState(**{k: v for k, v in meta["loop"].items() if k in known})
