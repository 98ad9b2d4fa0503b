"""MODEL_CARD.md: what a run was trained on, how, how well, and what it is not for."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from modelyard.evaluation.calibration import calibration_note
from modelyard.recipe import Recipe


def describe_file(path: str | Path | None) -> str:
    """Return a data file as the card shows it: its name and SHA-256, never the absolute path
    (which says where one person's disk kept it, and goes stale when the run is moved)."""
    if path is None:
        return "(none)"
    file = Path(path)
    if not file.is_file():
        return f"`{file.name}`"
    digest = hashlib.sha256()
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"`{file.name}` (sha256 {digest.hexdigest()})"


def _backbone_name(backbone: str) -> str:
    # a local folder is named by its last part; a bundled name is kept as it is
    return Path(backbone).name if ("/" in backbone or "\\" in backbone) else backbone


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _privacy_section(record: dict[str, Any] | None) -> str:
    if not record:
        return "\n## Privacy\nNot trained with differential privacy: the weights can memorise training examples.\n"
    return f"""
## Privacy
Trained with {record["mechanism"]}: ({record["epsilon"]}, {record["delta"]:g})-differential
privacy for each training row (target epsilon {record["target_epsilon"]}), by the
{record["accountant"]} accountant of Opacus {record["opacus_version"]}.
- Noise multiplier {record["noise_multiplier"]}, per-example clipping norm {record["max_grad_norm"]},
  sampling rate {record["sample_rate"]} (expected batch {record["expected_batch_size"]} of {record["training_rows"]} rows),
  {record["steps"]} steps; secure RNG: {record["secure_rng"]}
- The guarantee covers the training rows only: not the dev split used for early stopping,
  nor the pretrained backbone's data.
"""


def _data_tools_lines(recipe: Recipe, data: dict[str, Any], training: dict[str, Any]) -> str:
    """Return model-card lines on personal data, augmentation and self-training ("" if none)."""
    lines = []
    if recipe.data.redact_pii:
        found = data.get("pii_redacted") or {}
        counts = ", ".join(f"{k} {v}" for k, v in sorted(found.items())) or "none found"
        lines.append(f"- Personal data was replaced before training (data.redact_pii): {counts}")
    if data.get("augmented_rows"):
        lines.append(
            f"- Augmented training rows (data.augment, train only): {data['augmented_rows']}"
        )
    selftrain = training.get("self_training")
    if selftrain:
        lines.append(
            f"- Self-training: {selftrain['pseudo_labels_used']} pseudo-labelled rows from "
            f"`{selftrain['unlabelled']}`, test accuracy gain {selftrain['test_accuracy_gain']}"
        )
        stops = [r["stopped"] for r in selftrain["rounds"] if r.get("stopped")]
        if stops:
            lines.append(f"  (stopped: {stops[0]})")
    return "\n".join(lines)


def _length_line(recipe: Recipe, training: dict[str, Any]) -> str:
    """Return how long training was asked to be and how long it ran, in epochs."""
    train = recipe.train
    per_epoch = (training.get("stopping") or {}).get("steps_per_epoch")
    ran = f"{training['steps'] / per_epoch:.1f} epochs trained" if per_epoch else ""
    if train.epochs == "auto":
        asked = (
            f"Epochs auto (until the dev {train.early_stopping.metric} plateaus, "
            f"at most {train.max_epochs:g})"
        )
    else:
        asked = f"Epochs {train.epochs:g}"
    return f"{asked}: {ran}" if ran else asked


def _calibration_line(training: dict[str, Any]) -> str:
    note = calibration_note(training.get("calibration"))
    return f"Calibration: {note}.\n\n" if note else ""


def _warnings(warnings: list[str]) -> str:
    return "".join(f"**Warning:** {w}.\n\n" for w in warnings)


def render_model_card(
    recipe: Recipe,
    labels: list[str],
    data: dict[str, Any],
    metrics: dict[str, Any],
    training: dict[str, Any],
) -> str:
    """Return the model card of a run as markdown."""
    headline = [
        "accuracy",
        "macro_f1",
        "weighted_f1",
        "ece",
        "latency_p50_ms",
        "throughput_b32_per_s",
    ]
    rows = "\n".join(f"| {k} | {_fmt(metrics[k])} |" for k in headline if k in metrics)
    source = describe_file(recipe.data.path or recipe.data.train)
    return f"""# Model card: {recipe.run.name}

## Model
- Task: text classification into {len(labels)} classes: {", ".join(labels)}
- Backbone: `{_backbone_name(recipe.model.backbone)}`, fine-tuned with method `{recipe.train.method}`
- Maximum input length: {recipe.model.max_length} tokens (longer inputs are truncated)

## Training data
- Source: {source} (text column `{recipe.data.text_column}`, label column `{recipe.data.label_column}`)
- Rows used for train / dev / test: {data.get("split_sizes", "see data_report.md")}
- The full validation report (removed rows, duplicates, conflicts, overlap, balance, lengths)
  is in `data_report.md`.
{_data_tools_lines(recipe, data, training)}

## Training
- {_length_line(recipe, training)}, batch size {recipe.train.batch_size} x {recipe.train.grad_accum} accumulation,
  learning rate {recipe.train.lr}, weight decay {recipe.train.weight_decay}, seed {recipe.run.seed}
- Precision: {training.get("precision")}, device: {training.get("device")}
- Optimizer steps: {training.get("steps")}, stopped early: {training.get("stopped_early")}
- Why training stopped: {training.get("stopped_because") or "not recorded"}
{_privacy_section(training.get("privacy"))}

## Evaluation (held-out test split, n = {metrics.get("n")})
| metric | value |
|---|---|
{rows}

{_calibration_line(training)}{_warnings(metrics.get("warnings", []))}Per-class figures and the confusion matrix are in `report.md` and `confusion.png`.

## Intended use
Routing or tagging texts like those in the training data, with a person able to review
decisions that matter.

## Limits
- Quality is measured only on data drawn like the training data; other domains, languages
  or writing styles can do much worse.
- Probabilities are calibrated only as far as the reported ECE says.
- The model can repeat biases of its training data and of the pretrained backbone.
- Do not use it for decisions about people without human review.
"""
