"""`modelyard privacy audit`: the membership-inference audit of a trained run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

privacy_app = typer.Typer(
    rich_markup_mode=None,  # plain help wraps at any width; rich panels cut option names at 80
    help="Privacy: audit what a trained model reveals about its training rows.",
    no_args_is_help=True,
)
console = Console()


@privacy_app.command("audit")
def audit(
    run: Annotated[Path, typer.Argument(help="Run directory to attack.")],
    members: Annotated[
        Path, typer.Option("--members", help="Labelled rows the run was trained on.")
    ],
    non_members: Annotated[
        Path, typer.Option("--non-members", help="Labelled rows from the same source it never saw.")
    ],
    reference: Annotated[
        Path | None,
        typer.Option(help="A run trained without these rows, for the calibrated attack."),
    ] = None,
    text_column: Annotated[
        str | None, typer.Option(help="Text column (default: the run's).")
    ] = None,
    label_column: Annotated[
        str | None, typer.Option(help="Label column (default: the run's).")
    ] = None,
    resamples: Annotated[
        int,
        typer.Option(
            "--bootstrap", "--resamples", min=100, help="Bootstrap resamples for the intervals."
        ),
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
    output: Annotated[
        Path | None, typer.Option(help="Report folder (default: RUN/audits/...).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Attack RUN with loss, confidence and (with --reference) calibrated membership inference."""
    from modelyard.api import audit_membership

    report = audit_membership(
        run, members, non_members, reference, text_column, label_column, resamples, seed, output
    )
    if as_json:
        console.print_json(json.dumps(report))
        return
    table = Table(
        title=f"membership inference on {run} ({report['members']['n']} members, {report['non_members']['n']} non-members)"
    )
    for column in ("attack", "AUC", "95% CI", "TPR @ 1% FPR", "95% CI"):
        table.add_column(column)
    for name, a in report["attacks"].items():
        table.add_row(
            name,
            f"{a['auc']:.4f}",
            f"{a['auc_ci'][0]:.4f}–{a['auc_ci'][1]:.4f}",
            f"{a['tpr_at_fpr']:.4f}",
            f"{a['tpr_at_fpr_ci'][0]:.4f}–{a['tpr_at_fpr_ci'][1]:.4f}",
        )
    console.print(table)
    console.print(f"AUC 0.5 is chance. Report written to {report['report_dir']}", highlight=False)


def register(app: typer.Typer) -> None:
    """Attach the `privacy` command group to the main app."""
    app.add_typer(privacy_app, name="privacy")
