"""One run, end to end: data, backbone, fine-tuning, evaluation and the artifact."""

from __future__ import annotations

import json
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from modelyard.backends import TorchBackend
from modelyard.data import DataBundle, Split, load_data
from modelyard.data.augment import augment_bundle
from modelyard.errors import ArtifactError, DataError, RecipeError
from modelyard.evaluation import (
    evaluate_classifier,
    metrics_markdown,
    peak_rss_mb,
    plot_confusion,
)
from modelyard.evaluation.calibration import calibration_note
from modelyard.evaluation.report import plot_training
from modelyard.fsutil import atomic_write_json, atomic_write_text
from modelyard.methods.selftrain import run_self_training
from modelyard.methods.session import start_method
from modelyard.model_card import render_model_card
from modelyard.models import load_tokenizer, resolve_backbone
from modelyard.models.device import select_device, select_dtype, torch_threads
from modelyard.models.encoding import Encoded, encode_split
from modelyard.privacy.dp import private_policy
from modelyard.recipe import Recipe
from modelyard.registry.calibration import write_calibration
from modelyard.registry.manifest import MANIFEST, write_manifest
from modelyard.registry.run import RECIPE, LoadedRun
from modelyard.tracking.mlflow_sink import log_run
from modelyard.trainer.calibrate import fit_calibration, uncalibrated_figures
from modelyard.trainer.distributed import DistributedFineTuner, Parallel, launched, process_group
from modelyard.trainer.loop import FineTuner, HistoryListener, TrainResult

HISTORY = "history.jsonl"


class HistoryWriter:
    """Appends each loss and dev evaluation of a run to `RUN/history.jsonl` as it happens.

    One JSON object a line, flushed at once, so a dashboard can draw the curves while the
    run trains. A resumed run appends again from its checkpoint's step: readers keep the
    last entry of each step.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / HISTORY

    def record(self, entry: dict[str, Any]) -> None:
        """Append `entry` with the wall-clock time it was measured."""
        line = json.dumps(_finite({**entry, "time": round(time.time(), 3)}))
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def _finite(value: Any) -> Any:
    """Return `value` with NaN and infinities as None, so every line is strict JSON."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


@dataclass
class RunResult:
    """A finished run: where it is and what it measured."""

    run_dir: Path
    metrics: dict[str, Any]
    training: dict[str, Any]
    data_report: dict[str, Any]


def prepare_run_dir(recipe: Recipe, resume: bool, overwrite: bool) -> Path:
    """Return the run directory, refusing to clobber a finished or interrupted run by accident."""
    run_dir = recipe.run_dir()
    saved = run_dir / RECIPE
    if resume:
        if not saved.is_file():
            raise ArtifactError(f"--resume: {run_dir} holds no interrupted run to continue")
        if yaml.safe_load(saved.read_text(encoding="utf-8")) != recipe.model_dump(mode="json"):
            raise RecipeError(
                f"--resume: the recipe differs from the one {run_dir} was started with ({saved})"
            )
        return run_dir
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            state = (
                "a finished run"
                if (run_dir / MANIFEST).is_file()
                else "an interrupted run (continue it with --resume)"
            )
            raise ArtifactError(
                f"{run_dir} already holds {state}; pass --overwrite or set run.name=NEW"
            )
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(saved, recipe.to_yaml())
    return run_dir


def evaluate_model(
    model: Any,
    tokenizer: Any,
    labels: list[str],
    recipe: Recipe,
    split: Split,
    run_dir: Path,
    temperature: float = 1.0,
) -> dict[str, Any]:
    """Return the metrics of a model that has just trained on `split`, with its calibration
    `temperature`, through the one evaluation of every artifact
    (`modelyard.evaluation.evaluate_classifier`)."""
    run = LoadedRun(run_dir, model, tokenizer, labels, {}, recipe, temperature=temperature)
    return evaluate_classifier(TorchBackend.from_run(run), split, recipe.evaluate)


def evaluate_encoded(
    model: Any,
    tokenizer: Any,
    data: Encoded,
    labels: list[str],
    recipe: Recipe,
    texts: list[str],
    device: torch.device,
) -> dict[str, Any]:
    """Deprecated: `evaluate_model` (or `modelyard.evaluation.evaluate_classifier`).

    Returns the metrics of `model` on `texts` with the label ids of `data` (single texts).
    """
    warnings.warn(
        "modelyard.pipeline.evaluate_encoded is deprecated; use "
        "modelyard.evaluation.evaluate_classifier",
        DeprecationWarning,
        stacklevel=2,
    )
    split = Split(texts=list(texts), labels=list(data.labels))
    return evaluate_model(model.to(device), tokenizer, labels, recipe, split, Path("."))


def write_reports(
    run_dir: Path,
    recipe: Recipe,
    bundle: DataBundle,
    metrics: dict[str, Any],
    training: dict[str, Any],
) -> None:
    """Write metrics.json, report.md, confusion.png, data_report.*, and MODEL_CARD.md."""
    data = bundle.report.to_dict()
    data["split_sizes"] = {
        "train": len(bundle.train),
        "dev": len(bundle.dev),
        "test": len(bundle.test),
    }
    atomic_write_json(run_dir / "metrics.json", {"test": metrics, "training": training})
    atomic_write_json(run_dir / "data_report.json", data)
    atomic_write_text(run_dir / "data_report.md", bundle.report.to_markdown())
    plot_confusion(metrics["confusion_matrix"], bundle.labels, run_dir / "confusion.png")
    stopped = training.get("stopped_because")
    notes = [("Training stopped", stopped)] if stopped else []
    if calibrated := calibration_note(training.get("calibration")):
        notes.append(("Calibration", calibrated))
    report = metrics_markdown(metrics, f"{recipe.run.name}: test set", training, notes)
    atomic_write_text(run_dir / "report.md", report)
    plot_history(run_dir, training.get("history") or [], recipe.train.early_stopping.metric)
    atomic_write_text(
        run_dir / "MODEL_CARD.md", render_model_card(recipe, bundle.labels, data, metrics, training)
    )


def plot_history(run_dir: Path, dev: list[dict[str, Any]], metric: str) -> None:
    """Draw `RUN/training.png` from the losses in `RUN/history.jsonl` and the dev evaluations."""
    losses: dict[int, float] = {}
    path = run_dir / HISTORY
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            if entry.get("loss") is not None:  # a resumed run repeats steps: the last one wins
                losses[int(entry["step"])] = float(entry["loss"])
    plot_training(sorted(losses.items()), dev, metric, run_dir / "training.png")


def _training_summary(
    result: TrainResult,
    device: torch.device,
    dtype: torch.dtype | None,
    n_params: tuple[int, int],
    truncated: int,
) -> dict[str, Any]:
    summary = asdict(result)
    summary.update(
        device=str(device),
        precision="fp32" if dtype is None else str(dtype).removeprefix("torch."),
        parameters=n_params[0],
        trainable_parameters=n_params[1],
        train_truncated=truncated,
        peak_rss_mb=round(peak_rss_mb(), 1),
    )
    return summary


def run_training(
    recipe: Recipe,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    listeners: Sequence[HistoryListener] = (),
) -> RunResult:
    """Train, evaluate and save one run; return its directory and figures.

    The recipe's task picks the run: a classifier, or a language model (continued
    pre-training, instruction fine-tuning). `listeners` also receive each loss and dev
    evaluation as it is measured (hyper-parameter search prunes on them). Started as one rank
    of a launcher (`--nproc`, torchrun), it trains data-parallel with the other ranks and
    rank 0 writes the run. With `tracking.mlflow_uri`, the saved run is then logged to MLflow.
    Raises RecipeError, DataError, BackboneError, ArtifactError or TrackingError for a user's
    mistake.
    """
    if launched():
        result = _run_data_parallel(recipe, resume, overwrite, progress)
    else:
        with torch_threads(recipe.train.num_threads):
            if recipe.task == "token-classification":
                result = _run_tagging(recipe, resume, overwrite, progress)
            elif recipe.task in ("multi-label", "regression"):
                result = _run_head(recipe, resume, overwrite, progress)
            elif recipe.task != "classification":
                result = _run_language_model(recipe, resume, overwrite, progress, listeners)
            else:
                result = _run(recipe, resume, overwrite, progress, listeners)
    # the other ranks of a data-parallel run return no metrics: rank 0 logs the run
    if recipe.tracking.mlflow_uri is not None and result.metrics:
        log_run(result.run_dir, recipe.tracking, recipe.run.name)
    return result


def _run_language_model(
    recipe: Recipe,
    resume: bool,
    overwrite: bool,
    progress: bool,
    listeners: Sequence[HistoryListener],
) -> RunResult:
    from modelyard.generation import prepare_lm_run

    return _run_prepared(recipe, resume, overwrite, progress, prepare_lm_run, listeners)


def _run_prepared(
    recipe: Recipe,
    resume: bool,
    overwrite: bool,
    progress: bool,
    prepare: Any,
    listeners: Sequence[HistoryListener] | None = None,
) -> RunResult:
    """Run a task whose `prepare(recipe)` reads data and builds the model (every user mistake
    surfaces before the run directory exists) and whose `.train(run_dir)` trains and saves.
    With `listeners` (a task whose `.train` takes them), the history is written too."""
    prepared = prepare(recipe)
    run_dir = prepare_run_dir(recipe, resume, overwrite)
    if listeners is None:
        out = prepared.train(run_dir, resume=resume, progress=progress)
    else:
        out = prepared.train(
            run_dir,
            resume=resume,
            progress=progress,
            listeners=[HistoryWriter(run_dir), *listeners],
        )
    return RunResult(run_dir, out["metrics"], out["training"], out["data_report"])


def _run_tagging(recipe: Recipe, resume: bool, overwrite: bool, progress: bool) -> RunResult:
    from modelyard.tagging import prepare_tagging_run

    return _run_prepared(recipe, resume, overwrite, progress, prepare_tagging_run)


def _run_head(recipe: Recipe, resume: bool, overwrite: bool, progress: bool) -> RunResult:
    from modelyard.seqtasks import prepare_head_run

    return _run_prepared(recipe, resume, overwrite, progress, prepare_head_run)


def _run_data_parallel(recipe: Recipe, resume: bool, overwrite: bool, progress: bool) -> RunResult:
    """Run `_run` as one rank; the other ranks' RunResult holds no metrics."""
    if recipe.task != "classification":
        raise RecipeError(
            f"--nproc: data-parallel training covers task classification; task {recipe.task} "
            "trains in one process (drop --nproc)"
        )
    with process_group(select_device(recipe.train.device)) as parallel:
        threads = parallel.threads(recipe.train.num_threads)
        with torch_threads(threads):
            return _run(recipe, resume, overwrite, progress, parallel=parallel)


def _check_data_parallel(recipe: Recipe, session: Any) -> None:
    """Raise RecipeError for what data-parallel training does not cover (yet)."""
    found = [
        what
        for what, present in (
            (f"method {recipe.train.method} (it trains by its own procedure)", session.method.fit),
            ("loop hooks (adversarial training, continual learning)", session.hooks),
            ("DP-SGD (privacy)", recipe.privacy is not None),
            ("self-training", recipe.train.self_training is not None),
        )
        if present
    ]
    if found:
        raise RecipeError(
            f"--nproc: data-parallel training does not support {'; '.join(found)}; "
            "train in one process (drop --nproc)"
        )


def _run(
    recipe: Recipe,
    resume: bool,
    overwrite: bool,
    progress: bool,
    listeners: Sequence[HistoryListener] = (),
    parallel: Parallel | None = None,
) -> RunResult:
    folder = resolve_backbone(recipe.model.backbone)
    tokenizer = load_tokenizer(folder)
    bundle = load_data(recipe.data, recipe.run.seed, _token_counter(tokenizer))
    bundle = augment_bundle(bundle, recipe.data.augment, folder, recipe.run.seed)
    held_out = _held_out(bundle)
    torch.manual_seed(recipe.run.seed)
    # the method is set up before the run directory exists, so a bad option leaves nothing behind
    session = start_method(recipe, folder, bundle)
    if parallel is not None:
        _check_data_parallel(recipe, session)
    model = session.model
    leader = parallel is None or parallel.leader  # only rank 0 of a parallel run writes
    run_dir = prepare_run_dir(recipe, resume, overwrite) if leader else recipe.run_dir()
    device = select_device(recipe.train.device) if parallel is None else parallel.device
    dtype = select_dtype(recipe.train.precision, device)
    max_len = recipe.model.max_length
    train, dev, test = (
        encode_split(tokenizer, s, max_len) for s in (bundle.train, bundle.dev, bundle.test)
    )
    policy = private_policy(recipe, model, len(train))
    tuner = (FineTuner if parallel is None else partial(DistributedFineTuner, parallel=parallel))(
        model,
        recipe.train,
        device,
        dtype,
        tokenizer.pad_token_id or 0,
        recipe.run.seed,
        run_dir,
        progress and leader,
        hooks=session.hooks,
        policy=policy,
        listeners=[HistoryWriter(run_dir), *listeners] if leader else [],
    )
    result = session.fit(tuner, train, dev, resume)
    if not leader:
        return RunResult(run_dir, {}, asdict(result), {})
    selftrain = None
    if recipe.train.self_training is not None:
        selftrain = run_self_training(recipe, session, tuner, tokenizer, (train, dev, test))
    privacy = policy.finish(result.steps) if policy is not None else None
    counts = (
        sum(p.numel() for p in model.parameters()),
        sum(p.numel() for p in model.parameters() if p.requires_grad),
    )
    training = _training_summary(result, device, dtype, counts, train.truncated)
    if selftrain is not None:
        training["self_training"] = selftrain
    if privacy is not None:
        training["privacy"] = privacy
    if parallel is not None:
        training["distributed"] = parallel.summary(torch.get_num_threads())
    metrics, calibration = _evaluate_calibrated(
        recipe, model, tokenizer, bundle, (dev, test), held_out, run_dir, device
    )
    training["calibration"] = calibration
    warning = fallback_warning(recipe, result)
    if warning:
        metrics.setdefault("warnings", []).append(warning)
    extra = session.save(run_dir, tokenizer, bundle, train, training)
    if calibration["method"] == "temperature":
        write_calibration(run_dir, calibration)
    write_reports(run_dir, recipe, bundle, metrics, training)
    if not recipe.train.keep_checkpoints:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    write_manifest(run_dir, kind=session.kind, extra={"backbone": recipe.model.backbone, **extra})
    return RunResult(run_dir, metrics, training, bundle.report.to_dict())


def _evaluate_calibrated(
    recipe: Recipe,
    model: Any,
    tokenizer: Any,
    bundle: DataBundle,
    encoded: tuple[Encoded, Encoded],
    held_out: str,
    run_dir: Path,
    device: torch.device,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit the calibration temperature on dev (see `modelyard.trainer.calibrate`), evaluate the
    held-out split with it, and return (metrics, calibration record with ECE and accuracy
    before and after on the held-out split)."""
    dev, test = encoded
    pad_id, bins = tokenizer.pad_token_id or 0, recipe.evaluate.ece_bins
    calibration = fit_calibration(model, dev, recipe.train, device, pad_id, bins)
    split = bundle.test if held_out == "test" else bundle.dev
    temperature = calibration["temperature"]
    metrics = evaluate_model(model, tokenizer, bundle.labels, recipe, split, run_dir, temperature)
    metrics["evaluated_on"] = held_out
    if calibration["method"] == "temperature":
        held = test if held_out == "test" else dev
        calibration.update(uncalibrated_figures(model, held, device, pad_id, bins))
        calibration.update(
            evaluated_on=held_out, ece_after=metrics["ece"], accuracy_after=metrics["accuracy"]
        )
        metrics.update(temperature=temperature, ece_uncalibrated=calibration["ece_before"])
    return metrics, calibration


def fallback_warning(recipe: Recipe, result: TrainResult) -> str | None:
    """Return a warning when `epochs: auto` fell back to a fixed length for want of dev data,
    or None (a plateau decided, the user fixed the length, or DP-SGD needed it fixed)."""
    train = recipe.train
    if result.stop_reason != "fallback" or recipe.privacy is not None:
        return None
    if train.early_stopping.patience is None:
        return None
    return (
        f"train.epochs auto trained a fixed {train.fallback_epochs:g} epochs because "
        f"{result.stopping.get('fallback')}; hold out at least "
        f"{train.early_stopping.min_dev_rows} dev rows (data.split.dev, or data.dev) so the "
        "dev metric can decide when to stop"
    )


def _held_out(bundle: DataBundle) -> str:
    """Return which split the final evaluation uses: test, or dev when there is no test split."""
    if len(bundle.test):
        return "test"
    if len(bundle.dev):
        return "dev"
    raise DataError(
        "no test or dev rows to evaluate on: set data.split.test above 0 or give data.test"
    )


def _token_counter(tokenizer: Any) -> Any:
    def count(texts: list[str]) -> list[int]:
        if not texts:
            return []
        return [len(ids) for ids in tokenizer(texts, truncation=False, verbose=False)["input_ids"]]

    return count
