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

from modelyard._deprecated import renamed
from modelyard.plugins import Registry
from modelyard.recipe.methods import (
    ADAPTER,
    CLASSIFIER,
    EMBEDDING,
    METHOD_SPECS,
    MethodSpec,
    declare_method,
)

if TYPE_CHECKING:
    from modelyard.recipe import Recipe

# the artifact kinds and the option table are the recipe's plain data (one place for each)
__all__ = [
    "ADAPTER",
    "CLASSIFIER",
    "EMBEDDING",
    "TRAINING_METHODS",
    "Method",
    "builtin",
    "register_training_method",
]


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


TRAINING_METHODS: Registry[Method] = Registry("training method")


def register_training_method(method: Method) -> Method:
    """Add `method` to TRAINING_METHODS under its name and return it.

    A built-in method must agree with its spec in `modelyard.recipe.methods`; a plug-in's spec
    is declared there from the method's own fields, so recipes can name it.
    Raises ValueError if the name is taken or the method disagrees with its declared spec.
    """
    spec = MethodSpec(
        method.name,
        method.summary,
        method.kind,
        method.options,
        own_procedure=method.fit is not None,
    )
    declared = METHOD_SPECS.get(method.name)
    if declared is None:
        declare_method(spec)
    elif declared != spec:
        raise ValueError(f"training method '{method.name}' disagrees with its spec {declared}")
    TRAINING_METHODS.add(method.name, method)
    return method


def builtin(
    name: str,
    prepare: Callable[[Any, Recipe], Any],
    build: Callable[[Path, list[str], Recipe], Any] | None = None,
    fit: Callable[..., Any] | None = None,
) -> Method:
    """Return the Method `name` whose summary, kind and options come from its recipe spec."""
    spec = METHOD_SPECS[name]
    return Method(name, spec.summary, prepare, spec.kind, spec.options, build, fit)


__getattr__ = renamed(
    "modelyard.methods.catalog",
    {"METHODS": "TRAINING_METHODS", "register_method": "register_training_method"},
    globals(),
)
