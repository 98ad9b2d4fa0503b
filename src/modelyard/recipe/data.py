"""Recipe sections of the run and its data: run, data (splits, augmentation, PII), audit."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, model_validator

from modelyard.recipe.base import Section, is_saved_run


class RunConfig(Section):
    """Where the run is written and the seed everything random starts from."""

    name: str = Field(
        "run", min_length=1, description="Run name; the run directory is output_dir/name."
    )
    output_dir: Path = Field(Path("runs"), description="Where run directories are written.")
    seed: int = Field(
        42, ge=0, description="Seed for splits, shuffling, initialisation and dropout."
    )


class SplitConfig(Section):
    """Dev and test rows split off the training file when no file of their own is given.

    Fractions are of the whole file; the draw is stratified by label and seeded by `run.seed`.
    """

    dev: float = Field(0.1, ge=0.0, lt=1.0, description="Fraction held out for early stopping.")
    test: float = Field(
        0.1, ge=0.0, lt=1.0, description="Fraction held out for the final evaluation."
    )

    @model_validator(mode="after")
    def _fractions_leave_training_data(self) -> SplitConfig:
        if self.dev + self.test >= 0.9:
            raise ValueError(f"dev + test must be below 0.9, got {self.dev + self.test:.2f}")
        return self


AugmentOp = Literal["swap", "delete", "insert", "synonym"]
PiiType = Literal["email", "phone", "credit_card", "iban", "ip", "url"]
AUGMENT_OPS: tuple[AugmentOp, ...] = ("swap", "delete", "insert", "synonym")
PII_TYPES: tuple[PiiType, ...] = ("email", "phone", "credit_card", "iban", "ip", "url")


class AugmentConfig(Section):
    """Offline text augmentation of the training split (`data.augment`); dev and test stay as read."""

    method: Literal["eda"] = Field(
        "eda", description="eda: random swap, deletion, insertion and synonym replacement."
    )
    n: int = Field(2, ge=1, le=32, description="Augmented copies added per training row.")
    alpha: float = Field(
        0.1, gt=0, le=0.5, description="Share of a text's words each operation changes."
    )
    operations: list[AugmentOp] = Field(
        default_factory=lambda: list(AUGMENT_OPS),
        min_length=1,
        description="Operations drawn from, one per augmented copy.",
    )
    synonyms: int = Field(
        5, ge=1, le=50, description="Nearest backbone-vocabulary neighbours a synonym comes from."
    )
    min_similarity: float = Field(
        0.55, ge=-1, le=1, description="Least cosine a neighbour word needs to count as a synonym."
    )


class PiiConfig(Section):
    """How personal data is found (`data.pii`); `data.redact_pii` turns redaction on."""

    types: list[PiiType] = Field(
        default_factory=lambda: list(PII_TYPES),
        description="Built-in detectors to run.",
    )
    patterns: dict[str, str] = Field(
        default_factory=dict,
        description="Extra detectors: NAME -> regular expression (replaced by [NAME]).",
    )
    region: str = Field(
        "US",
        min_length=2,
        max_length=2,
        description="Country whose phone numbers may be written without a +country code.",
    )

    @model_validator(mode="after")
    def _patterns_compile(self) -> PiiConfig:
        import re

        for name, pattern in self.patterns.items():
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
                raise ValueError(f"pattern name {name!r} must be letters, digits and _")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"pattern {name!r} is not a valid regular expression: {exc}"
                ) from None
        return self


class SelfTrainingConfig(Section):
    """Self-training (`train.self_training`): pseudo-label unlabelled texts, round by round."""

    unlabelled: Path = Field(description="File of unlabelled texts (same text column as the data).")
    threshold: float = Field(
        0.9, gt=0, lt=1, description="Least predicted probability a pseudo-label needs."
    )
    rounds: int = Field(2, ge=1, le=20, description="Pseudo-label and retrain this many times.")
    max_per_class: int | None = Field(
        None, gt=0, description="Most pseudo-labels added per class per round; null: no cap."
    )
    top_fraction: float | None = Field(
        None,
        gt=0,
        le=1,
        description=(
            "Instead of a fixed threshold, pseudo-label this share of the unlabelled rows per "
            "round, most confident first (curriculum labelling): for a model trained on few "
            "labels, whose confidence rarely reaches a fixed threshold. Not with threshold."
        ),
    )

    @model_validator(mode="after")
    def _one_selection_rule(self) -> SelfTrainingConfig:
        if self.top_fraction is not None and "threshold" in self.model_fields_set:
            raise ValueError("give threshold or top_fraction, not both")
        return self


class AuditConfig(Section):
    """The label audit (`modelyard data audit`): learner, folds and thresholds."""

    learner: Literal["embedding", "finetune", "dynamics"] = Field(
        "embedding",
        description="embedding: logistic regression on frozen backbone embeddings (fast); "
        "finetune: the training loop on every fold (slow, often more accurate); "
        "dynamics: one fine-tune on every row, each row's probabilities averaged over "
        "`snapshots` points per epoch (mislabelled rows are learned late or never).",
    )
    folds: int = Field(
        5, ge=2, le=20, description="Cross-validation folds for out-of-fold probabilities."
    )
    snapshots: int = Field(
        4,
        ge=1,
        le=20,
        description="dynamics: predictions per epoch averaged into the probabilities.",
    )
    filter_by: Literal[
        "auto",
        "both",
        "prune_by_noise_rate",
        "prune_by_class",
        "confident_learning",
        "predicted_neq_given",
    ] = Field(
        "auto",
        description="cleanlab's rule for which rows count as label errors; auto: both for the "
        "out-of-fold learners, predicted_neq_given for dynamics.",
    )
    c: float = Field(1.0, gt=0, description="Inverse L2 strength of the embedding learner.")
    duplicate_threshold: float = Field(
        0.95, gt=0, le=1, description="Cosine from which two texts count as near-duplicates."
    )
    max_pairs: int = Field(1000, ge=0, description="Most near-duplicate and leakage pairs listed.")
    max_outliers: int = Field(20, ge=0, description="Most atypical rows listed.")

    def rule(self) -> str:
        """Return the cleanlab rule the audit applies: `filter_by`, with auto resolved.

        The dynamics learner has seen every row it scores, so its probabilities lean towards
        the given labels and cleanlab's noise-rate estimate (which `both` relies on) comes out
        too low; a row whose averaged prediction is another class is the sounder test there.
        """
        if self.filter_by != "auto":
            return self.filter_by
        return "predicted_neq_given" if self.learner == "dynamics" else "both"


class DataConfig(Section):
    """The labelled data: one file split for you, or your own train/dev/test files."""

    path: Path | None = Field(None, description="One labelled file, split into train/dev/test.")
    train: Path | None = Field(None, description="Training file, when you bring your own splits.")
    dev: Path | None = Field(
        None, description="Dev file (early stopping); split off train if absent."
    )
    test: Path | None = Field(None, description="Test file; split off train if absent.")
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet", "text", "conll"] = Field(
        "auto",
        description="File format; auto: by extension (.txt is plain text, language-modeling only; "
        ".conll holds one token and its tag a line, token-classification only).",
    )
    text_column: str = Field(
        "text", description="Column of the texts (classification, and language-modeling tables)."
    )
    text_pair_column: str | None = Field(None, description="Second text column for sentence pairs.")
    label_column: str = Field("label", description="Column holding each row's label.")
    label_separator: str = Field(
        "|",
        min_length=1,
        description="task multi-label: what separates a row's labels in the label column (a "
        'cell holding a JSON list, ["a", "b"], is read as a list).',
    )
    labels: list[str] | None = Field(
        None, description="Label set and order; taken from the data if absent."
    )
    split: SplitConfig = Field(
        default_factory=SplitConfig,
        description="Fractions split off for dev and test when data.dev or data.test is absent.",
    )
    max_rows: int | None = Field(
        None, gt=0, description="Use a stratified sample of this many training rows."
    )
    drop_duplicates: bool = Field(
        True, description="Drop exact duplicate training rows (counted in the report)."
    )
    augment: AugmentConfig | None = Field(
        None, description="Add augmented copies of training rows (never dev/test); null: off."
    )
    redact_pii: bool = Field(
        False, description="Replace personal data (see data.pii) before anything reads the texts."
    )
    pii: PiiConfig = Field(default_factory=PiiConfig, description="What counts as personal data.")

    @property
    def has_source(self) -> bool:
        """Return True when the section names its data (only a saved run's may name none)."""
        return self.path is not None or self.train is not None

    @model_validator(mode="after")
    def _one_source(self, info: ValidationInfo) -> DataConfig:
        if not self.has_source and not is_saved_run(info):
            raise ValueError("give data.path (one file) or data.train (your own splits)")
        if self.path is not None and self.train is not None:
            raise ValueError("give data.path or data.train, not both")
        return self
