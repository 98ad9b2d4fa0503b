"""Experiments across runs: hyper-parameter search and comparing two runs' records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelyard.recipe import Recipe, build_recipe, load_recipe
from modelyard.tracking import compare_runs as _compare
from modelyard.tuning import TuneResult
from modelyard.tuning import tune as _tune


def tune(
    recipe: Recipe | str | Path,
    params: list[str],
    trials: int = 20,
    pruner: str = "median",
    parallel: int = 1,
    overrides: list[str] | None = None,
    progress: bool = True,
) -> TuneResult:
    """Search `params` (`KEY=DISTRIBUTION:ARGS`, e.g. `train.lr=loguniform:1e-5:1e-3`) for
    the best dev metric of the recipe over `trials` trials; return the best values, the
    best recipe's path, the plot and every trial.

    `pruner` is median, hyperband or none; `parallel` runs that many trial processes on one
    study. The study (SQLite) lives in `<run.output_dir>/<run.name>-tune/` and resumes when
    run again. Raises TuningError for a bad space or option, RecipeError for a bad recipe.
    """
    if isinstance(recipe, Recipe):
        if overrides:
            recipe = build_recipe(recipe.model_dump(mode="json"), "recipe", overrides)
    else:
        recipe = load_recipe(recipe, overrides)
    return _tune(recipe, params, trials, pruner, parallel, progress)


def _run_path(run: str | Path, runs: str | Path) -> Path:
    """Return `run` when it is a folder, else the folder of that name under `runs`."""
    path = Path(run)
    return path if path.is_dir() else Path(runs) / path


def compare_runs(a: str | Path, b: str | Path, runs: str | Path = "runs") -> dict[str, Any]:
    """Return how run `b` differs from run `a`, read from their folders (the local tracking
    store): the recipe keys that differ, and every final metric of either with both values
    and b minus a. A run is a folder, or a run name under `runs`.

    Raises TrackingError when either is not a run folder.
    """
    return _compare(_run_path(a, runs), _run_path(b, runs))
