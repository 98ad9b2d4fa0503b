"""Command-line front of the training methods: `methods`, `merge`, `zeroshot`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def methods_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the training methods a recipe can name in train.method."""
    from modelyard.api import training_methods

    rows = [(m["name"], m["kind"], m["summary"]) for m in training_methods()]
    if as_json:
        console.print_json(
            json.dumps([dict(zip(("name", "kind", "summary"), r, strict=True)) for r in rows])
        )
        return
    table = Table(title="training methods (train.method)")
    for column in ("method", "artifact kind", "what trains"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def merge_command(
    run: Annotated[Path, typer.Argument(help="Adapter run directory (lora or ia3).")],
    output: Annotated[
        Path | None, typer.Option(help="Where to write the merged run (default: RUN-merged).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
) -> None:
    """Fold an adapter run into its base and save a standalone classifier run."""
    from modelyard.api import merge as merge_run

    path = merge_run(run, output, overwrite)
    console.print(f"merged classifier written to {path}")


def zeroshot_command(
    labels_file: Annotated[
        Path,
        typer.Option("--labels", help="YAML: label -> description or list of descriptions."),
    ],
    data: Annotated[Path, typer.Option(help="Labelled file to evaluate on.")],
    output: Annotated[Path, typer.Option(help="Where to write the zero-shot artifact.")] = Path(
        "runs/zeroshot"
    ),
    backbone: Annotated[str, typer.Option(help="Sentence-embedding backbone.")] = "minilm-l6",
    max_length: Annotated[int, typer.Option(min=8, help="Longer texts are truncated.")] = 128,
    temperature: Annotated[
        float, typer.Option(help="Softmax temperature over cosine similarities.")
    ] = 0.05,
    text_column: Annotated[str, typer.Option(help="Text column of --data.")] = "text",
    label_column: Annotated[str, typer.Option(help="Label column of --data.")] = "label",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Classify by similarity to label descriptions, with no training; evaluate and save the artifact."""
    from modelyard.api import zeroshot

    metrics = zeroshot(
        labels_file,
        data,
        output,
        backbone,
        max_length,
        temperature,
        text_column,
        label_column,
        overwrite,
    )
    if as_json:
        console.print_json(json.dumps(metrics, default=str))
        return
    console.print(
        f"zero-shot accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f} "
        f"on {metrics['n']} rows\nartifact: {metrics['run_dir']}\nreport: {metrics['report_dir']}"
    )


def register(app: typer.Typer) -> None:
    """Attach the methods commands to the main CLI app."""
    app.command("methods")(methods_command)
    app.command("merge")(merge_command)
    app.command("zeroshot")(zeroshot_command)
