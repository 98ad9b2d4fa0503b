"""`modelyard compress`: parse, call `modelyard.compress.compress`, print the comparison."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from modelyard.errors import ModelyardError

console = Console()


# (header, report key, format): short headers so a row fits 80 columns beside its name
_COLUMNS = (
    ("acc", "accuracy", "{:.3f}"),
    ("F1", "macro_f1", "{:.3f}"),
    ("MiB", "size_mb", "{:.1f}"),
    ("p50 ms", "latency_p50_ms", "{:.2f}"),
    ("/s b32", "throughput_b32_per_s", "{:.0f}"),
    ("$/1M", "cost_per_million", "{:.3g}"),
)


def _table(report: dict[str, Any]) -> Table:
    """Return the comparison table; the variant names are never cut (numbers shrink first)."""
    names = [row["name"] for row in report["variants"]]
    table = Table(
        title=f"compression of {Path(report['parent']).name} ({report['test_rows']} test rows)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
        caption="* Pareto-optimal (no other variant is both as accurate and faster)",
    )
    rows = [[fmt.format(row[key]) for _, key, fmt in _COLUMNS] for row in report["variants"]]
    # the Pareto mark follows the name: a column of its own does not fit 80 columns
    table.add_column(
        "variant", no_wrap=True, min_width=min(max(map(len, names), default=7) + 2, 38)
    )
    for i, (title, _, _) in enumerate(_COLUMNS):
        width = max([len(r[i]) for r in rows] + [min(len(title), 6)])
        table.add_column(title, justify="right", no_wrap=True, min_width=width)
    for row, cells in zip(report["variants"], rows, strict=True):
        table.add_row(row["name"] + (" *" if row["pareto"] else ""), *cells)
    return table


def _print_methods() -> None:
    from modelyard.api import compression_methods

    for spec, doc in compression_methods().items():
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
    from modelyard.api import compress

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
