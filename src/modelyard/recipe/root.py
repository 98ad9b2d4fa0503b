"""The whole recipe: every section of a run."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import Field, model_validator

from modelyard.recipe.base import Section
from modelyard.recipe.data import AuditConfig, DataConfig, RunConfig
from modelyard.recipe.delivery import CompressConfig, EvaluateConfig, ExplainConfig, ServeConfig
from modelyard.recipe.federated import FederatedConfig
from modelyard.recipe.generation import GenerationConfig
from modelyard.recipe.rules import check_private_training
from modelyard.recipe.tasks import HEAD_TASKS, LM_TASKS, TASK_METHODS, Task, task_backbone_problem
from modelyard.recipe.tracking import TrackingConfig
from modelyard.recipe.training import ModelConfig, PrivacyConfig, TrainConfig

# training methods a language-model task can use (the others need a classification head)
LM_METHODS = TASK_METHODS["generation"]


class Recipe(Section):
    """A whole run: data, model, training and evaluation."""

    task: Task = Field(
        "classification",
        description="classification (an encoder with a label head), language-modeling (continued "
        "pre-training: causal LM on decoders, masked LM on encoders) or generation "
        "(instruction fine-tuning of a decoder on chat data) or token-classification (a tag "
        "for every word, such as BIO/BIOES named entities, from JSONL or CoNLL files), "
        "multi-label (any number of labels a text, a sigmoid per label) or regression (a number "
        "a text).",
    )
    run: RunConfig = Field(default_factory=RunConfig, description="Run name, folder and seed.")
    data: DataConfig = Field(description="The labelled data and how it is read.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Backbone and head.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="How the model trains.")
    evaluate: EvaluateConfig = Field(
        default_factory=EvaluateConfig, description="What evaluation measures."
    )
    explain: ExplainConfig = Field(
        default_factory=ExplainConfig, description="Defaults of `modelyard explain`."
    )
    serve: ServeConfig = Field(
        default_factory=ServeConfig, description="Defaults of `modelyard serve`."
    )
    compress: CompressConfig = Field(
        default_factory=CompressConfig, description="Defaults of `modelyard compress`."
    )
    privacy: PrivacyConfig | None = Field(
        None, description="Differentially private training (DP-SGD); null: not private."
    )
    audit: AuditConfig = Field(default_factory=AuditConfig, description="The label audit.")
    tracking: TrackingConfig = Field(
        default_factory=TrackingConfig,
        description="Experiment tracking: MLflow beyond the run folder's own records.",
    )
    generation: GenerationConfig = Field(
        default_factory=GenerationConfig,
        description="Language-model data formats, packing and evaluation (tasks other than "
        "classification).",
    )

    @model_validator(mode="before")
    @classmethod
    def _generation_defaults(cls, data: object) -> object:
        # token classification reads `tokens` and `tags`; language models early-stop on the dev loss; instruction fine-tuning trains LoRA
        # adapters on the packaged chat model unless the recipe names a method and a backbone
        if isinstance(data, dict) and data.get("task") == "token-classification":
            # length-grouped in windows of 2 batches (each the shorter or longer half of 32
            # random sentences): windows of 8 or 50 batches (all headlines, or all long prose)
            # cost CoNLL-2003 entity F1 0.011-0.015 against random ones (docs/tasks.md)
            train = dict(data["train"]) if isinstance(data.get("train"), dict) else {}
            train.setdefault("group_by_length", True)
            train.setdefault("group_window", 2)
            # the word-embedding table stays as pre-trained: CoNLL-2003 entity F1 unchanged
            # over 3 seeds, training steps ~1.2x faster on the CPU (docs/tasks.md)
            if train.get("method", "full") == "full":
                train.setdefault("freeze_word_embeddings", True)
            data = {**data, "train": train}
            # a JSONL file of tagged sentences holds `tokens` and `tags` unless the data says otherwise
            section = dict(data["data"]) if isinstance(data.get("data"), dict) else None
            if section is None:
                return data
            section.setdefault("text_column", "tokens")
            section.setdefault("label_column", "tags")
            return {**data, "data": section}
        if isinstance(data, dict) and data.get("task") == "regression":
            # a regression head has no accuracy: it early-stops on the dev loss (MSE)
            train = dict(data["train"]) if isinstance(data.get("train"), dict) else {}
            stopping = train.get("early_stopping")
            stopping = dict(stopping) if isinstance(stopping, dict) else {}
            stopping.setdefault("metric", "loss")
            return {**data, "train": {**train, "early_stopping": stopping}}
        if not isinstance(data, dict) or data.get("task") not in LM_TASKS:
            return data
        train = dict(data["train"]) if isinstance(data.get("train"), dict) else {}
        stopping = train.get("early_stopping")
        stopping = dict(stopping) if isinstance(stopping, dict) else {}
        stopping.setdefault("metric", "loss")
        train["early_stopping"] = stopping
        model = dict(data["model"]) if isinstance(data.get("model"), dict) else {}
        if data.get("task") == "generation":
            train.setdefault("method", "lora")
            model.setdefault("backbone", "smollm2-135m")
        return {**data, "train": train, "model": model}

    @model_validator(mode="after")
    def _task_fits_backbone(self) -> Recipe:
        problem = task_backbone_problem(self.task, self.model.backbone)
        if problem is not None:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _frozen_embeddings_fit(self) -> Recipe:
        if not self.train.freeze_word_embeddings:
            return self
        if self.task != "token-classification" or self.train.method != "full":
            raise ValueError(
                "train.freeze_word_embeddings is for task token-classification with "
                f"train.method full; got task '{self.task}', method '{self.train.method}'"
            )
        return self

    @model_validator(mode="after")
    def _language_model_settings(self) -> Recipe:
        if self.task == "classification":
            return self
        problems = []
        methods = TASK_METHODS[self.task]
        if self.train.method not in methods:
            problems.append(
                f"task '{self.task}' trains with train.method {', '.join(methods)}; "
                f"got '{self.train.method}'"
            )
        if self.task in (*LM_TASKS, "regression") and self.train.early_stopping.metric != "loss":
            problems.append(
                f"task '{self.task}' early-stops on the dev loss; set "
                "train.early_stopping.metric loss (or leave it out)"
            )
        for name, value in (
            ("privacy", self.privacy),
            ("train.adversarial", self.train.adversarial),
            ("train.continual", self.train.continual),
            ("train.self_training", self.train.self_training),
            ("data.augment", self.data.augment),
        ):
            if value is not None:
                problems.append(
                    f"{name} is for classification runs; remove it for task '{self.task}'"
                )
        if self.task in HEAD_TASKS:
            problems += _head_task_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    federated: FederatedConfig | None = Field(
        None, description="Federated training (`modelyard federate`); null: not federated."
    )

    @model_validator(mode="after")
    def _federated_sends_adapters(self) -> Recipe:
        fed = self.federated
        if fed is not None and fed.lora_only and self.train.method != "lora":
            raise ValueError(
                f"federated.lora_only sends LoRA adapters but train.method is "
                f"{self.train.method!r}; set train.method lora or federated.lora_only false"
            )
        return self

    @model_validator(mode="after")
    def _privacy_fits_training(self) -> Recipe:
        if self.privacy is not None:
            check_private_training(self.train)
        return self

    @model_validator(mode="after")
    def _self_training_is_not_private(self) -> Recipe:
        if self.privacy is not None and self.train.self_training is not None:
            # pseudo-labelled rounds would spend privacy budget the accountant never sees
            raise ValueError("train.self_training cannot be combined with privacy; drop one")
        return self

    @model_validator(mode="after")
    def _pooling_fits_method(self) -> Recipe:
        if self.model.pooling != "mean":
            if self.model.head_init is not None:
                raise ValueError(
                    "model.head_init needs model.pooling mean (it sets the head of a mean-pooled "
                    "embedding classifier); set model.pooling mean or drop model.head_init"
                )
            return self
        if self.train.method == "prompt-tuning":
            raise ValueError(
                "model.pooling mean cannot be combined with train.method prompt-tuning (its "
                "virtual tokens need the backbone's own classifier); use lora or model.pooling cls"
            )
        if self.train.memory.fisher or self.train.continual is not None:
            raise ValueError(
                "train.memory.fisher and train.continual need a classifier with the backbone's "
                "own head; set model.pooling cls or drop them"
            )
        return self

    def run_dir(self) -> Path:
        """Return the directory this run writes to."""
        return self.run.output_dir / self.run.name

    def to_yaml(self) -> str:
        """Return the resolved recipe as YAML text (paths as strings)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _head_task_problems(recipe: Recipe) -> list[str]:
    """Return what a token-classification, multi-label or regression recipe sets that only
    classification runs use."""
    problems = []
    if recipe.model.pooling != "cls":
        # every token gets its own tag: there is no sentence embedding to pool
        problems.append(
            "model.pooling and model.head_init are for classification runs; remove them for "
            f"task '{recipe.task}'"
        )
    for name, value in (
        ("federated", recipe.federated),
        ("data.text_pair_column", recipe.data.text_pair_column),
        ("data.redact_pii", recipe.data.redact_pii or None),
    ):
        if value is not None:
            problems.append(
                f"{name} is for classification runs; remove it for task '{recipe.task}'"
            )
    return problems
