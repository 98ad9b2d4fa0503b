"""Recipe sections of the model and its training: model, train (methods, continual,
adversarial, self-training) and privacy."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from modelyard.recipe.base import Section
from modelyard.recipe.data import SelfTrainingConfig
from modelyard.recipe.rules import check_method_options


class HeadInitConfig(Section):
    """`model.head_init`: start a mean-pooled head as the zero-shot classifier of label descriptions."""

    descriptions: dict[str, str | list[str]] | None = Field(
        None,
        description=(
            "Label -> a description or a list of them (e.g. positive: [a great film]); a head "
            "row is the mean unit embedding of its label's descriptions. null: each label's name."
        ),
    )
    temperature: float = Field(
        0.05, gt=0, le=10, description="Head rows are scaled by 1 / temperature (cosine logits)."
    )

    @model_validator(mode="after")
    def _descriptions_have_text(self) -> HeadInitConfig:
        empty = [
            label for label, value in (self.descriptions or {}).items() if not _has_text(value)
        ]
        if empty:
            raise ValueError(f"empty descriptions for {sorted(empty)}: give each label some text")
        return self


def _has_text(value: str | list[str]) -> bool:
    texts = [value] if isinstance(value, str) else value
    return bool(texts) and all(t.strip() for t in texts)


# the defaults of model.backbone and model.max_length, which functions outside a recipe
# (zero-shot, curation tools) take as their own defaults too
DEFAULT_BACKBONE = "minilm-l6"
DEFAULT_MAX_LENGTH = 128


class ModelConfig(Section):
    """The backbone, how long an input may be, and what the classification head reads."""

    backbone: str = Field(
        DEFAULT_BACKBONE,
        description="A registered backbone name or a local Hugging Face model folder.",
    )
    max_length: int = Field(
        DEFAULT_MAX_LENGTH, ge=8, le=4096, description="Longer texts are truncated (and counted)."
    )
    pooling: Literal["cls", "mean"] = Field(
        "cls",
        description=(
            "What the task head reads: the first token through the backbone's pooler (cls), or "
            "the mean over the tokens, L2-normalised (mean: how sentence-embedding backbones such "
            "as MiniLM were trained; saved as an embedding-classifier, or an adapter on one)."
        ),
    )
    head_init: HeadInitConfig | None = Field(
        None,
        description=(
            "Start the mean-pooled head from label descriptions (public text, no training data) "
            "instead of zeros: the backbone gets useful gradients from the first step, which "
            "matters most with few labels or under DP-SGD's noise. Needs pooling mean."
        ),
    )


# the rule behind `train.eval_every: auto`: an evaluation about every EVAL_ROWS training rows,
# but at least once and at most EVALS_PER_EPOCH times an epoch
EVAL_ROWS = 1000
EVALS_PER_EPOCH = 4


class EarlyStoppingConfig(Section):
    """When training stops on the dev metric; the best weights on dev are kept."""

    metric: Literal["accuracy", "macro_f1", "loss"] = Field(
        "macro_f1",
        description="Dev metric that picks the best weights and tells a plateau (loss: lower is "
        "better).",
    )
    patience: int | Literal["auto"] | None = Field(
        "auto",
        description=(
            "Evaluations without improvement that make a plateau. auto: with train.epochs auto, "
            "the evaluations of about one epoch and at least 2; with a number of epochs, off "
            "(that many epochs are trained). null: off."
        ),
    )
    min_dev_rows: int = Field(
        20,
        ge=1,
        description=(
            "With fewer dev rows a plateau cannot be told from noise: train.epochs auto then "
            "trains train.fallback_epochs, and the report says so."
        ),
    )

    @field_validator("patience", mode="before")
    @classmethod
    def _patience_auto_or_positive(cls, value: object) -> object:
        return auto_or_positive(value, "a whole number above 0, or null")


def auto_or_positive(value: object, expected: str) -> object:
    """Return `value` unchanged when it is auto or a number above 0 (whole, or null, when
    `expected` says so).

    Raises ValueError otherwise, in one message rather than one per member of the union.
    """
    if value == "auto" or (value is None and "null" in expected):
        return value
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not isinstance(value, (int, float)) or not number or value <= 0:
        raise ValueError(f"must be auto or {expected}")
    if "whole" in expected and value != int(value):
        raise ValueError(f"must be auto or {expected}")
    return value


class LoraOptions(Section):
    """Options of `train.method: lora` (low-rank adapters through the peft library)."""

    rank: int = Field(8, gt=0, le=1024, description="Rank r of the low-rank update B·A.")
    alpha: float = Field(16.0, gt=0, description="The update is scaled by alpha / rank.")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout on the adapter's input.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["query", "value"],
        min_length=1,
        description="Linear layers to adapt, by name or dotted name suffix (query, key, value, dense, ...).",
    )
    use_dora: bool = Field(
        False, description="Weight-decomposed LoRA (DoRA): adapts direction and magnitude apart."
    )


class IA3Options(Section):
    """Options of `train.method: ia3` (learned activation rescaling through peft)."""

    target_modules: list[str] | None = Field(
        None,
        description="Layers whose activations are rescaled; null: peft's default for the model.",
    )
    feedforward_modules: list[str] | None = Field(
        None,
        description="Which targets are feed-forward (scaled on the input); null: peft's default.",
    )


class PromptTuningOptions(Section):
    """Options of `train.method: prompt-tuning` (learned virtual tokens through peft)."""

    num_virtual_tokens: int = Field(
        20, gt=0, le=256, description="Learned embeddings prepended to every input."
    )
    init_text: str | None = Field(
        None,
        min_length=1,
        description="Initialise the virtual tokens from this text; null: random.",
    )


class SetFitOptions(Section):
    """Options of `train.method: setfit` (contrastive pairs, then a logistic-regression head)."""

    pairs_per_example: int = Field(
        20, gt=0, le=1000, description="Same/different-label pairs drawn per training example."
    )
    pair_epochs: int = Field(1, gt=0, le=100, description="Passes over the generated pairs.")
    lr: float = Field(2e-5, gt=0, lt=1, description="Learning rate of the contrastive phase.")
    batch_size: int = Field(16, gt=0, description="Pairs per contrastive step.")
    head_c: float = Field(
        1.0, gt=0, description="Inverse L2 strength of the logistic-regression head."
    )


class AdversarialConfig(Section):
    """Adversarial training: perturb the word-embedding output along the loss gradient."""

    method: Literal["fgm", "pgd"] = Field(
        "fgm", description="fgm: one gradient step; pgd: several projected steps."
    )
    epsilon: float = Field(
        0.1,
        gt=0,
        description="L2 radius of the perturbation, per example, in embedding units (a MiniLM "
        "token embedding has norm ~1, so 1.0 can erase a key word and stall training).",
    )
    steps: int = Field(3, ge=1, le=20, description="PGD ascent steps (fgm uses one).")
    step_size: float | None = Field(
        None, gt=0, description="PGD step length; null: epsilon / steps * 1.5."
    )


class MemoryConfig(Section):
    """What a run keeps for continual training later; nothing by default."""

    rehearsal_rows: int = Field(
        0,
        ge=0,
        description="Keep a stratified sample of this many training rows (text and label) in the run "
        "for rehearsal later; opt-in because the artifact then holds training data.",
    )
    fisher: bool = Field(
        False, description="Keep the diagonal Fisher information of the weights (no data) for EWC."
    )
    fisher_samples: int = Field(
        256, gt=0, description="Training examples the Fisher information is estimated on."
    )


class ContinualConfig(Section):
    """Continue an earlier run on new data or new classes."""

    from_run: Path = Field(description="The earlier run directory whose model is trained further.")
    strategy: Literal["naive", "rehearsal", "ewc"] = Field(
        "naive",
        description="naive: plain fine-tuning; rehearsal: mix in the earlier run's stored sample; "
        "ewc: penalise moving weights the earlier data found important.",
    )
    ewc_lambda: float = Field(
        5000.0, gt=0, description="Strength of the EWC penalty (lambda / 2 · sum F (w - w_old)²)."
    )
    replay: Literal["balanced", "once"] = Field(
        "balanced",
        description="rehearsal only. balanced: repeat the stored sample until each earlier class "
        "has about as many rows as a class of the new data (a small memory otherwise drowns); "
        "once: add it a single time.",
    )


class TrainConfig(Section):
    """How the model is trained: method, schedule, optimizer, precision, checkpoints and extras."""

    method: str = Field("full", description="Training method (see `modelyard methods`).")
    epochs: float | Literal["auto"] = Field(
        "auto",
        description=(
            "auto: train until the dev metric plateaus (early_stopping.patience evaluations "
            "without improvement), then let the learning rate cool down to zero and stop, at most "
            "max_epochs; the final weights are kept unless an earlier checkpoint scored better on "
            "dev by more than one standard error of the metric. A number: exactly that many passes "
            "(fractions allowed), the learning rate decaying linearly to zero over them, and the "
            "best checkpoint on dev kept."
        ),
    )
    max_epochs: float = Field(
        20, gt=0, description="The ceiling of epochs auto, in passes over the training data."
    )
    fallback_epochs: float = Field(
        3,
        gt=0,
        description=(
            "Passes epochs auto trains when nothing can tell a plateau: fewer dev rows than "
            "early_stopping.min_dev_rows, patience null, or DP-SGD (its noise is planned for a "
            "fixed number of steps). epochs auto also warms up as a run of this length would."
        ),
    )
    cooldown: float = Field(
        0.2,
        ge=0,
        le=1,
        description=(
            "epochs auto: on a plateau, or before the ceiling or a budget, the learning rate "
            "decays linearly to zero over this fraction of the steps trained so far (from the "
            "weights reached), then training stops; 0 stops at once."
        ),
    )
    max_steps: int | None = Field(
        None,
        gt=0,
        description=(
            "A step budget: at most this many optimizer steps. It replaces the epoch count "
            "(epochs auto: the max_epochs ceiling)."
        ),
    )
    max_minutes: float | None = Field(
        None,
        gt=0,
        description=(
            "A time budget in minutes of training (evaluations included): epochs auto cools "
            "down to end within it; a fixed number of epochs stops when it is spent."
        ),
    )
    batch_size: int = Field(
        32,
        gt=0,
        description="Texts per micro-batch (under privacy: the expected Poisson batch size).",
    )
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    lr: float = Field(
        5e-5,
        gt=0,
        le=10,
        description="Peak learning rate, reached after warmup; it decays linearly to 0 over a "
        "fixed number of epochs, or in the cool-down of epochs auto.",
    )
    optimizer: Literal["adamw", "sgd"] = Field(
        "adamw",
        description="adamw, or sgd with momentum: under DP-SGD, AdamW's per-coordinate scaling "
        "turns noise-only coordinates into full-size steps; SGD moves them by the noise alone.",
    )
    momentum: float = Field(0.9, ge=0, lt=1, description="Momentum of the sgd optimizer.")
    weight_decay: float = Field(
        0.01, ge=0, description="Decoupled weight decay; biases and norm weights are not decayed."
    )
    warmup_ratio: float = Field(
        0.06,
        ge=0,
        lt=1,
        description="Share of all optimizer steps spent warming the lr up from 0 (epochs auto: "
        "of the steps of train.fallback_epochs).",
    )
    max_grad_norm: float | None = Field(
        1.0, gt=0, description="Clip gradients to this norm; null disables."
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 where the CPU or GPU supports it fast, else fp32."
    )
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")
    group_by_length: bool = Field(
        True,
        description="Batch texts of similar length (less padding): shuffle, sort each window "
        "of train.group_window batches by length, cut it into batches, shuffle the batches.",
    )
    freeze_word_embeddings: bool = Field(
        False,
        description="train.method full: keep the backbone's word-embedding table as it is "
        "(about half of MiniLM-L6's weights; its gradient, clipping and AdamW update cost a "
        "fifth of a CPU step). Default true for task token-classification.",
    )
    group_window: int = Field(
        50,
        ge=2,
        description="With group_by_length, the batches' worth of random texts sorted by "
        "length together (more: less padding, batches more alike). Default 2 for task "
        "token-classification: wider windows cost it entity F1.",
    )
    eval_every: int | Literal["auto"] | None = Field(
        "auto",
        description=(
            f"Evaluate on dev every N optimizer steps. auto: about every {EVAL_ROWS:,} training "
            f"rows, at least once and at most {EVALS_PER_EPOCH} times an epoch. null: each epoch."
        ),
    )
    checkpoint_every: int | None = Field(
        200, gt=0, description="Checkpoint every N steps; null: each epoch."
    )
    keep_checkpoints: bool = Field(False, description="Keep checkpoints after a successful run.")
    early_stopping: EarlyStoppingConfig = Field(
        default_factory=EarlyStoppingConfig, description="When to stop on the dev metric."
    )
    num_threads: int | None = Field(
        None, gt=0, description="CPU threads for torch; null: all cores."
    )
    calibrate: bool = Field(
        True,
        description="Classification: after training, fit one temperature T on the dev split "
        "(temperature scaling) so the probabilities match how often the model is right; it is "
        "saved in the artifact and every backend divides the logits by it. Predicted labels do "
        "not change. Skipped (T = 1) with fewer dev rows than early_stopping.min_dev_rows. "
        "false: T = 1.",
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass: less memory, ~30% slower."
    )
    lora: LoraOptions | None = Field(None, description="Options of method lora.")
    ia3: IA3Options | None = Field(None, description="Options of method ia3.")
    prompt_tuning: PromptTuningOptions | None = Field(
        None, description="Options of method prompt-tuning."
    )
    setfit: SetFitOptions | None = Field(None, description="Options of method setfit.")
    adversarial: AdversarialConfig | None = Field(
        None, description="Adversarial training (FGM or PGD); null: off."
    )
    memory: MemoryConfig = Field(
        default_factory=MemoryConfig, description="What to keep for continual training later."
    )
    continual: ContinualConfig | None = Field(
        None, description="Continue an earlier run; null: start from the backbone."
    )
    self_training: SelfTrainingConfig | None = Field(
        None, description="Add confident pseudo-labels of unlabelled texts; null: off."
    )

    @model_validator(mode="after")
    def _method_options_match(self) -> TrainConfig:
        check_method_options(self)
        return self

    @field_validator("epochs", mode="before")
    @classmethod
    def _epochs_auto_or_positive(cls, value: object) -> object:
        return auto_or_positive(value, "a number above 0")

    @field_validator("eval_every", mode="before")
    @classmethod
    def _eval_every_auto_or_positive(cls, value: object) -> object:
        return auto_or_positive(value, "a whole number above 0, or null")


class PrivacyConfig(Section):
    """Differentially private training (DP-SGD through Opacus): a budget, not a noise level."""

    target_epsilon: float = Field(
        gt=0, le=100, description="Privacy budget epsilon the run must not exceed (e.g. 1, 3, 8)."
    )
    delta: float | Literal["auto"] = Field(
        "auto",
        description="Privacy parameter delta in (0, 1); auto: a power of ten at most 1/(10·N) "
        "for N training rows.",
    )
    max_grad_norm: float = Field(
        1.0,
        gt=0,
        description="Per-example gradient clipping norm C (replaces train.max_grad_norm).",
    )
    accountant: Literal["prv", "rdp"] = Field(
        "prv", description="Privacy accountant: prv (tighter) or rdp (Renyi DP, the classic bound)."
    )
    max_physical_batch_size: int = Field(
        128,
        ge=1,
        description="A Poisson batch larger than this runs in length-sorted chunks of at most "
        "this many rows (less memory and padding); it is still one clipped, noisy step.",
    )
    secure_rng: bool = Field(
        False,
        description="Draw batches and noise from the OS's cryptographic RNG (not the run seed), "
        "with noise robust to floating-point attacks; slower, not reproducible.",
    )

    @model_validator(mode="after")
    def _delta_in_range(self) -> PrivacyConfig:
        if self.delta != "auto" and not 0 < self.delta < 1:
            raise ValueError(f"delta must be 'auto' or in (0, 1), got {self.delta}")
        return self
