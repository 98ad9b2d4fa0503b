"""One search end to end: check the space, run or resume the study, write what it found."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard.fsutil import atomic_write_json, atomic_write_text
from modelyard.recipe import Recipe
from modelyard.tuning.errors import TuningError
from modelyard.tuning.report import plot_search, trial_rows
from modelyard.tuning.space import apply, parse_space
from modelyard.tuning.study import (
    BEST_RECIPE,
    PLOT,
    STUDY_DB,
    SUMMARY,
    SearchOptions,
    check_options,
    direction_of,
    search,
    tune_dir_of,
)


@dataclass
class TuneResult:
    """A finished search: where it is, the best trial, and every trial."""

    tune_dir: Path
    metric: str
    direction: str
    best_value: float
    best_params: dict[str, Any]
    best_trial: int
    best_recipe: Path
    plot: Path
    study: Path
    trials: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready values."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in self.__dict__.items()}


def tune(
    recipe: Recipe,
    params: list[str],
    trials: int = 20,
    pruner: str = "median",
    parallel: int = 1,
    progress: bool = True,
) -> TuneResult:
    """Search the `params` space of `recipe` for the best dev metric over `trials` trials.

    The study lives in `<run.output_dir>/<run.name>-tune/study.db`; running again resumes it.
    Writes `best_recipe.yaml` (the recipe with the best values, run.name `<name>-tuned`),
    `tune.json` (every trial) and `search.png` there. Raises TuningError for a bad space or
    option, or when no trial finished; a trial's own RecipeError or DataError as it comes.
    """
    check_options(trials, pruner, parallel)
    space = parse_space(params, recipe)
    opts = SearchOptions(trials, pruner, parallel, tune_dir_of(recipe), progress)
    study = search(recipe, space, opts)
    rows = trial_rows(study)
    finished = [r for r in rows if r["state"] == "complete"]
    if not finished:
        raise TuningError(
            f"no trial of {opts.tune_dir / STUDY_DB} finished; every one was pruned or failed"
        )
    best = study.best_trial
    metric = recipe.train.early_stopping.metric
    base = recipe.model_dump(mode="json")
    tuned = apply(base, {**best.params, "run.name": f"{recipe.run.name}-tuned"}, "best recipe")
    best_recipe = atomic_write_text(opts.tune_dir / BEST_RECIPE, tuned.to_yaml())
    maximize = direction_of(recipe) == "maximize"
    plot = plot_search(rows, metric, maximize, opts.tune_dir / PLOT)
    result = TuneResult(
        tune_dir=opts.tune_dir,
        metric=metric,
        direction=direction_of(recipe),
        best_value=float(best.value),
        best_params=dict(best.params),
        best_trial=best.number,
        best_recipe=best_recipe,
        plot=plot,
        study=opts.tune_dir / STUDY_DB,
        trials=rows,
    )
    atomic_write_json(opts.tune_dir / SUMMARY, result.to_dict())
    return result
