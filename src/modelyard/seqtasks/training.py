"""One multi-label or regression run: rows, the sequence head, the fine-tuning loop,
thresholds tuned on dev, evaluation and the artifact; and loading it back to predict.

`prepare_head_run` does everything that can fail on a user's input before the run directory
exists; `HeadRun.train` then trains, evaluates and saves.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError

from modelyard.errors import ArtifactError, BackboneError, DataError, RecipeError
from modelyard.evaluation import peak_rss_mb
from modelyard.fsutil import atomic_write_json, atomic_write_text
from modelyard.methods.session import parameter_figures
from modelyard.models import load_tokenizer, resolve_backbone
from modelyard.models.build import quiet_transformers
from modelyard.models.device import select_device, select_dtype
from modelyard.recipe import Recipe
from modelyard.registry.manifest import MANIFEST, read_manifest, verify_manifest, write_manifest
from modelyard.registry.records import RECIPE, read_recipe
from modelyard.registry.safety import check_weights
from modelyard.seqtasks.data import Rows, TaskSplits, load_rows
from modelyard.seqtasks.heads import (
    HeadData,
    HeadObjective,
    encode_rows,
    head_outputs,
    sigmoid,
    targets_tensor,
    task_metrics,
    tune_thresholds,
)
from modelyard.trainer.loop import FineTuner

KINDS = {"multi-label": "multi-label-classifier", "regression": "regressor"}
HEAD_FILE = "head.json"  # thresholds (multi-label) or the target's scaling (regression)


@dataclass
class HeadRun:
    """A prepared multi-label or regression run: the model and its encoded rows."""

    recipe: Recipe
    tokenizer: Any
    model: Any
    splits: TaskSplits
    train_rows: HeadData
    dev_rows: HeadData
    scale: tuple[float, float]  # regression targets are trained as (y - mean) / std

    def train(self, run_dir: Path, resume: bool = False, progress: bool = True) -> dict[str, Any]:
        """Train, tune thresholds on dev (multi-label), evaluate, save; return the figures."""
        recipe, task = self.recipe, self.recipe.task
        device = select_device(recipe.train.device)
        dtype = select_dtype(recipe.train.precision, device)
        pad = int(self.tokenizer.pad_token_id or 0)
        objective = HeadObjective(task, pad, recipe.train.early_stopping.metric)
        tuner = FineTuner(
            self.model,
            recipe.train,
            device,
            dtype,
            pad,
            recipe.run.seed,
            run_dir,
            progress,
            objective=objective,
        )
        result = tuner.fit(self.train_rows, self.dev_rows, resume=resume)
        head: dict[str, Any] = {"task": task, "labels": self.splits.labels}
        if task == "multi-label":
            tuned = len(self.dev_rows) > 0
            outputs = head_outputs(self.model, self.dev_rows, pad, device, dtype)
            head["thresholds"] = (
                tune_thresholds(sigmoid(outputs), self.dev_rows.y)
                if tuned
                else [0.5] * len(self.splits.labels)
            )
            head["thresholds_tuned_on"] = "dev" if tuned else None
        else:
            head["mean"], head["std"] = self.scale
        rows, split = _held_out(self.splits)
        metrics = evaluate_rows(self.model, self.tokenizer, head, rows, recipe.model.max_length)
        metrics["evaluated_on"] = split
        training = {
            **asdict(result),
            "device": str(device),
            "precision": "fp32" if dtype is None else str(dtype).removeprefix("torch."),
            "train_truncated": self.train_rows.truncated,
            **parameter_figures(self.model),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
        self._save(run_dir, head, metrics, training)
        return {"metrics": metrics, "training": training, "data_report": self.splits.report}

    def _save(
        self, run_dir: Path, head: dict[str, Any], metrics: dict[str, Any], training: dict[str, Any]
    ) -> None:
        recipe = self.recipe
        model = self.model.cpu()
        merge = getattr(model, "merge_and_unload", None)  # LoRA folded into the weights
        with quiet_transformers():
            (merge() if callable(merge) else model).save_pretrained(
                str(run_dir), safe_serialization=True
            )
        self.tokenizer.save_pretrained(str(run_dir))
        atomic_write_json(run_dir / HEAD_FILE, head)
        atomic_write_json(run_dir / "metrics.json", {"test": metrics, "training": training})
        atomic_write_json(run_dir / "data_report.json", self.splits.report)
        atomic_write_text(run_dir / "report.md", _report(recipe, metrics, training, self.splits))
        if not recipe.train.keep_checkpoints:
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        extra = {
            "backbone": recipe.model.backbone,
            "task": recipe.task,
            "method": recipe.train.method,
        }
        write_manifest(run_dir, kind=KINDS[recipe.task], extra=extra)


def _held_out(splits: TaskSplits) -> tuple[Rows, str]:
    if len(splits.test):
        return splits.test, "test"
    if len(splits.dev):
        return splits.dev, "dev"
    raise DataError(
        "no test or dev rows to evaluate on: set data.split.test above 0 or give data.test"
    )


def _report(
    recipe: Recipe, metrics: dict[str, Any], training: dict[str, Any], splits: TaskSplits
) -> str:
    figures = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
    lines = [
        f"# {recipe.run.name}: {recipe.task} on {recipe.model.backbone}",
        "",
        *[f"- {k}: {v}" for k, v in figures.items()],
        "",
    ]
    if "per_label" in metrics:
        lines += [
            "| label | precision | recall | F1 | support | threshold |",
            "|---|---|---|---|---|---|",
        ]
        for label, v in metrics["per_label"].items():
            lines.append(
                f"| {label} | {v['precision']:.4f} | {v['recall']:.4f} | {v['f1']:.4f} | "
                f"{v['support']} | {v['threshold']} |"
            )
        lines.append("")
    lines += [
        "## Training",
        f"- method {recipe.train.method}, {training['steps']} steps, {training['samples_per_s']} "
        f"rows/s ({training['precision']} on {training['device']})",
        "",
        "## Data",
        *[f"- {k}: {v}" for k, v in splits.report.items()],
    ]
    return "\n".join(lines) + "\n"


def _targets(task: str, rows: Rows, labels: list[str], scale: tuple[float, float]) -> np.ndarray:
    y = targets_tensor(task, rows.targets, labels)
    return (y - scale[0]) / scale[1] if task == "regression" else y


def evaluate_rows(
    model: Any, tokenizer: Any, head: dict[str, Any], rows: Rows, max_length: int
) -> dict[str, Any]:
    """Return the task's metrics of the model on `rows` (regression in the target's own units)."""
    task, labels = head["task"], head["labels"]
    data = encode_rows(
        tokenizer, rows.texts, targets_tensor(task, rows.targets, labels), max_length
    )
    device = next(model.parameters()).device
    outputs = head_outputs(model, data, int(tokenizer.pad_token_id or 0), device, None)
    if task == "regression":
        outputs = outputs * head["std"] + head["mean"]
    metrics = task_metrics(task, outputs, data.y, head.get("thresholds"), labels or None)
    metrics["truncated"] = data.truncated
    return metrics


def _build(folder: Path, recipe: Recipe, labels: list[str]) -> Any:
    from transformers import AutoModelForSequenceClassification

    regression = recipe.task == "regression"
    names = ["value"] if regression else labels
    try:
        with quiet_transformers():
            model = AutoModelForSequenceClassification.from_pretrained(
                str(folder),
                num_labels=len(names),
                problem_type="regression" if regression else "multi_label_classification",
                id2label=dict(enumerate(names)),
                label2id={n: i for i, n in enumerate(names)},
                local_files_only=True,
                use_safetensors=True,
            )
    except (OSError, ValueError) as exc:
        raise BackboneError(f"cannot build a {recipe.task} head on {folder}: {exc}") from None
    if recipe.train.method == "full":
        return model
    if recipe.train.method != "lora":
        raise RecipeError(f"task '{recipe.task}' trains with train.method full or lora")
    from modelyard.methods.peft_methods import prepare_lora

    return prepare_lora(model, recipe)


def prepare_head_run(recipe: Recipe) -> HeadRun:
    """Return the multi-label or regression run a recipe describes, data read and model built.

    Raises RecipeError, DataError or BackboneError for a user's mistake, before anything is written.
    """
    folder = resolve_backbone(recipe.model.backbone)
    tokenizer = load_tokenizer(folder)
    splits = load_rows(recipe)
    scale = (0.0, 1.0)
    if recipe.task == "regression":
        y = np.asarray(splits.train.targets, dtype=float)
        scale = (float(y.mean()), float(y.std()) or 1.0)
    length = recipe.model.max_length
    train, dev = (
        encode_rows(tokenizer, r.texts, _targets(recipe.task, r, splits.labels, scale), length)
        for r in (splits.train, splits.dev)
    )
    torch.manual_seed(recipe.run.seed)
    model = _build(folder, recipe, splits.labels)
    return HeadRun(recipe, tokenizer, model, splits, train, dev, scale)


@dataclass
class LoadedHead:
    """A verified multi-label or regression run: model in eval mode, tokenizer, head settings."""

    path: Path
    model: Any
    tokenizer: Any
    head: dict[str, Any]
    recipe: Recipe

    @property
    def labels(self) -> list[str]:
        """Return the labels (multi-label) or ["value"] (regression)."""
        return list(self.head["labels"]) or ["value"]

    def predict(self, texts: list[str], batch_size: int = 32) -> list[dict[str, Any]]:
        """Return, for each text, `labels` (those at or above their threshold) and
        `probabilities` (most probable first), or `value` (regression); and `truncated`."""
        data = encode_rows(
            self.tokenizer, texts, np.zeros((len(texts), 1)), self.recipe.model.max_length
        )
        cut = [len(ids) for ids in data.input_ids]
        outputs = head_outputs(
            self.model,
            data,
            int(self.tokenizer.pad_token_id or 0),
            torch.device("cpu"),
            None,
            batch_size,
        )
        full = [len(x) for x in self.tokenizer(texts, verbose=False)["input_ids"]] if texts else []
        out: list[dict[str, Any]] = []
        for row, text_len, kept in zip(outputs, full, cut, strict=True):
            truncated = text_len > kept
            if self.head["task"] == "regression":
                out.append(
                    {
                        "value": round(float(row[0] * self.head["std"] + self.head["mean"]), 6),
                        "truncated": truncated,
                    }
                )
                continue
            probs = sigmoid(row)
            ranked = sorted(zip(self.head["labels"], probs, strict=True), key=lambda p: -p[1])
            chosen = [
                label
                for label, p, t in zip(
                    self.head["labels"], probs, self.head["thresholds"], strict=True
                )
                if p >= t
            ]
            out.append(
                {
                    "labels": chosen,
                    "probabilities": {label: round(float(p), 6) for label, p in ranked},
                    "truncated": truncated,
                }
            )
        return out


def head_kind(path: str | Path) -> str | None:
    """Return the task ('multi-label' or 'regression') of the run at `path`, or None."""
    root = Path(path)
    if not (root / MANIFEST).is_file():
        return None
    kind = read_manifest(root).get("kind")
    return next((task for task, k in KINDS.items() if k == kind), None)


def load_head_run(path: str | Path) -> LoadedHead:
    """Return the verified multi-label or regression run at `path`, ready to predict.

    Raises ArtifactError for another kind of artifact, a changed file or an unloadable model.
    """
    from transformers import AutoModelForSequenceClassification

    run_dir = Path(path)
    manifest = verify_manifest(run_dir)
    if manifest.get("kind") not in KINDS.values():
        raise ArtifactError(
            f"{run_dir} is a '{manifest.get('kind')}' artifact, not a multi-label or regression run"
        )
    check_weights(run_dir, list(manifest["files"]))
    if not (run_dir / RECIPE).is_file() or not (run_dir / HEAD_FILE).is_file():
        raise ArtifactError(
            f"{run_dir} lacks {RECIPE} or {HEAD_FILE}; it is not a finished modelyard run"
        )
    import json

    head = json.loads((run_dir / HEAD_FILE).read_text(encoding="utf-8"))
    try:
        with quiet_transformers():
            model = AutoModelForSequenceClassification.from_pretrained(
                str(run_dir), local_files_only=True, use_safetensors=True
            )
    except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as exc:
        raise ArtifactError(f"cannot load the model in {run_dir}: {exc}") from None
    return LoadedHead(run_dir, model.eval(), load_tokenizer(run_dir), head, read_recipe(run_dir))
