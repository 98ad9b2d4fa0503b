"""`modelyard data ...` and `modelyard label ...`: thin wrappers over modelyard.curation.api."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from modelyard.errors import ModelyardError

data_app = typer.Typer(
    rich_markup_mode=None,  # plain help wraps at any width; rich panels cut option names at 80
    help="Data-centric tools: label audit, PII scan, active-learning simulation.",
    no_args_is_help=True,
)
label_app = typer.Typer(
    rich_markup_mode=None,  # plain help wraps at any width; rich panels cut option names at 80
    help="The labelling loop: pick rows to label, merge labels back.",
    no_args_is_help=True,
)
console = Console()


def _api() -> Any:
    import modelyard.curation.api as api

    return api


def _print(payload: dict[str, Any], as_json: bool, text: str) -> None:
    if as_json:
        console.print_json(json.dumps(payload, default=str))
    else:
        console.print(text, highlight=False)


@data_app.command("audit")
def audit_command(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key.sub=value overrides.")] = None,
    output: Annotated[
        Path | None, typer.Option(help="Report folder (default: OUTPUT_DIR/audit/NAME).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Find suspected label errors, near-duplicates, train/test leakage and outliers."""
    report = _api().audit(recipe, overrides or [], output)
    s = report.summary
    _print(
        {**s, "files": report.files},
        as_json,
        f"{s['label_issues']} suspected label errors in {s['rows']} rows "
        f"(learner accuracy {s['learner_accuracy']:.4f}), {s['near_duplicate_pairs']} "
        f"near-duplicate pairs, {s['leaked_rows']} leaked dev/test rows\n"
        f"report: {report.files['markdown']}",
    )


def _patterns(items: list[str]) -> dict[str, str]:
    bad = [item for item in items if "=" not in item]
    if bad:
        raise ModelyardError(
            f"--pattern takes NAME=REGEX (e.g. EMPLOYEE_ID=EMP-\\d{{6}}); got: {', '.join(bad)}"
        )
    return dict(item.split("=", 1) for item in items)


@data_app.command("scan-pii")
def scan_pii_command(
    path: Annotated[
        Path, typer.Argument(metavar="FILE", help="CSV/TSV/JSONL/Parquet file to scan.")
    ],
    columns: Annotated[
        list[str] | None,
        typer.Option("--column", help="Column to scan (repeat; default: all)."),
    ] = None,
    patterns: Annotated[
        list[str] | None, typer.Option("--pattern", help="Custom detector NAME=REGEX (repeat).")
    ] = None,
    region: Annotated[
        str, typer.Option(help="Country of phone numbers written without +code.")
    ] = "US",
    redact_to: Annotated[Path | None, typer.Option(help="Also write a redacted copy here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scan as JSON.")] = False,
) -> None:
    """Count e-mails, phones, card numbers, IBANs, IPs, URLs and custom patterns in a file."""
    scan = _api().scan_pii(path, columns, _patterns(patterns or []), region, redact_to)
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(scan.counts.items())) or "none"
    text = f"{path}: {scan.rows_with_pii} of {scan.rows} rows hold personal data ({counts})"
    if scan.redacted_to:
        text += f"\nredacted copy: {scan.redacted_to} (the original is unchanged)"
    _print(scan.to_dict(), as_json, text)


@data_app.command("simulate-al")
def simulate_al_command(
    data: Annotated[Path, typer.Option(help="Labelled file: the pool and the oracle.")],
    test: Annotated[Path, typer.Option(help="Labelled file for test accuracy.")],
    output: Annotated[Path, typer.Option(help="Folder for curves.csv, curves.png, summary.json.")],
    strategies: Annotated[
        list[str] | None, typer.Option("--strategy", help="Strategy (repeat; default: all).")
    ] = None,
    seeds: Annotated[int, typer.Option(min=1, help="Seeds per strategy.")] = 3,
    start: Annotated[int, typer.Option(min=1, help="Random labels to start with.")] = 50,
    step: Annotated[int, typer.Option(min=1, help="Labels added per round.")] = 50,
    max_labels: Annotated[int, typer.Option(min=1, help="Stop at this many labels.")] = 2000,
    backbone: Annotated[str, typer.Option(help="Backbone for the embeddings.")] = "minilm-l6",
    text_column: Annotated[str, typer.Option(help="Text column.")] = "text",
    label_column: Annotated[str, typer.Option(help="Label column.")] = "label",
    min_words: Annotated[
        int, typer.Option(min=0, help="Keep only pool rows of at least this many words.")
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Compare query strategies on a labelled set: accuracy against number of labels."""
    summary = _api().simulate_al(
        data,
        test,
        output,
        strategies,
        seeds,
        start,
        step,
        max_labels,
        backbone,
        text_column,
        label_column,
        min_words=min_words,
    )
    lines = [f"{k}: {v}" for k, v in summary["accuracy_at_max_labels"].items()]
    _print(
        summary,
        as_json,
        f"accuracy at {max_labels} labels\n" + "\n".join(lines) + f"\ncurves: {output}",
    )


@label_app.command("next")
def label_next_command(
    run: Annotated[Path, typer.Argument(help="Run directory of the current model.")],
    pool: Annotated[
        Path, typer.Option(help="File of candidate rows (rows with a label are skipped).")
    ],
    output: Annotated[
        Path, typer.Option(help="Where to write the rows to label (.csv/.tsv/.jsonl).")
    ],
    k: Annotated[int, typer.Option(min=1, help="Rows to pick.")] = 50,
    strategy: Annotated[
        str,
        typer.Option(
            help="random, least-confidence, margin, entropy, kcenter, badge, density, "
            "margin-diverse."
        ),
    ] = "margin",
    text_column: Annotated[str, typer.Option(help="Text column of the pool.")] = "text",
    label_column: Annotated[str, typer.Option(help="Label column to fill in.")] = "label",
    labelled: Annotated[
        list[Path] | None,
        typer.Option(help="Files of already labelled texts (default: the run's data)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of random and sampled strategies.")] = 0,
    min_words: Annotated[
        int, typer.Option(min=0, help="Never pick rows of fewer words than this.")
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Write the pool rows most worth labelling next."""
    batch = _api().label_next(
        run, pool, output, k, strategy, text_column, label_column, labelled, seed, min_words
    )
    _print(
        asdict(batch),
        as_json,
        f"wrote {batch.picked} rows to label to {batch.path} (from {batch.candidates} candidates; "
        f"skipped {batch.skipped_labelled} labelled, {batch.skipped_empty} empty"
        + (f", {batch.skipped_short} shorter than {min_words} words" if min_words else "")
        + ")\n"
        f"fill in the '{label_column}' column, then: modelyard label import {batch.path} --into TRAIN",
    )


@label_app.command("import")
def label_import_command(
    labelled: Annotated[Path, typer.Argument(help="File with the newly labelled rows.")],
    into: Annotated[Path, typer.Option(help="Training file to merge them into.")],
    output: Annotated[
        Path | None, typer.Option(help="Write the merged file here (default: --into).")
    ] = None,
    text_column: Annotated[str, typer.Option(help="Text column.")] = "text",
    label_column: Annotated[str, typer.Option(help="Label column.")] = "label",
    allow_new_labels: Annotated[
        bool, typer.Option(help="Accept labels the training file lacks.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Merge newly labelled rows into a training file (atomically)."""
    result = _api().label_import(
        labelled, into, output, text_column, label_column, allow_new_labels
    )
    _print(
        asdict(result),
        as_json,
        f"added {result.added} rows to {result.path} (skipped {result.skipped_unlabelled} without "
        f"a label, {result.skipped_known} already there)",
    )


def attach(app: typer.Typer) -> None:
    """Add the `data` and `label` command groups to the main CLI `app`."""
    app.add_typer(data_app, name="data")
    app.add_typer(label_app, name="label")
