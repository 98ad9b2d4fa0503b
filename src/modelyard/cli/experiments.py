"""`modelyard tune` (hyper-parameter search) and `modelyard runs compare`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def _api() -> Any:
    import modelyard.api as api

    return api


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def tune(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    params: Annotated[
        list[str],
        typer.Option(
            "--param",
            help="KEY=DISTRIBUTION:ARGS, repeatable: loguniform:LO:HI, uniform:LO:HI, "
            "int:LO:HI[:STEP], choice:A,B,... (e.g. train.lr=loguniform:1e-5:1e-3).",
        ),
    ],
    overrides: Annotated[list[str] | None, typer.Argument(help="key.sub=value overrides.")] = None,
    trials: Annotated[
        int, typer.Option(help="Finished or pruned trials the study ends with.")
    ] = 20,
    pruner: Annotated[
        str, typer.Option(help="median, hyperband or none (prunes on the dev metric).")
    ] = "median",
    parallel: Annotated[int, typer.Option(help="Trial processes sharing the study.")] = 1,
    progress: Annotated[bool, typer.Option(help="Log each trial as it ends.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Search hyper-parameters with Optuna; running it again resumes the study."""
    result = _api().tune(
        recipe,
        params,
        trials=trials,
        pruner=pruner,
        parallel=parallel,
        overrides=overrides or [],
        progress=progress and not as_json,
    )
    if as_json:
        console.print_json(json.dumps(result.to_dict(), default=str))
        return
    table = Table(title=f"{len(result.trials)} trials, dev {result.metric}")
    for column in ("trial", "state", f"dev {result.metric}", "params"):
        table.add_column(column)
    for row in result.trials:
        shown = ", ".join(f"{k}={_value(v)}" for k, v in row["params"].items())
        table.add_row(str(row["number"]), row["state"], _value(row["value"]), shown)
    console.print(table)
    best = ", ".join(f"{k}={_value(v)}" for k, v in result.best_params.items())
    console.print(
        f"best: trial {result.best_trial}, dev {result.metric} {result.best_value:.4f} ({best})\n"
        f"best recipe: {result.best_recipe}\nplot: {result.plot}\n"
        f"train it: modelyard train {result.best_recipe}",
        highlight=False,
    )


def runs_compare(
    a: Annotated[str, typer.Argument(help="First run: a folder, or a name under --runs.")],
    b: Annotated[str, typer.Argument(help="Second run: a folder, or a name under --runs.")],
    runs: Annotated[Path, typer.Option(help="Runs folder of run names.")] = Path("runs"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
) -> None:
    """Compare two runs from their folders: recipe keys that differ and every final metric."""
    found = _api().compare_runs(a, b, runs)
    if as_json:
        console.print_json(json.dumps(found))
        return
    params = Table(title="recipe keys that differ")
    metrics = Table(title="metrics (b - a)")
    for table, columns in ((params, ("key", "a", "b")), (metrics, ("metric", "a", "b", "b - a"))):
        for column in columns:
            table.add_column(column, justify="left" if column in ("key", "metric") else "right")
    for row in found["params"]:
        params.add_row(row["key"], _value(row["a"]), _value(row["b"]))
    for row in found["metrics"]:
        metrics.add_row(row["key"], _value(row["a"]), _value(row["b"]), _value(row["delta"]))
    console.print(f"a: {found['a']}\nb: {found['b']}", highlight=False)
    console.print(params)
    console.print(metrics)


def register(app: typer.Typer, runs_app: typer.Typer) -> None:
    """Add `tune` to the command line and `compare` to `modelyard runs`."""
    app.command("tune")(tune)
    runs_app.command("compare")(runs_compare)
