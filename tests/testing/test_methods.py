"""The method-spec sweep, and the method and method-spec checks failing on broken plug-ins.
(The training-method sweep itself is tests/methods/test_contract.py.)"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from modelyard.methods import TRAINING_METHODS, Method
from modelyard.recipe import Recipe
from modelyard.recipe.methods import METHOD_SPECS, MethodSpec
from modelyard.testing import BoundCheck, check_method, check_method_spec, parametrize_with_checks


@parametrize_with_checks("method-spec")
def test_method_spec_keeps_its_contract(entry: str, check: BoundCheck) -> None:
    check()


def _register(monkeypatch: pytest.MonkeyPatch, method: Method, spec: MethodSpec) -> None:
    # registered for this test only: a registry refuses to register a name twice
    monkeypatch.setitem(TRAINING_METHODS._items, method.name, method)
    monkeypatch.setitem(METHOD_SPECS, spec.name, spec)


def test_a_method_disagreeing_with_its_spec_fails() -> None:
    lora = TRAINING_METHODS.get("lora")
    with pytest.raises(AssertionError, match="'lora' breaks .*agree on kind"):
        check_method_spec("lora", dataclasses.replace(lora, kind="classifier"))


def test_a_spec_whose_options_no_recipe_can_hold_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = MethodSpec("galore", "low-rank gradients", options="galore")
    method = Method("galore", spec.summary, lambda model, recipe: model, options="galore")
    _register(monkeypatch, method, spec)
    with pytest.raises(AssertionError, match="option section is a field of the train recipe"):
        check_method_spec("galore")


def test_a_spec_saving_an_unknown_kind_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = MethodSpec("ggml", "quantized training", kind="ggml-classifier")
    _register(monkeypatch, Method("ggml", spec.summary, lambda m, r: m, "ggml-classifier"), spec)
    with pytest.raises(AssertionError, match="saves a known artifact kind"):
        check_method_spec("ggml")


def _scale_logits(model: Any, recipe: Recipe) -> Any:
    # a hook is not saved with the weights: the reloaded model answers differently
    def hook(module: Any, args: Any, output: Any) -> Any:
        output.logits = output.logits * 5.0
        return output

    model.register_forward_hook(hook)
    return model


def test_a_method_whose_saved_model_differs_from_the_trained_one_fails(
    monkeypatch: pytest.MonkeyPatch, base_recipe: dict[str, Any]
) -> None:
    spec = MethodSpec("hooked", "full fine-tuning through a hook")
    _register(monkeypatch, Method("hooked", spec.summary, _scale_logits), spec)
    with pytest.raises(
        AssertionError, match="'hooked' breaks .*predicts after reloading what it predicted"
    ):
        check_method("hooked", base_recipe)
