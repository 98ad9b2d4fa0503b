"""DP-SGD: Opacus's accountant as the source of truth, per-example gradients, the policy, runs."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

import modelyard
from modelyard.errors import RecipeError
from modelyard.privacy.dp import (
    DPPolicy,
    auto_delta,
    calibrate_noise,
    epsilon_spent,
    freeze_broadcast_embeddings,
    resolve_delta,
)
from modelyard.recipe import PrivacyConfig, build_recipe

pytest.importorskip("opacus")


def test_golden_rdp_epsilon() -> None:
    # Opacus's RDP accountant: sigma 1.5, q 0.04, 2,250 steps, delta 1e-5
    assert epsilon_spent(1.5, 0.04, 2250, 1e-5, "rdp") == pytest.approx(7.329, abs=5e-4)


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_calibrated_noise_spends_just_under_the_target(accountant: str) -> None:
    sigma = calibrate_noise(3.0, 1e-5, 0.01, 120, accountant)
    spent = epsilon_spent(sigma, 0.01, 120, 1e-5, accountant)
    assert 3.0 - 0.02 <= spent <= 3.0 + 1e-9
    # a smaller budget needs more noise
    assert calibrate_noise(1.0, 1e-5, 0.01, 120, accountant) > sigma


def test_unreachable_budget_is_a_recipe_error() -> None:
    with pytest.raises(RecipeError, match="cannot be reached"):
        calibrate_noise(1e-6, 1e-9, 0.9, 100_000, "rdp")


@pytest.mark.parametrize("n", [1, 7, 99, 100, 8000, 67_349])
def test_auto_delta_is_a_power_of_ten_well_below_one_over_n(n: int) -> None:
    delta = auto_delta(n)
    assert delta <= 0.1 / n < 10 * delta
    assert np.log10(delta) == pytest.approx(round(np.log10(delta)))


def test_given_delta_must_be_below_one_over_n() -> None:
    assert resolve_delta(PrivacyConfig(target_epsilon=1, delta=1e-6), 1000) == 1e-6
    with pytest.raises(RecipeError, match=r"not below 1/N = 0\.001.*delta: auto"):
        resolve_delta(PrivacyConfig(target_epsilon=1, delta=0.01), 1000)


def _recipe(**sections: object) -> dict:
    return {"data": {"path": "data.csv"}, **sections}


def test_recipe_section_is_validated() -> None:
    recipe = build_recipe(_recipe(privacy={"target_epsilon": 8}))
    assert recipe.privacy is not None
    assert (recipe.privacy.delta, recipe.privacy.accountant) == ("auto", "prv")
    with pytest.raises(RecipeError) as info:
        build_recipe(_recipe(privacy={"target_epsilon": 0, "delta": 2.0, "accountent": "rdp"}))
    text = str(info.value)
    assert "privacy.target_epsilon" in text and "privacy.accountent: unknown key" in text
    assert "delta" in text


def test_options_dp_cannot_honour_are_all_named() -> None:
    with pytest.raises(RecipeError) as info:
        build_recipe(
            _recipe(
                privacy={"target_epsilon": 8},
                train={"grad_accum": 2, "gradient_checkpointing": True},
            )
        )
    assert "train.grad_accum must be 1" in str(info.value)
    assert "train.gradient_checkpointing" in str(info.value)
    with pytest.raises(RecipeError, match="train.method setfit has its own training procedure"):
        build_recipe(_recipe(privacy={"target_epsilon": 8}, train={"method": "setfit"}))
    with pytest.raises(RecipeError, match="train.adversarial adds a second backward pass"):
        build_recipe(_recipe(privacy={"target_epsilon": 8}, train={"adversarial": {}}))


def tiny_classifier(seed: int = 0) -> BertForSequenceClassification:
    config = BertConfig(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        num_labels=3,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(seed)
    return BertForSequenceClassification(config)


def _batch() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 40, (4, 9), generator=gen)
    mask = torch.ones_like(ids)
    for row, length in enumerate([9, 6, 3, 7]):
        ids[row, length:], mask[row, length:] = 0, 0
    return {"input_ids": ids, "attention_mask": mask}, torch.tensor([0, 2, 1, 2])


def _lora(model: torch.nn.Module) -> torch.nn.Module:
    from modelyard.methods.peft_methods import prepare_lora

    recipe = build_recipe(_recipe(train={"method": "lora", "lora": {"dropout": 0.0}}))
    return prepare_lora(model, recipe)


def tiny_mean_pooled(seed: int = 0) -> torch.nn.Module:
    """The tiny encoder under a mean-pooled head, whose head is random so every gradient flows."""
    from modelyard.methods.embedding import EmbeddingClassifier

    model = EmbeddingClassifier(tiny_classifier(seed).bert, 3)
    torch.nn.init.normal_(model.head.weight, std=1.0)
    return model


@pytest.mark.parametrize("method", ["full", "lora", "lora-mean"])
def test_per_example_gradients_match_one_at_a_time(method: str) -> None:
    """Opacus's per-example gradients equal each example's own gradient (opacus#820)."""
    from opacus import GradSampleModule

    pytest.importorskip("peft")
    model = tiny_mean_pooled() if method == "lora-mean" else tiny_classifier()
    model = _lora(model) if method.startswith("lora") else model
    freeze_broadcast_embeddings(model)
    model.train()
    batch, labels = _batch()
    reference = copy.deepcopy(model)
    trainable = [(n, p) for n, p in reference.named_parameters() if p.requires_grad]
    expected = []
    for i in range(len(labels)):
        reference.zero_grad()
        logits = reference(**{k: v[i : i + 1] for k, v in batch.items()}).logits
        torch.nn.functional.cross_entropy(logits, labels[i : i + 1]).backward()
        expected.append({n: p.grad.clone() for n, p in trainable})
    sampler = GradSampleModule(model, loss_reduction="mean")
    torch.nn.functional.cross_entropy(sampler(**batch).logits, labels).backward()
    got = dict(model.named_parameters())
    assert any("lora_A" in n for n, _ in trainable) == method.startswith("lora")
    for name, _ in trainable:
        for i in range(len(labels)):
            torch.testing.assert_close(
                got[name].grad_sample[i], expected[i][name], rtol=1e-4, atol=1e-6
            )


def _wrapped(policy: DPPolicy, model: torch.nn.Module, lr: float = 0.1) -> torch.optim.Optimizer:
    policy.prepare(model)
    params = [p for p in model.parameters() if p.requires_grad]
    return policy.wrap_optimizer(model, torch.optim.SGD(params, lr=lr), total_steps=50)


def test_dp_step_clips_each_example_then_averages(monkeypatch: pytest.MonkeyPatch) -> None:
    # no noise: the update is -lr times the mean of per-example gradients clipped to C
    monkeypatch.setattr("modelyard.privacy.dp.calibrate_noise", lambda *a: 0.0)
    model = tiny_classifier()
    reference = copy.deepcopy(model)
    freeze_broadcast_embeddings(reference)
    policy = DPPolicy(PrivacyConfig(target_epsilon=8, max_grad_norm=0.05), 400, 4, seed=0)
    optimizer = _wrapped(policy, model)
    batch, labels = _batch()
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    torch.nn.functional.cross_entropy(model(**batch).logits, labels).backward()
    optimizer.step()
    clipped = {n: torch.zeros_like(p) for n, p in before.items()}
    for i in range(len(labels)):
        reference.zero_grad()
        logits = reference(**{k: v[i : i + 1] for k, v in batch.items()}).logits
        torch.nn.functional.cross_entropy(logits, labels[i : i + 1]).backward()
        grads = {n: p.grad for n, p in reference.named_parameters() if n in before}
        norm = torch.sqrt(sum((g**2).sum() for g in grads.values()))
        assert norm > 0.05  # so clipping is exercised
        for n, g in grads.items():
            clipped[n] += g * (0.05 / (norm + 1e-6)) / len(labels)
    for n, p in model.named_parameters():
        if n in before:
            torch.testing.assert_close(
                before[n] - p.detach(), 0.1 * clipped[n], rtol=1e-4, atol=1e-7
            )


def test_a_batch_run_in_pieces_steps_as_one_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-example gradients of pieces (each with its own mean loss) are clipped as one batch."""
    monkeypatch.setattr("modelyard.privacy.dp.calibrate_noise", lambda *a: 0.0)
    batch, labels = _batch()
    moved = []
    for pieces in ([[0, 1, 2, 3]], [[2], [0, 3], [1]]):
        model = tiny_classifier()
        policy = DPPolicy(PrivacyConfig(target_epsilon=8, max_grad_norm=0.05), 400, 4, seed=0)
        optimizer = _wrapped(policy, model)
        before = torch.cat([p.detach().flatten() for p in model.parameters() if p.requires_grad])
        for rows in pieces:
            piece = {k: v[rows] for k, v in batch.items()}
            torch.nn.functional.cross_entropy(model(**piece).logits, labels[rows]).backward()
        optimizer.step()
        after = torch.cat([p.detach().flatten() for p in model.parameters() if p.requires_grad])
        moved.append(before - after)
    assert moved[0].abs().sum() > 0
    torch.testing.assert_close(moved[1], moved[0], rtol=1e-4, atol=1e-8)


def test_private_run_in_pieces_records_the_limit(tiny_recipe: dict) -> None:
    recipe = _dp_recipe(tiny_recipe, max_physical_batch_size=3)
    recipe["train"]["batch_size"] = 16
    record = modelyard.train(build_recipe(recipe), progress=False).training["privacy"]
    assert record["max_physical_batch_size"] == 3 and record["steps"] > 0


def test_pieces_are_length_sorted_and_cover_the_batch_once() -> None:
    from modelyard.models.encoding import Encoded
    from modelyard.trainer.loop import FineTuner

    class Limit:
        physical_batch_size = 3

    tuner = FineTuner.__new__(FineTuner)  # only the chunking is exercised
    tuner.policy = Limit()  # type: ignore[assignment]
    data = Encoded([[1] * n for n in (5, 2, 9, 4, 7, 1, 3)], None, [0] * 7, 0)
    pieces = tuner._chunks(data, np.array([6, 0, 1, 2, 3, 4, 5]))
    assert [len(p) for p in pieces] == [3, 3, 1]
    flat = np.concatenate(pieces)
    assert sorted(flat.tolist()) == list(range(7))
    lengths = [len(data.input_ids[i]) for i in flat]
    assert lengths == sorted(lengths)
    assert [len(p) for p in tuner._chunks(data, np.array([0, 1]))] == [2]


def test_empty_poisson_batch_takes_a_noise_only_step() -> None:
    model = tiny_classifier()
    policy = DPPolicy(PrivacyConfig(target_epsilon=1, accountant="rdp"), 400, 4, seed=0)
    optimizer = _wrapped(policy, model)
    params = [p for p in model.parameters() if p.requires_grad]
    before = torch.cat([p.detach().flatten() for p in params])
    optimizer.step()  # no forward pass ran: an empty batch
    moved = (torch.cat([p.detach().flatten() for p in params]) - before) / 0.1
    # pure noise: std sigma * C / expected batch size on every coordinate, mean zero
    expected_std = policy.noise_multiplier_ * 1.0 / 4
    assert moved.numel() > 5000
    assert moved.std().item() == pytest.approx(expected_std, rel=0.05)
    assert abs(moved.mean().item()) < 0.05 * expected_std


def test_poisson_batches_are_seeded_and_sample_at_rate_q() -> None:
    policy = DPPolicy(PrivacyConfig(target_epsilon=8), 2000, 50, seed=3)
    epoch0 = policy.batches(0)
    assert len(epoch0) == 40
    assert all(np.array_equal(a, b) for a, b in zip(epoch0, policy.batches(0), strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(epoch0, policy.batches(1), strict=True))
    sizes = np.array([len(b) for b in epoch0 + policy.batches(1) + policy.batches(2)])
    assert sizes.mean() == pytest.approx(50, rel=0.1) and sizes.std() > 2  # Binomial, not fixed


def test_batch_as_large_as_the_data_is_refused() -> None:
    with pytest.raises(RecipeError, match="must be below the 32 training rows"):
        DPPolicy(PrivacyConfig(target_epsilon=8), 32, 32, seed=0)


def _dp_recipe(tiny_recipe: dict, **privacy: object) -> dict:
    tiny_recipe["train"].update(epochs=2, checkpoint_every=None)
    tiny_recipe["evaluate"]["speed"] = False
    tiny_recipe["privacy"] = {"target_epsilon": 4, "accountant": "rdp", **privacy}
    return tiny_recipe


def test_private_run_records_its_budget(tiny_recipe: dict) -> None:
    result = modelyard.train(build_recipe(_dp_recipe(tiny_recipe)), progress=False)
    record = result.training["privacy"]
    assert record["epsilon"] <= 4.0 and record["steps"] == result.training["steps"] > 0
    # the record reproduces through the accountant: nothing in it is invented
    assert record["epsilon"] == pytest.approx(
        epsilon_spent(
            record["noise_multiplier"],
            record["sample_rate"],
            record["steps"],
            record["delta"],
            "rdp",
        ),
        abs=1e-3,
    )
    assert record["delta"] < 1 / record["training_rows"]
    assert "bert.embeddings.position_embeddings.weight" in record["frozen_parameters"]
    saved = json.loads((result.run_dir / "metrics.json").read_text())
    assert saved["training"]["privacy"] == record
    card = (result.run_dir / "MODEL_CARD.md").read_text()
    assert "## Privacy" in card and f"({record['epsilon']}, {record['delta']:g})" in card
    # hooks are gone: the saved run loads and predicts like any other
    assert len(modelyard.predict(result.run_dir, ["refund my invoice"])) == 1


def test_private_lora_run_with_secure_rng(tiny_recipe: dict) -> None:
    pytest.importorskip("peft")
    recipe = _dp_recipe(tiny_recipe, secure_rng=True)
    recipe["train"].update(method="lora", lr=2e-2, epochs=1)
    result = modelyard.train(build_recipe(recipe), progress=False)
    record = result.training["privacy"]
    assert record["secure_rng"] is True and record["frozen_parameters"] == []
    assert result.training["trainable_parameters"] < result.training["parameters"] / 2


def test_non_private_card_says_so() -> None:
    from modelyard.model_card import _privacy_section

    assert "Not trained with differential privacy" in _privacy_section(None)


def test_bf16_per_example_gradients_are_clipped_in_full_precision() -> None:
    from modelyard.privacy.optimizer import PoissonDPOptimizer

    gen = torch.Generator().manual_seed(0)
    for _ in range(50):  # find bf16 values whose norm bf16 arithmetic rounds down
        grad = (torch.randn(1, 4096, generator=gen) * 3).bfloat16()
        if grad.norm(dim=1).item() < grad.float().norm(dim=1).item() * (1 - 1e-3):
            break
    else:
        pytest.fail("no bf16 gradient with a rounded-down norm found")
    param = torch.nn.Parameter(torch.zeros(4096))
    optimizer = PoissonDPOptimizer(
        torch.optim.SGD([param], lr=1.0),
        noise_multiplier=0.0,
        max_grad_norm=1.0,
        expected_batch_size=1,
    )
    param.grad_sample = grad
    optimizer.step()
    # the step is minus the clipped gradient: its norm never exceeds C
    assert param.detach().norm().item() <= 1.0 + 1e-5
