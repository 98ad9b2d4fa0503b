"""The federation's part of a run's report: a per-round table and an accuracy plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure


def federation_markdown(federation: dict[str, Any]) -> str:
    """Return the model card section: settings, bytes communicated, per-round metrics, client ε."""
    lines = [
        "## Federated training",
        "",
        f"Trained with Flower ({federation['engine']}) across {federation['clients']} clients "
        f"(partition `{federation['partition']}`), strategy `{federation['strategy']}`, "
        f"{federation['rounds']} rounds of {federation['local_epochs']} local epochs; "
        f"{'LoRA adapters and head only' if federation['lora_only'] else 'the full model'} "
        "travelled; the training data never left the clients.",
        "",
        f"- rows per client: {federation['client_rows']}",
        f"- minimum clients per round: {federation['min_clients']}",
        f"- bytes sent by the server: {federation['bytes_sent']:,}; "
        f"received from clients: {federation['bytes_received']:,}",
    ]
    if federation.get("resumed_from_round") is not None:
        lines.append(f"- the server resumed after round {federation['resumed_from_round']}")
    if federation["dp"] is not None:
        lines.append(f"- client-side DP-SGD: {federation['dp']}")
        for client, spend in sorted(federation["client_privacy"].items()):
            lines.append(f"  - client {client}: epsilon {spend['epsilon']:.3f}")
    lines += [
        "",
        "| round | clients ok | failed | accuracy | loss | bytes sent | bytes received | s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in federation["per_round"]:
        lines.append(
            f"| {r['round']} | {r.get('clients_replied', 0)} | {r.get('clients_failed', 0)} | "
            f"{r.get('accuracy', float('nan')):.4f} | {r.get('loss', float('nan')):.4f} | "
            f"{r['bytes_sent']:,} | {r['bytes_received']:,} | {r.get('seconds', 0)} |"
        )
    return "\n".join(lines) + "\n"


def plot_rounds(rounds: list[dict[str, Any]], path: Path) -> Path:
    """Draw global test accuracy per round into `path` (PNG); return `path`."""
    fig = Figure(figsize=(5.0, 3.2), layout="constrained")
    ax = fig.add_subplot()
    xs = [r["round"] for r in rounds if "accuracy" in r]
    ys = [r["accuracy"] for r in rounds if "accuracy" in r]
    ax.plot(xs, ys, marker="o")
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy")
    ax.set_title("Federated training: global model per round")
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
