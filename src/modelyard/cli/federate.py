"""`modelyard federate`: train across simulated Flower clients and print the rounds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def federate_command(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML; its federated: section applies.")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="key=value overrides, e.g. federated.rounds=3.")
    ] = None,
    clients: Annotated[
        int | None, typer.Option("--clients", min=1, help="Number of clients (Flower SuperNodes).")
    ] = None,
    partition: Annotated[
        str | None,
        typer.Option("--partition", help="iid, dirichlet:ALPHA or column:NAME."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the last completed round.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing run.")
    ] = False,
) -> None:
    """Train a recipe with federated learning on the Flower simulation engine."""
    from modelyard.api import federate

    result = federate(
        recipe, clients, partition, resume=resume, overwrite=overwrite, overrides=overrides
    )
    table = Table(title=f"federation: {result.run_dir}")
    for title in ("round", "clients ok", "failed", "accuracy", "bytes sent", "bytes received"):
        table.add_column(title, justify="right")
    for r in result.rounds:
        table.add_row(
            str(r["round"]),
            str(r.get("clients_replied", 0)),
            str(r.get("clients_failed", 0)),
            f"{r.get('accuracy', float('nan')):.4f}",
            f"{r['bytes_sent']:,}",
            f"{r['bytes_received']:,}",
        )
    console.print(table)
    console.print(f"test accuracy {result.metrics['accuracy']:.4f}; run saved to {result.run_dir}")


def register(app: typer.Typer) -> None:
    """Add `modelyard federate` to the main app."""
    app.command("federate")(federate_command)
