"""FGM and PGD on the embedding output: perturbation size, extra gradient, eval untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import modelyard
from modelyard.methods.adversarial import EmbeddingAttack, _project, adversarial_hook
from modelyard.models import build_classifier, load_tokenizer
from modelyard.recipe import AdversarialConfig, build_recipe
from tests.methods.conftest import with_train


@pytest.fixture()
def setup(tiny_backbone: Path) -> tuple[Any, dict[str, torch.Tensor], torch.Tensor]:
    torch.manual_seed(0)
    model = build_classifier(tiny_backbone, ["a", "b", "c"])
    tok = load_tokenizer(tiny_backbone)
    batch = dict(tok(["refund my card twice", "parcel late"], padding=True, return_tensors="pt"))
    return model, batch, torch.tensor([0, 1])


def _loss_fn(model: Any, batch: dict, labels: torch.Tensor) -> Any:
    return lambda: torch.nn.functional.cross_entropy(model(**batch).logits, labels)


def test_eval_passes_are_not_perturbed(setup: tuple) -> None:
    model, batch, _ = setup
    model.eval()
    before = model(**batch).logits
    hook = adversarial_hook(model, AdversarialConfig(method="fgm", epsilon=5.0))
    hook.delta = None
    assert torch.equal(model(**batch).logits, before)
    hook.remove()


@pytest.mark.parametrize("method", ["fgm", "pgd"])
def test_attack_adds_the_gradient_of_a_perturbed_pass(setup: tuple, method: str) -> None:
    model, batch, labels = setup
    # dropout off, so the only difference between passes is the perturbation
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    compute = _loss_fn(model, batch, labels)
    compute().backward()
    clean = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    hook = EmbeddingAttack(
        model.get_input_embeddings(), AdversarialConfig(method=method, epsilon=0.5)
    )
    seen: list[torch.Tensor] = []
    original = hook._forward_hook

    def spy(module: Any, args: Any, output: torch.Tensor) -> Any:
        if hook.delta is not None:
            seen.append(hook.delta.detach().clone())
        return original(module, args, output)

    hook.handle.remove()
    hook.handle = model.get_input_embeddings().register_forward_hook(spy)
    loss = compute()
    loss.backward()
    assert hook.probe is not None and hook.probe.grad is not None
    hook.after_backward(model, compute, accum=1)
    assert hook.delta is None and hook.probe is None
    norms = seen[-1].flatten(1).norm(dim=1)
    if method == "fgm":
        assert torch.allclose(norms, torch.full_like(norms, 0.5), atol=1e-4)
    else:
        assert bool((norms <= 0.5 + 1e-5).all())
    assert len(seen) == (1 if method == "fgm" else 3)
    total = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    # reference: the gradient of the batch with that perturbation added by hand
    hook.remove()
    model.zero_grad()
    handle = model.get_input_embeddings().register_forward_hook(lambda m, a, out: out + seen[-1])
    compute().backward()
    handle.remove()
    for name, grad in clean.items():
        assert torch.allclose(total[name], grad + model.get_parameter(name).grad, atol=1e-6), name
    assert not torch.allclose(
        model.get_parameter("classifier.weight").grad, clean["classifier.weight"]
    )


def test_projection_keeps_each_example_in_the_ball() -> None:
    torch.manual_seed(0)
    delta = torch.randn(4, 5, 3) * torch.tensor([0.01, 0.05, 10, 100]).view(4, 1, 1)
    projected = _project(delta, 1.0)
    assert torch.equal(projected[:2], delta[:2])  # inside the ball: untouched
    norms = projected[2:].flatten(1).norm(dim=1)
    assert torch.allclose(norms, torch.ones(2))
    assert torch.allclose(projected[2] / norms[0], delta[2] / delta[2].norm())


def test_fgm_training_runs_through_the_loop(method_recipe: dict) -> None:
    recipe = with_train(
        method_recipe, adversarial={"method": "pgd", "epsilon": 0.5, "steps": 2}, max_steps=3
    )
    result = modelyard.train(build_recipe(recipe), progress=False)
    assert result.training["steps"] == 3 and result.metrics["n"] == 30


def test_adversarial_with_setfit_is_refused() -> None:
    from modelyard.errors import RecipeError

    with pytest.raises(
        RecipeError, match="train.adversarial needs a method trained by the fine-tuning loop"
    ):
        build_recipe({"data": {"path": "x.csv"}, "train": {"method": "setfit", "adversarial": {}}})
