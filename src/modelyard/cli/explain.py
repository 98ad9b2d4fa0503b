"""`modelyard explain`: one text in colour, a file to JSON + HTML, or a faithfulness evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from modelyard.errors import ModelyardError

console = Console()

METHOD_HELP = "ig, gxi, occlusion or shapley; repeat for several (default: the recipe's, or ig)."


def explain_command(
    run: Annotated[
        Path, typer.Argument(help="Run directory or artifact (ONNX: occlusion/shapley).")
    ],
    text: Annotated[str | None, typer.Argument(help="One text to explain.")] = None,
    input: Annotated[
        Path | None,
        typer.Option("--input", help="CSV/TSV/JSONL/Parquet or .txt (one text a line)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Folder for JSON, HTML and the global view (with --input).")
    ] = None,
    evaluate: Annotated[
        bool, typer.Option("--evaluate", help="Measure faithfulness against random on --data.")
    ] = False,
    data: Annotated[Path | None, typer.Option(help="File of texts for --evaluate.")] = None,
    method: Annotated[list[str] | None, typer.Option("--method", help=METHOD_HELP)] = None,
    steps: Annotated[
        int | None, typer.Option(help="Integrated-gradients steps (default: chosen per text).")
    ] = None,
    completeness_error: Annotated[
        float | None,
        typer.Option(help="Integrated gradients' largest completeness error (default 0.01)."),
    ] = None,
    samples: Annotated[int | None, typer.Option(help="Shapley sampling permutations.")] = None,
    target: Annotated[
        str | None, typer.Option(help="Explain this label, not the prediction.")
    ] = None,
    score: Annotated[
        str | None, typer.Option(help="What is explained: log-odds (default) or probability.")
    ] = None,
    text_column: Annotated[str, typer.Option(help="Text column of --input / --data.")] = "text",
    max_rows: Annotated[int | None, typer.Option(min=1, help="Use only the first N rows.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Explain predictions word by word, and measure how faithful the explanations are."""
    from modelyard.explainability import api

    modes = [text is not None, input is not None, evaluate]
    if sum(modes) != 1:
        raise ModelyardError(
            "give exactly one of: TEXT, --input FILE --output DIR, or --evaluate --data FILE "
            '(e.g. modelyard explain RUN "I was charged twice")'
        )
    methods = method or []
    options = {
        "steps": steps,
        "samples": samples,
        "score": score,
        "completeness_error": completeness_error,
    }
    if evaluate:
        if data is None:
            raise ModelyardError("--evaluate needs --data FILE (the texts to measure on)")
        report, out = api.evaluate_explanations(
            run, data, methods, text_column, output, max_rows, not as_json, **options
        )
        _print_faithfulness(report.to_dict(), out, as_json)
        return
    if len(methods) > 1 and input is not None:
        raise ModelyardError("--input takes one --method (got {})".format(", ".join(methods)))
    if input is not None:
        if output is None:
            raise ModelyardError("--input needs --output DIR (where JSON and HTML are written)")
        first = methods[0] if methods else None
        done = api.explain_file(
            run, input, output, text_column, first, max_rows, not as_json, **options
        )
        _print_file(done, as_json)
        return
    assert text is not None
    _print_text(run, text, methods or [None], target, as_json, options)


def _print_text(
    run: Path,
    text: str,
    methods: list[str] | list[None],
    target: str | None,
    as_json: bool,
    options: dict[str, Any],
) -> None:
    from modelyard.explainability import api
    from modelyard.explainability.render import terminal_text
    from modelyard.explainability.subject import as_subject

    subject = as_subject(run)
    exps = [api.explain(subject, text, m, target=target, **options)[0] for m in methods]
    if as_json:
        console.print_json(json.dumps([e.to_dict() for e in exps]))
        return
    for exp in exps:
        console.print(terminal_text(exp))


def _print_file(done: object, as_json: bool) -> None:
    from modelyard.explainability.api import ExplainedFile

    assert isinstance(done, ExplainedFile)
    files = {k: str(v) for k, v in done.files.items()}
    if as_json:
        console.print_json(json.dumps({"files": files, "skipped_empty": done.skipped_empty}))
        return
    table = Table(title=f"top words per class ({done.view.method})")
    for column in ("class", "word", "mean attribution", "count"):
        table.add_column(column)
    for label, stats in done.view.classes.items():
        for s in stats:
            table.add_row(label, s.word, f"{s.mean:+.4f}", str(s.count))
    console.print(table)
    if done.view.shortfall():
        console.print(f"[yellow]note:[/] {done.view.shortfall()}", highlight=False)
    console.print(
        f"{len(done.explanations)} explanations written to {files['html']} and {files['json']}"
    )


def _print_faithfulness(report: dict[str, Any], out: Path, as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps({**report, "output": str(out)}))
        return
    table = Table(title=f"faithfulness on {report['n_texts']} texts (AOPC over the top-k% bins)")
    for column in ("method", "comprehensiveness ↑", "sufficiency ↓", "vs random", "ms"):
        table.add_column(column, justify="right")
    for name, m in report["methods"].items():
        ratio = m.get("comprehensiveness_aopc_ratio")
        ms = m["ms_per_explanation"]
        table.add_row(
            name,
            f"{m['comprehensiveness_aopc']:.4f}",
            f"{m['sufficiency_aopc']:.4f}",
            "" if ratio is None else f"{ratio:.2f}x",
            "" if ms is None else f"{ms:.1f}",
        )
    console.print(table)
    console.print(f"per-k figures: {out / 'faithfulness.md'}", soft_wrap=True)
