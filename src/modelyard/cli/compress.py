"""`modelyard compress`: parse, call `modelyard.compress.compress`, print the comparison."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from modelyard.errors import ModelyardError

console = Console()


def _table(report: dict[str, Any]) -> Table:
    table = Table(
        title=f"compression of {Path(report['parent']).name} ({report['test_rows']} test rows)"
    )
    for title in (
        "variant",
        "accuracy",
        "macro-F1",
        "MiB",
        "p50 ms",
        "texts/s b32",
        "$/1M",
        "Pareto",
    ):
        table.add_column(title, justify="left" if title == "variant" else "right")
    for row in report["variants"]:
        table.add_row(
            row["name"],
            f"{row['accuracy']:.4f}",
            f"{row['macro_f1']:.4f}",
            f"{row['size_mb']:.1f}",
            f"{row['latency_p50_ms']:.2f}",
            f"{row['throughput_b32_per_s']:.1f}",
            f"{row['cost_per_million']:.4f}",
            "*" if row["pareto"] else "",
        )
    return table


def _print_methods() -> None:
    from modelyard.compress import describe_methods

    for spec, doc in describe_methods().items():
        console.print(f"[bold]{spec}[/]  {doc}")


def compress_command(
    run: Annotated[
        Path | None, typer.Argument(help="Run directory written by `modelyard train`.")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="compress.key=value overrides, e.g. compress.distill.epochs=2."),
    ] = None,
    methods: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated methods, e.g. onnx,int8-dynamic,prune-heads:0.3,distill:3."
        ),
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="Labelled test file (default: the run's test split).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Folder for variants and report (default: RUN-compressed).")
    ] = None,
    max_accuracy_drop: Annotated[
        float | None,
        typer.Option(help="Pick the fastest variant within this accuracy drop (0.01 = 1 point)."),
    ] = None,
    price_per_cpu_hour: Annotated[
        float | None, typer.Option(help="Dollars per CPU-hour for the cost column.")
    ] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="Threads for PyTorch and ONNX Runtime.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    list_methods: Annotated[
        bool, typer.Option("--list", help="List the compression methods and exit.")
    ] = False,
) -> None:
    """Make smaller, faster variants of a run and compare accuracy, size, latency and cost."""
    if list_methods:
        _print_methods()
        return
    if run is None:
        raise ModelyardError("give the RUN directory to compress (or --list to see the methods)")
    from modelyard.compress import compress

    result = compress(
        run,
        methods=[m for m in methods.split(",")] if methods else None,
        data=data,
        output=output,
        max_accuracy_drop=max_accuracy_drop,
        price_per_cpu_hour=price_per_cpu_hour,
        threads=threads,
        overrides=overrides or [],
        overwrite=overwrite,
        log=None if as_json else lambda msg: console.print(msg, highlight=False),
    )
    if as_json:
        console.print_json(json.dumps(result.report, default=str))
        return
    console.print(_table(result.report))
    for name, error in result.report["failed"].items():
        console.print(f"[red]{name} failed:[/] {error}", highlight=False)
    if result.report["max_accuracy_drop"] is not None:
        pick = result.best or "none of the variants (try other --methods or a larger budget)"
        console.print(
            f"fastest within an accuracy drop of {result.report['max_accuracy_drop']}: {pick}"
        )
    console.print(f"report written to {result.output_dir / 'report.md'}")
