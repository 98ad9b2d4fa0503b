"""Does FSDP train on this machine's CPU with gloo? A probe behind the note in scale.md.

    nice -n 5 python bench/fsdp_probe.py

A tiny BERT classifier without dropout (2 layers, hidden 32), 8 random sequences, 5 AdamW steps:
once in one process, then in 2 gloo processes (each on half of every batch) wrapped in FSDP2
(`fully_shard` per layer and the root), FSDP1 (`FullyShardedDataParallel`, as documented, and
with `device_id=torch.device("cpu")`) and, as a control,
not wrapped at all (no gradient exchange). FSDP works if its losses follow the one-process run
and the control's do not. Not a speed figure: FSDP is not wired into `modelyard train`.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, machine

KINDS = ("fsdp2", "fsdp1", "fsdp1-cpu", "unwrapped")
START, END = "<!-- fsdp_probe:start -->", "<!-- fsdp_probe:end -->"


def _model() -> Any:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=2,
    )
    return BertForSequenceClassification(config)


def _train(model: Any, rank: int = 0, world: int = 1, steps: int = 5) -> list[float]:
    """Return the batch-mean loss of each step (averaged over the processes)."""
    import torch
    import torch.distributed as dist

    generator = torch.Generator().manual_seed(1)
    x = torch.randint(5, 100, (8, 16), generator=generator)
    y = torch.randint(0, 2, (8,), generator=generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(
            model(input_ids=x[rank::world]).logits, y[rank::world]
        )
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        mean = loss.detach().clone()
        if world > 1:
            dist.all_reduce(mean)
            mean /= world
        losses.append(float(mean))
    return losses


def worker(kind: str, out: Path) -> None:
    """Train as one rank of a launch, wrapped as `kind`; rank 0 writes what it saw."""
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    try:
        found = _wrapped_run(kind, rank, world)
    except Exception as exc:  # what fails is the finding
        found = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
    if rank == 0:
        out.write_text(json.dumps(found))
    dist.destroy_process_group()


def _wrapped_run(kind: str, rank: int, world: int) -> dict[str, Any]:
    """Return the losses of `_train` with the model wrapped as `kind` (and the size of the
    gathered full state dict for FSDP2)."""
    import torch

    model = _model()
    if kind == "fsdp2":
        from torch.distributed.fsdp import fully_shard

        for layer in model.bert.encoder.layer:
            fully_shard(layer)
        fully_shard(model)
    elif kind.startswith("fsdp1"):
        from torch.distributed.fsdp import FullyShardedDataParallel

        cpu = {"device_id": torch.device("cpu")} if kind == "fsdp1-cpu" else {}
        model = FullyShardedDataParallel(model, **cpu)
    losses = _train(model, rank, world)
    gathered = None
    if kind == "fsdp2":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        gathered = sum(v.numel() for v in get_model_state_dict(model, options=options).values())
    return {"losses": losses, "full_state_numel": gathered}


def main() -> None:
    import torch

    from modelyard.trainer.launch import LaunchPlan, launch
    from scale_ddp import merge_results

    torch.set_num_threads(1)
    single = _train(_model())
    found: dict[str, Any] = {"one_process_losses": [round(v, 6) for v in single]}
    for kind in KINDS:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out.json"
            try:
                launch(LaunchPlan(2), [__file__, kind, str(out)], Path(tmp), kind, 1)
                seen = json.loads(out.read_text())
                if "error" in seen:
                    found[kind] = seen
                else:
                    gap = max(abs(a - b) for a, b in zip(seen["losses"], single, strict=True))
                    found[kind] = {"max_loss_difference": gap, **seen}
            except Exception as exc:  # a failure is the finding
                found[kind] = {"error": f"{type(exc).__name__}: {exc}"}
        print(kind, json.dumps(found[kind]), flush=True)
    works = {k: "error" not in found[k] and found[k]["max_loss_difference"] < 1e-5 for k in KINDS}
    figures = {"fsdp_probe": {**found, "follows_one_process": works, "machine": machine()}}
    lines = [
        START,
        "## FSDP probe (not wired into modelyard train)",
        "",
        "Tiny BERT without dropout, 8 sequences, 5 AdamW steps; 2 gloo processes on the CPU "
        "against one process (`bench/fsdp_probe.py`). Largest difference of a step's loss:",
        "",
    ]
    for kind in KINDS:
        entry = found[kind]
        shown = entry.get("error") or f"{entry['max_loss_difference']:.2e}"
        lines.append(f"- {kind}: {shown}")
    following = [k for k in ("fsdp2", "fsdp1", "fsdp1-cpu") if works[k]]
    verdict = (
        f"{', '.join(following)} {'follows' if len(following) == 1 else 'follow'} the "
        "one-process run (within 1e-5)"
        if following
        else "neither FSDP variant followed the one-process run"
    )
    control = "drifts" if not works["unwrapped"] else "also follows (the probe cannot tell)"
    lines += [
        "",
        f"{verdict}; the unwrapped control {control}. FSDP is not an option of `modelyard "
        "train`: every FSDP forward pass is collective, so rank-0-only evaluation, best-weight "
        "saving and checkpoints would need their own sharded paths, which were not built.",
        END,
        "",
    ]
    merge_results(RESULTS, figures, "\n".join(lines), (START, END))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] in KINDS:
        worker(sys.argv[1], Path(sys.argv[2]))
    else:
        main()
