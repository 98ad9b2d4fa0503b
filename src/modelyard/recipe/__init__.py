"""The typed recipe: one YAML file describes a run; dotted overrides change it.

Every section is a closed pydantic model (unknown keys are errors) and every problem in
a recipe is reported at once, each with its key path, the value given and what is allowed.
The sections live in data, training and delivery; the whole recipe in root; reading
files and overrides in loading.
"""

from __future__ import annotations

from modelyard.recipe.base import (
    Section,
)
from modelyard.recipe.data import (
    AUGMENT_OPS,
    PII_TYPES,
    AuditConfig,
    AugmentConfig,
    AugmentOp,
    DataConfig,
    PiiConfig,
    PiiType,
    RunConfig,
    SelfTrainingConfig,
    SplitConfig,
)
from modelyard.recipe.delivery import (
    CompressConfig,
    DistillConfig,
    EvaluateConfig,
    ExplainConfig,
    PruneConfig,
    QuantizeConfig,
    ServeConfig,
)
from modelyard.recipe.federated import FederatedConfig
from modelyard.recipe.generation import GenerationConfig
from modelyard.recipe.loading import (
    build_recipe,
    deep_merge,
    format_validation_error,
    load_recipe,
    parse_overrides,
)
from modelyard.recipe.root import (
    Recipe,
)
from modelyard.recipe.tasks import BACKBONE_KINDS, TASK_KINDS, TASKS, backbone_kind
from modelyard.recipe.tracking import TrackingConfig
from modelyard.recipe.training import (
    DEFAULT_BACKBONE,
    DEFAULT_MAX_LENGTH,
    AdversarialConfig,
    ContinualConfig,
    EarlyStoppingConfig,
    IA3Options,
    LoraOptions,
    MemoryConfig,
    ModelConfig,
    PrivacyConfig,
    PromptTuningOptions,
    SetFitOptions,
    TrainConfig,
)

__all__ = [
    "AUGMENT_OPS",
    "BACKBONE_KINDS",
    "DEFAULT_BACKBONE",
    "DEFAULT_MAX_LENGTH",
    "PII_TYPES",
    "TASKS",
    "TASK_KINDS",
    "AdversarialConfig",
    "AuditConfig",
    "AugmentConfig",
    "AugmentOp",
    "CompressConfig",
    "ContinualConfig",
    "DataConfig",
    "DistillConfig",
    "EarlyStoppingConfig",
    "EvaluateConfig",
    "ExplainConfig",
    "FederatedConfig",
    "GenerationConfig",
    "IA3Options",
    "LoraOptions",
    "MemoryConfig",
    "ModelConfig",
    "PiiConfig",
    "PiiType",
    "PrivacyConfig",
    "PromptTuningOptions",
    "PruneConfig",
    "QuantizeConfig",
    "Recipe",
    "RunConfig",
    "Section",
    "SelfTrainingConfig",
    "ServeConfig",
    "SetFitOptions",
    "SplitConfig",
    "TrackingConfig",
    "TrainConfig",
    "backbone_kind",
    "build_recipe",
    "deep_merge",
    "format_validation_error",
    "load_recipe",
    "parse_overrides",
]
