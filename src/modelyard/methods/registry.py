"""The registry of training methods, and the check that a recipe's options fit its method.

A method turns a freshly built classifier into the model to train (freezing layers or
wrapping it in adapters), names the kind of artifact it saves, and may bring its own
training procedure instead of the fine-tuning loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.plugins import Registry

if TYPE_CHECKING:
    from modelyard.recipe import Recipe, TrainConfig

CLASSIFIER = "classifier"
ADAPTER = "adapter-classifier"
EMBEDDING = "embedding-classifier"

# recipe sections under `train` that hold one method's options
OPTION_SECTIONS = {
    "lora": "lora",
    "ia3": "ia3",
    "prompt_tuning": "prompt-tuning",
    "setfit": "setfit",
}


@dataclass(frozen=True)
class Method:
    """One training method.

    `prepare(model, recipe)` returns the model to train from a freshly built classifier;
    `build(folder, labels, recipe)`, when set, builds that model instead of the default
    classifier; `fit`, when set, replaces the fine-tuning loop (it is called with the model,
    the recipe, the train and dev splits and the run directory, and returns a TrainResult).
    """

    name: str
    summary: str
    prepare: Callable[[Any, Recipe], Any]
    kind: str = CLASSIFIER
    options: str | None = None
    build: Callable[[Path, list[str], Recipe], Any] | None = None
    fit: Callable[..., Any] | None = None


METHODS: Registry[Method] = Registry("training method")


def register_method(method: Method) -> Method:
    """Add `method` to METHODS under its name and return it; raise ValueError if the name is taken."""
    METHODS.add(method.name, method)
    return method


def _load_builtin_methods() -> None:
    # the built-in methods register themselves on import
    import modelyard.methods  # noqa: F401


def check_method_options(cfg: TrainConfig) -> None:
    """Raise ValueError when `cfg.method` is unknown or the options do not fit the method."""
    _load_builtin_methods()
    if cfg.method not in METHODS:
        raise ValueError(
            f"unknown training method '{cfg.method}'; available: {', '.join(METHODS.names())}"
        )
    method = METHODS.get(cfg.method)
    _check_sections(cfg)
    _check_combinations(cfg, method)


def _check_sections(cfg: TrainConfig) -> None:
    for section, owner in OPTION_SECTIONS.items():
        if getattr(cfg, section) is not None and owner != cfg.method:
            raise ValueError(
                f"train.{section} holds options of method '{owner}' but train.method is "
                f"'{cfg.method}'; set train.method={owner} or remove train.{section}"
            )
    ia3 = cfg.ia3
    if ia3 is not None and ia3.feedforward_modules and ia3.target_modules is not None:
        extra = sorted(set(ia3.feedforward_modules) - set(ia3.target_modules))
        if extra:
            raise ValueError(
                "train.ia3.feedforward_modules must be a subset of target_modules; "
                f"not targets: {', '.join(extra)}"
            )


def _check_combinations(cfg: TrainConfig, method: Method) -> None:
    if cfg.adversarial is not None and method.fit is not None:
        raise ValueError(
            f"train.adversarial needs a method trained by the fine-tuning loop; '{cfg.method}' "
            "has its own procedure. Remove train.adversarial or pick another method."
        )
    if method.kind != CLASSIFIER and (cfg.memory.fisher or cfg.continual is not None):
        raise ValueError(
            "train.memory.fisher and train.continual need a method that saves a whole classifier "
            f"(full, bitfit, linear-probe); '{cfg.method}' saves a '{method.kind}'"
        )
