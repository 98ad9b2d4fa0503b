"""The typed recipe: one YAML file describes a run; dotted overrides change it.

Every section is a closed pydantic model (unknown keys are errors) and every problem in
a recipe is reported at once, each with its key path, the value given and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, get_args

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

    learner: Literal["embedding", "finetune"] = Field(
        "embedding",
        description="embedding: logistic regression on frozen backbone embeddings (fast); "
        "finetune: the training loop on every fold (slow, often more accurate).",
    )
    folds: int = Field(
        5, ge=2, le=20, description="Cross-validation folds for out-of-fold probabilities."
    )
    filter_by: Literal[
        "both", "prune_by_noise_rate", "prune_by_class", "confident_learning", "predicted_neq_given"
    ] = Field("both", description="cleanlab's rule for which rows count as label errors.")
    c: float = Field(1.0, gt=0, description="Inverse L2 strength of the embedding learner.")
    duplicate_threshold: float = Field(
        0.95, gt=0, le=1, description="Cosine from which two texts count as near-duplicates."
    )
    max_pairs: int = Field(1000, ge=0, description="Most near-duplicate and leakage pairs listed.")
    max_outliers: int = Field(20, ge=0, description="Most atypical rows listed.")


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
    augment: AugmentConfig | None = Field(
        None, description="Add augmented copies of training rows (never dev/test); null: off."
    )
    redact_pii: bool = Field(
        False, description="Replace personal data (see data.pii) before anything reads the texts."
    )
    pii: PiiConfig = Field(default_factory=PiiConfig, description="What counts as personal data.")

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
        from modelyard.methods.registry import check_method_options

        check_method_options(self)
        return self


class EvaluateConfig(Section):
    ece_bins: int = Field(15, ge=2, le=100)
    speed: bool = Field(True, description="Measure latency at batch 1 and throughput at batch 32.")
    speed_samples: int = Field(64, ge=8, description="Texts used for the latency measurement.")


class ExplainConfig(Section):
    """Defaults of `modelyard explain`; command-line options override them."""

    method: str = Field(
        "ig",
        description="Attribution method for texts and files: ig, gxi, occlusion or shapley "
        "(ig and gxi need a PyTorch run).",
    )
    steps: int = Field(20, ge=2, le=1000, description="Integrated-gradients integration steps.")
    score: Literal["log-odds", "probability"] = Field(
        "log-odds",
        description="What scores explain: the class's log-odds log(p/(1-p)), which does not "
        "saturate on confident models, or its probability.",
    )
    samples: int = Field(
        10, ge=1, le=1000, description="Random permutations for the Shapley sampling estimate."
    )
    top_k_percent: tuple[Annotated[float, Field(gt=0, le=100)], ...] = Field(
        (1.0, 5.0, 10.0, 20.0, 50.0),
        min_length=1,
        description="Shares of words (in %) removed or kept by the faithfulness metrics (ERASER bins).",
    )
    global_top: int = Field(
        10, ge=1, description="Words per class in the global view (highest mean attribution)."
    )
    global_min_count: int = Field(
        2, ge=1, description="Words seen fewer times than this are left out of the global view."
    )
    seed: int = Field(0, ge=0, description="Seed of Shapley sampling and the random baseline.")


class ServeConfig(Section):
    """Defaults of `modelyard serve`: binding, batching, limits and security."""

    host: str = Field(
        "127.0.0.1", min_length=1, description="Address to bind; a public one needs auth on."
    )
    port: int = Field(8080, ge=0, le=65535, description="TCP port (0: any free port).")
    workers: int = Field(1, ge=1, le=64, description="Server processes on this machine.")
    backend: Literal["local", "ray"] = Field(
        "local", description="local: uvicorn processes here; ray: a Ray Serve deployment."
    )
    auth: bool = Field(True, description="Require an API key on every route but health.")
    max_batch_size: int = Field(
        32, ge=1, le=1024, description="Most texts run through the model at once."
    )
    max_wait_ms: float = Field(
        5.0, ge=0, le=10_000, description="How long a batch waits for more texts to arrive."
    )
    max_queue: int = Field(
        512, ge=1, description="Texts waiting per model; more are refused with 503."
    )
    request_timeout_s: float = Field(
        10.0, gt=0, le=600, description="Per-request deadline; a late answer becomes 504."
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Larger request bodies are refused with 413."
    )
    max_texts: int = Field(64, ge=1, description="Most texts per request (422 beyond).")
    max_chars: int = Field(10_000, ge=1, description="Most characters per text (422 beyond).")
    rate_limit: float | None = Field(
        50.0, gt=0, description="Requests per second per API key (token bucket); null: no limit."
    )
    rate_burst: int = Field(100, ge=1, description="Requests a key may send at once (bucket size).")
    num_threads: int | None = Field(
        None, gt=0, description="Inference threads per worker; null: the cores / workers."
    )
    watch_aliases_s: float | None = Field(
        5.0,
        gt=0,
        description="Check served aliases this often and swap to their new version; null: never.",
    )
    drain_timeout_s: float = Field(
        30.0, gt=0, description="On SIGTERM, wait this long for in-flight requests."
    )
    access_log: bool = Field(True, description="Log one line per request (uvicorn's access log).")


class QuantizeConfig(Section):
    """Options of the ONNX export and the int8 methods of `modelyard compress`."""

    opset: int = Field(17, ge=17, le=23, description="ONNX opset of the exported graph.")
    parity_tolerance: float = Field(
        1e-3, gt=0, description="Largest allowed max-abs logit gap between ONNX fp32 and PyTorch."
    )
    parity_samples: int = Field(
        32, ge=1, description="Test texts compared between ONNX fp32 and PyTorch."
    )
    calibration_samples: int = Field(
        256, ge=1, description="Training texts that calibrate static int8 activations."
    )
    per_channel: bool = Field(
        True,
        description="int8 (ONNX): one weight scale per output channel (usually more accurate).",
    )


class PruneConfig(Section):
    """Options of the pruning methods of `modelyard compress`."""

    scope: Literal["global", "layer"] = Field(
        "global",
        description="Magnitude pruning: one threshold over all layers, or the same sparsity per layer.",
    )
    importance_samples: int = Field(
        256, ge=1, description="Training texts that score heads and neurons for structured pruning."
    )
    recovery_steps: int = Field(100, ge=0, description="Fine-tuning steps after pruning (0: none).")
    recovery_lr: float = Field(2e-5, gt=0, lt=1, description="Learning rate of the recovery steps.")


class DistillConfig(Section):
    """Options of `distill:N` (keep N layers of the teacher) and `distill:BACKBONE`."""

    epochs: float = Field(3, gt=0, description="Passes over the training (plus unlabelled) texts.")
    batch_size: int = Field(32, gt=0, description="Texts per optimizer step.")
    lr: float = Field(
        1e-4, gt=0, lt=1, description="Peak learning rate (warmup then linear decay)."
    )
    temperature: float = Field(2.0, gt=0, description="Softens teacher and student distributions.")
    alpha: float = Field(
        0.7,
        ge=0,
        le=1,
        description="Weight of the soft-target loss; 1 - alpha weighs the hard labels.",
    )
    hidden_weight: float = Field(
        0.0,
        ge=0,
        description="Weight of the hidden-state MSE to the teacher's layers (layer students only).",
    )
    unlabelled: Path | None = Field(
        None,
        description="Extra texts (a file with the data text column) taught by soft targets only.",
    )
    max_unlabelled: int | None = Field(
        None, gt=0, description="Use at most this many unlabelled texts (seeded sample)."
    )


class CompressConfig(Section):
    """Defaults of `modelyard compress`; command-line options override them."""

    methods: list[str] = Field(
        default_factory=lambda: [
            "onnx",
            "int8-dynamic",
            "int8-static",
            "prune-heads:0.3",
            "distill:3",
        ],
        min_length=1,
        description="Methods to run (see `modelyard compress --list`), e.g. prune-heads:0.3.",
    )
    price_per_cpu_hour: float = Field(
        0.05, ge=0, description="Dollars per CPU-hour, for the cost per million predictions."
    )
    threads: int | None = Field(
        None,
        gt=0,
        description="Threads for PyTorch and ONNX Runtime while measuring; null: all cores.",
    )
    max_accuracy_drop: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="Pick the fastest variant within this accuracy drop (a fraction).",
    )
    speed_samples: int = Field(256, ge=8, description="Test texts used for latency and throughput.")
    latency_runs: int = Field(50, ge=1, description="Batch-1 calls timed per round.")
    rounds: int = Field(
        3, ge=1, description="Timing rounds; variants are interleaved and medians reported."
    )
    isolate_memory: bool = Field(
        True,
        description="Measure each variant's memory in a fresh process (a few seconds each); "
        "false: an in-process estimate.",
    )
    quantize: QuantizeConfig = Field(default_factory=QuantizeConfig)
    prune: PruneConfig = Field(default_factory=PruneConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)


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


class Recipe(Section):
    """A whole run: data, model, training and evaluation."""

    run: RunConfig = Field(default_factory=RunConfig)
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    explain: ExplainConfig = Field(default_factory=ExplainConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    compress: CompressConfig = Field(default_factory=CompressConfig)
    privacy: PrivacyConfig | None = Field(
        None, description="Differentially private training (DP-SGD); null: not private."
    )
    audit: AuditConfig = Field(default_factory=AuditConfig, description="The label audit.")

    @model_validator(mode="after")
    def _privacy_fits_training(self) -> Recipe:
        if self.privacy is not None:
            from modelyard.privacy.dp import check_private_training

            check_private_training(self.train)
        return self

    @model_validator(mode="after")
    def _self_training_is_not_private(self) -> Recipe:
        if self.privacy is not None and self.train.self_training is not None:
            # pseudo-labelled rounds would spend privacy budget the accountant never sees
            raise ValueError("train.self_training cannot be combined with privacy; drop one")
        return self

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
        # an optional section (`X | None`) lists the keys of X
        models = [
            a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        annotation = models[0] if len(models) == 1 else annotation
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
    train = raw.get("train")
    selftrain = train.get("self_training") if isinstance(train, dict) else None
    unlabelled = selftrain.get("unlabelled") if isinstance(selftrain, dict) else None
    if isinstance(unlabelled, str) and not Path(unlabelled).is_absolute():
        selftrain["unlabelled"] = str(base / unlabelled)  # type: ignore[index]
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
