"""The search: an Optuna study in SQLite whose trials are runs of the train stage.

Trials run in this process, one after another, or in `parallel` processes that share the
study; each trial is a full run under `TUNE_DIR/trials/trial-NNN/`. The trainer's dev
evaluations reach the trial through a history listener, so the pruner (median or Hyperband)
stops a poor trial between two evaluations. Running the same command again resumes the
study: finished and pruned trials count towards `trials`, and a trial whose process died is
failed once its heartbeat is stale and then retried with the same values.
"""

from __future__ import annotations

import json
import multiprocessing
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.pipeline import run_training
from modelyard.plugins import require
from modelyard.recipe import Recipe
from modelyard.tuning.errors import TuningError
from modelyard.tuning.space import ParamSpec, apply, parse_space

PRUNERS = ("median", "hyperband", "none")
STUDY_DB = "study.db"
BEST_RECIPE = "best_recipe.yaml"
PLOT = "search.png"
SUMMARY = "tune.json"
# a trial whose process has not beaten its heart for GRACE_S seconds is failed and retried
HEARTBEAT_S, GRACE_S = 20, 60


@dataclass(frozen=True)
class SearchOptions:
    """How the search runs: trials in all, pruner, processes, and where the study lives."""

    trials: int
    pruner: str
    parallel: int
    tune_dir: Path
    progress: bool


def tune_dir_of(recipe: Recipe) -> Path:
    """Return the folder of the recipe's study: `<run.output_dir>/<run.name>-tune`."""
    return recipe.run.output_dir / f"{recipe.run.name}-tune"


def check_options(trials: int, pruner: str, parallel: int) -> None:
    """Raise TuningError for a number of trials or processes below 1 or an unknown pruner."""
    if trials < 1:
        raise TuningError(f"--trials must be 1 or more; got {trials}")
    if parallel < 1:
        raise TuningError(f"--parallel must be 1 or more; got {parallel}")
    if pruner not in PRUNERS:
        raise TuningError(f"unknown pruner '{pruner}'; use one of: {', '.join(PRUNERS)}")


def direction_of(recipe: Recipe) -> str:
    """Return `minimize` for a dev loss, `maximize` for a dev score."""
    return "minimize" if recipe.train.early_stopping.metric == "loss" else "maximize"


class _Reporter:
    """Hands each dev evaluation of a trial's run to Optuna; raises TrialPruned when told."""

    def __init__(self, trial: Any, metric: str) -> None:
        self.trial, self.metric, self.evaluations = trial, metric, 0

    def record(self, entry: dict[str, Any]) -> None:
        """Report the dev metric of a dev-evaluation entry (step = evaluations so far)."""
        value = (entry.get("dev") or {}).get(self.metric)
        if value is None:
            return
        # trials differ in batch size and length: the n-th evaluation is their common clock
        self.trial.report(float(value), self.evaluations)
        self.evaluations += 1
        if self.trial.should_prune():
            import optuna

            raise optuna.TrialPruned(
                f"dev {self.metric} {value:.4f} at evaluation {self.evaluations}"
            )


def _objective(base: dict[str, Any], space: list[ParamSpec], opts: SearchOptions) -> Any:
    metric = Recipe.model_validate(base).train.early_stopping.metric

    def objective(trial: Any) -> float:
        values = {spec.key: spec.suggest(trial) for spec in space}
        values["run.output_dir"] = str(opts.tune_dir / "trials")
        values["run.name"] = f"trial-{trial.number:03d}"
        recipe = apply(base, values, f"trial {trial.number}")
        trial.set_user_attr("run_dir", str(recipe.run_dir()))
        result = run_training(
            recipe, overwrite=True, progress=False, listeners=[_Reporter(trial, metric)]
        )
        best = result.training.get("best_metric")
        if best is None:
            raise TuningError(
                f"trial {trial.number} measured no dev {metric}: the search needs dev rows "
                "(data.split.dev above 0, or data.dev)"
            )
        test = result.metrics.get("after", result.metrics)  # a language model: after training
        trial.set_user_attr(
            "test", {k: v for k, v in test.items() if k in ("accuracy", "macro_f1", "loss")}
        )
        trial.set_user_attr("epochs_run", result.training.get("epochs_run"))
        trial.set_user_attr("train_seconds", result.training.get("train_seconds"))
        return float(best)

    return objective


def _pruner(name: str) -> Any:
    import optuna

    if name == "median":
        # three finished trials set the median; the first evaluation of each is never judged
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def open_study(recipe: Recipe, space: list[ParamSpec], opts: SearchOptions, seed: int) -> Any:
    """Return the recipe's study, created or loaded from `TUNE_DIR/study.db`.

    Raises TuningError when the stored study searched another space or metric.
    """
    optuna = require("optuna", extra="tune")
    opts.tune_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # type: ignore[attr-defined]
        storage = optuna.storages.RDBStorage(  # type: ignore[attr-defined]
            f"sqlite:///{(opts.tune_dir / STUDY_DB).resolve()}",
            heartbeat_interval=HEARTBEAT_S,
            grace_period=GRACE_S,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(  # type: ignore[attr-defined]
                max_retry=1
            ),
        )
    study = optuna.create_study(  # type: ignore[attr-defined]
        study_name=recipe.run.name,
        storage=storage,
        sampler=optuna.samplers.TPESampler(seed=seed),  # type: ignore[attr-defined]
        pruner=_pruner(opts.pruner),
        direction=direction_of(recipe),
        load_if_exists=True,
    )
    signature = {"space": [s.text for s in space], "metric": recipe.train.early_stopping.metric}
    stored = study.user_attrs.get("signature")
    if stored is None:
        study.set_user_attr("signature", signature)
    elif stored != signature:
        raise TuningError(
            f"{opts.tune_dir / STUDY_DB} holds a study of {json.dumps(stored)}; this search is "
            f"{json.dumps(signature)}. Give the same --param specs to resume it, or set "
            "run.name=NEW for a new study"
        )
    return study


def _counted(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def run_worker(base: dict[str, Any], texts: list[str], opts: SearchOptions, worker: int) -> None:
    """Run trials of the shared study until it holds `opts.trials` finished or pruned ones."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    recipe = Recipe.model_validate(base)
    space = parse_space(texts, recipe)
    if not opts.progress:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(recipe, space, opts, recipe.run.seed + worker)
    remaining = opts.trials - _counted(study)
    if remaining <= 0:
        return
    study.optimize(
        _objective(base, space, opts),
        n_trials=remaining,
        callbacks=[MaxTrialsCallback(opts.trials, states=(TrialState.COMPLETE, TrialState.PRUNED))],
    )


def search(recipe: Recipe, space: list[ParamSpec], opts: SearchOptions) -> Any:
    """Run the search to `opts.trials` counted trials in `opts.parallel` processes; return
    the study. Extra processes start with the spawn method (a clean torch in each)."""
    base = recipe.model_dump(mode="json")
    texts = [s.text for s in space]
    open_study(recipe, space, opts, recipe.run.seed)  # create it once, before the workers race
    if opts.parallel == 1:
        run_worker(base, texts, opts, 0)
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(opts.parallel - 1, mp_context=context) as pool:
            others = [
                pool.submit(run_worker, base, texts, opts, w) for w in range(1, opts.parallel)
            ]
            run_worker(base, texts, opts, 0)
            for future in others:
                future.result()
    return open_study(recipe, space, opts, recipe.run.seed)
