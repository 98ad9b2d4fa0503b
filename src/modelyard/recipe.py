"""The typed recipe: one YAML file describes a run; dotted overrides change it.

Every section is a closed pydantic model (unknown keys are errors) and every problem in
a recipe is reported at once, each with its key path, the value given and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from modelyard.errors import RecipeError


class Section(BaseModel):
    """Base of every recipe section: typos are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RunConfig(Section):
    name: str = Field(
        "run", min_length=1, description="Run name; the run directory is output_dir/name."
    )
    output_dir: Path = Field(Path("runs"), description="Where run directories are written.")
    seed: int = Field(
        42, ge=0, description="Seed for splits, shuffling, initialisation and dropout."
    )


class SplitConfig(Section):
    dev: float = Field(0.1, ge=0.0, lt=1.0, description="Fraction held out for early stopping.")
    test: float = Field(
        0.1, ge=0.0, lt=1.0, description="Fraction held out for the final evaluation."
    )

    @model_validator(mode="after")
    def _fractions_leave_training_data(self) -> SplitConfig:
        if self.dev + self.test >= 0.9:
            raise ValueError(f"dev + test must be below 0.9, got {self.dev + self.test:.2f}")
        return self


class DataConfig(Section):
    path: Path | None = Field(None, description="One labelled file, split into train/dev/test.")
    train: Path | None = Field(None, description="Training file, when you bring your own splits.")
    dev: Path | None = Field(
        None, description="Dev file (early stopping); split off train if absent."
    )
    test: Path | None = Field(None, description="Test file; split off train if absent.")
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet"] = "auto"
    text_column: str = "text"
    text_pair_column: str | None = Field(None, description="Second text column for sentence pairs.")
    label_column: str = "label"
    labels: list[str] | None = Field(
        None, description="Label set and order; taken from the data if absent."
    )
    split: SplitConfig = Field(default_factory=SplitConfig)
    max_rows: int | None = Field(
        None, gt=0, description="Use a stratified sample of this many training rows."
    )
    drop_duplicates: bool = Field(
        True, description="Drop exact duplicate training rows (counted in the report)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if self.path is None and self.train is None:
            raise ValueError("give data.path (one file) or data.train (your own splits)")
        if self.path is not None and self.train is not None:
            raise ValueError("give data.path or data.train, not both")
        return self


class ModelConfig(Section):
    backbone: str = Field(
        "minilm-l6", description="A registered backbone name or a local Hugging Face model folder."
    )
    max_length: int = Field(
        128, ge=8, le=4096, description="Longer texts are truncated (and counted)."
    )


class EarlyStoppingConfig(Section):
    metric: Literal["accuracy", "macro_f1", "loss"] = "macro_f1"
    patience: int | None = Field(
        2, ge=1, description="Evaluations without improvement; null disables."
    )


class TrainConfig(Section):
    method: str = Field("full", description="Training method (see `modelyard methods`).")
    epochs: float = Field(3, gt=0, description="Passes over the training data (fractions allowed).")
    max_steps: int | None = Field(None, gt=0, description="Stop after this many optimizer steps.")
    batch_size: int = Field(32, gt=0)
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    lr: float = Field(5e-5, gt=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    max_grad_norm: float | None = Field(
        1.0, gt=0, description="Clip gradients to this norm; null disables."
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 where the CPU or GPU supports it fast, else fp32."
    )
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")
    group_by_length: bool = Field(True, description="Batch texts of similar length (less padding).")
    eval_every: int | None = Field(
        None, gt=0, description="Evaluate every N steps; null: each epoch."
    )
    checkpoint_every: int | None = Field(
        200, gt=0, description="Checkpoint every N steps; null: each epoch."
    )
    keep_checkpoints: bool = Field(False, description="Keep checkpoints after a successful run.")
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    num_threads: int | None = Field(
        None, gt=0, description="CPU threads for torch; null: all cores."
    )


class EvaluateConfig(Section):
    ece_bins: int = Field(15, ge=2, le=100)
    speed: bool = Field(True, description="Measure latency at batch 1 and throughput at batch 32.")
    speed_samples: int = Field(64, ge=8, description="Texts used for the latency measurement.")


class Recipe(Section):
    """A whole run: data, model, training and evaluation."""

    run: RunConfig = Field(default_factory=RunConfig)
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)

    def run_dir(self) -> Path:
        """Return the directory this run writes to."""
        return self.run.output_dir / self.run.name

    def to_yaml(self) -> str:
        """Return the resolved recipe as YAML text (paths as strings)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Return a nested dict from `key.sub=value` strings; values are parsed as YAML scalars."""
    tree: dict[str, Any] = {}
    bad = [o for o in overrides if "=" not in o or not o.split("=", 1)[0].strip()]
    if bad:
        raise RecipeError(
            "overrides must look like key.sub=value (e.g. train.lr=3e-5); got: " + ", ".join(bad)
        )
    for item in overrides:
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = tree
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise RecipeError(f"override '{item}' conflicts with another override of '{part}'")
            node = child
        node[parts[-1]] = value
    return tree


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Return `base` updated by `extra`, merging nested dicts instead of replacing them."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: Any = Recipe
    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(model.model_fields)


def format_validation_error(exc: ValidationError, source: str) -> str:
    """Return one line per problem: source, key path, what is wrong, the value given."""
    lines = [f"{source}: {exc.error_count()} problem(s) in the recipe:"]
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc)
            hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
            lines.append(f"  - {key}: unknown key{hint}")
            continue
        msg = err["msg"].removeprefix("Value error, ")
        given = (
            f" (got {err['input']!r})"
            if "input" in err and not isinstance(err["input"], dict)
            else ""
        )
        lines.append(f"  - {key}: {msg}{given}")
    return "\n".join(lines)


def _resolve_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    data = raw.get("data")
    if isinstance(data, dict):
        for key in ("path", "train", "dev", "test"):
            value = data.get(key)
            if isinstance(value, str) and value and not Path(value).is_absolute():
                data[key] = str(base / value)
    return raw


def build_recipe(
    raw: dict[str, Any], source: str = "recipe", overrides: list[str] | None = None
) -> Recipe:
    """Return a validated Recipe from a dict plus overrides; raise RecipeError listing every problem."""
    merged = deep_merge(raw, parse_overrides(overrides or []))
    try:
        return Recipe.model_validate(merged)
    except ValidationError as exc:
        raise RecipeError(format_validation_error(exc, source)) from None


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Return the Recipe in a YAML file, with overrides applied and data paths made absolute.

    Raises RecipeError when the file is missing, not YAML, or invalid.
    """
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file not found: {path} (create one with `modelyard init DIR`)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of sections (data, model, train, ...)")
    raw.setdefault("run", {})
    if isinstance(raw["run"], dict):
        raw["run"].setdefault("name", path.stem)
        out = raw["run"].get("output_dir")
        if isinstance(out, str) and not Path(out).is_absolute():
            raw["run"]["output_dir"] = str(path.parent / out)
    # paths in the file are relative to the file; paths in overrides to the working directory
    return build_recipe(_resolve_paths(raw, path.parent), str(path), overrides)
