"""Contracts of training methods (`modelyard.methods.TRAINING_METHODS`) and their recipe specs
(`modelyard.recipe.methods.METHOD_SPECS`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modelyard.data import load_data
from modelyard.evaluation import classification_metrics
from modelyard.methods import TRAINING_METHODS, Method
from modelyard.pipeline import run_training
from modelyard.recipe import Recipe, build_recipe
from modelyard.recipe.methods import CLASSIFIER, EMBEDDING, METHOD_SPECS, MethodSpec
from modelyard.recipe.training import TrainConfig
from modelyard.registry.kinds import ARTIFACT_KINDS
from modelyard.registry.manifest import read_manifest
from modelyard.testing.backend_checks import check_artifact_kind
from modelyard.testing.contract import Contract


def check_method_spec(spec: MethodSpec | str, method: Method | None = None) -> None:
    """Check that a method's recipe spec and its registered Method agree.

    The spec is the one declared in METHOD_SPECS; a Method of that name is registered
    (or `method` is given) with the same summary, kind, option section and own-procedure
    flag; the kind is a known artifact kind; the option section is a field of the `train`
    recipe section. Returns None; raises AssertionError naming the broken clause.
    """
    spec = METHOD_SPECS[spec] if isinstance(spec, str) else spec
    c = Contract("training method spec", spec.name)
    c.require(
        METHOD_SPECS.get(spec.name) == spec,
        "is the spec declared in METHOD_SPECS",
        f"declared: {METHOD_SPECS.get(spec.name)}",
    )
    if method is None:
        c.require(
            spec.name in TRAINING_METHODS,
            "has a Method registered under its name in TRAINING_METHODS",
        )
        method = TRAINING_METHODS.get(spec.name)
    for field in ("name", "summary", "kind", "options"):
        mine, theirs = getattr(spec, field), getattr(method, field)
        c.require(
            mine == theirs, f"spec and Method agree on {field}", f"spec {mine!r}, Method {theirs!r}"
        )
    c.require(
        spec.own_procedure == (method.fit is not None),
        "own_procedure is set exactly when the Method brings its own fit",
    )
    c.require(
        spec.kind in ARTIFACT_KINDS,
        "saves a known artifact kind",
        f"'{spec.kind}' is not one of {sorted(ARTIFACT_KINDS)}",
    )
    c.require(
        spec.options is None or spec.options in TrainConfig.model_fields,
        "its option section is a field of the train recipe section",
        f"train.{spec.options} does not exist, so no recipe can hold its options",
    )


def check_method(
    method: Method | str,
    recipe: dict[str, Any],
    *,
    options: dict[str, Any] | None = None,
    max_steps: int = 2,
    atol: float = 1e-5,
) -> Path:
    """Check a registered training method end to end on a small recipe.

    `recipe` is a recipe dict (a tiny backbone, single-text data with a test or dev split);
    its `train` section gets `method`, `max_steps` and the `options` keys. The method
    trains, the run's manifest names the kind its spec declares and the method, the
    trainable share is in (0, 100] and weights were written; reloaded through
    `load_backend`, the run predicts on the held-out split what the trained model did
    before saving (same log loss within 1e-4, same confusion matrix); and the artifact
    passes `check_artifact_kind`. Returns the run directory; raises AssertionError naming
    the broken clause, ValueError when the recipe's data has text pairs.
    """
    name = method if isinstance(method, str) else method.name
    c = Contract("training method", name)
    c.require(
        name in TRAINING_METHODS,
        "is registered in TRAINING_METHODS (with register_training_method)",
    )
    if not isinstance(method, str):
        c.require(TRAINING_METHODS.get(name) is method, "the Method given is the one registered")
    check_method_spec(name)
    train = {**recipe.get("train", {}), "method": name, "max_steps": max_steps, **(options or {})}
    built = build_recipe({**recipe, "train": train})
    result = run_training(built, progress=False)
    manifest = read_manifest(result.run_dir)
    kind = _expected_kind(built, METHOD_SPECS[name])
    c.require(
        manifest.get("kind") == kind,
        "the run is saved as the kind its spec declares",
        f"manifest kind {manifest.get('kind')!r}, expected {kind!r}",
    )
    c.require(manifest.get("method") == name, "the run's manifest names the method")
    training = result.training
    c.require(0 < training["trainable_pct"] <= 100, "some, at most all, parameters train")
    c.require(training["weights_bytes"] > 0, "the run holds weights")
    backend = check_artifact_kind(kind, result.run_dir, atol=atol)
    _check_reload(c, built, backend, result.metrics)
    return Path(result.run_dir)


def _expected_kind(recipe: Recipe, spec: MethodSpec) -> str:
    # a classifier-saving method on a mean-pooled model saves an embedding classifier
    # (modelyard.methods.session.MethodSession.kind)
    if spec.kind == CLASSIFIER and recipe.model.pooling == "mean":
        return EMBEDDING
    return spec.kind


def _check_reload(c: Contract, recipe: Recipe, backend: Any, before: dict[str, Any]) -> None:
    bundle = load_data(recipe.data, recipe.run.seed)
    split = bundle.test if before["evaluated_on"] == "test" else bundle.dev
    if split.pairs is not None:
        raise ValueError("check_method needs single-text data; this recipe has text pairs")
    probs, _ = backend.predict_proba(split.texts)
    after = classification_metrics(split.labels, np.asarray(probs), bundle.labels)
    c.require(
        np.isclose(after["log_loss"], before["log_loss"], rtol=1e-4)
        and after["confusion_matrix"] == before["confusion_matrix"],
        "predicts after reloading what it predicted before saving",
        f"log loss {before['log_loss']:.6f} before saving, {after['log_loss']:.6f} reloaded; "
        f"confusion {before['confusion_matrix']} before, {after['confusion_matrix']} reloaded",
    )
