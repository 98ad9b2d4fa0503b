"""Continual learning: growing the head, memory kept by a run, rehearsal and EWC."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

import modelyard
from modelyard.errors import ArtifactError, RecipeError
from modelyard.methods.continual import EWCPenalty, grow_head, replay_factor
from modelyard.methods.memory import sample_indices
from modelyard.models import build_classifier, load_tokenizer
from modelyard.recipe import build_recipe
from modelyard.registry import load_run
from tests.conftest import make_rows, write_csv
from tests.methods.conftest import with_train


def test_grown_head_keeps_the_earlier_classes_logits(tiny_backbone: Path) -> None:
    torch.manual_seed(0)
    model = build_classifier(tiny_backbone, ["a", "b"]).eval()
    batch = dict(load_tokenizer(tiny_backbone)(["refund my card"], return_tensors="pt"))
    before = model(**batch).logits
    grown = grow_head(model, ["a", "b", "c"])
    after = grown(**batch).logits
    assert after.shape == (1, 3) and torch.equal(after[:, :2], before)
    assert grown.config.id2label == {0: "a", 1: "b", 2: "c"}


def test_ewc_penalty_is_zero_at_the_start_and_pulls_weights_back(tiny_backbone: Path) -> None:
    model = build_classifier(tiny_backbone, ["a", "b"])
    fisher = {
        n: torch.ones_like(p) for n, p in model.named_parameters() if n.startswith("classifier")
    }
    ewc = EWCPenalty(model, fisher, strength=2.0)
    assert ewc.penalty().item() == 0
    with torch.no_grad():
        model.classifier.weight += 0.5
    expected = 0.5 * 2.0 * (0.5**2) * model.classifier.weight.numel()
    assert ewc.penalty().item() == pytest.approx(expected)
    ewc.penalty().backward()
    assert bool((model.classifier.weight.grad > 0).all())


def test_sample_indices_are_stratified_bounded_and_seeded() -> None:
    labels = [0] * 60 + [1] * 30 + [2] * 10
    index = sample_indices(labels, 20, seed=1)
    picked = [labels[i] for i in index]
    assert len(index) == 20 and len(set(index)) == 20
    assert (picked.count(0), picked.count(1), picked.count(2)) == (12, 6, 2)
    assert list(index) == list(sample_indices(labels, 20, seed=1))
    assert len(sample_indices(labels, 500, seed=1)) == 100


@pytest.fixture()
def phases(tmp_path: Path, method_recipe: dict) -> tuple[dict, dict]:
    rows = make_rows(180)
    old = [r for r in rows if r[1] != "account"]
    # phase 2 brings a new class (account) and more of an earlier one (shipping)
    new = [r for r in rows if r[1] != "billing"]
    files = {
        "train1": write_csv(tmp_path / "p1.csv", old[:90]),
        "test1": write_csv(tmp_path / "t1.csv", old[90:]),
        "train2": write_csv(tmp_path / "p2.csv", new[:40]),
        "test2": write_csv(tmp_path / "t2.csv", new[40:]),
    }
    first = with_train(
        method_recipe, epochs=2, memory={"rehearsal_rows": 20, "fisher": True, "fisher_samples": 8}
    )
    first["data"] = {**first["data"], "train": str(files["train1"]), "test": str(files["test1"])}
    second = dict(method_recipe, run={**method_recipe["run"], "name": "second"})
    second["data"] = {**second["data"], "train": str(files["train2"]), "test": str(files["test2"])}
    return first, second


def test_memory_is_kept_only_when_asked(phases: tuple[dict, dict], method_recipe: dict) -> None:
    first = modelyard.train(build_recipe(phases[0]), progress=False)
    sample = pd.read_csv(first.run_dir / "rehearsal.csv")
    assert len(sample) == 20 and sorted(set(sample["label"])) == ["billing", "shipping"]
    manifest = json.loads((first.run_dir / "manifest.json").read_text())
    assert {"rehearsal.csv", "fisher.safetensors"} <= set(manifest["files"])
    plain_recipe = with_train(method_recipe, max_steps=1)
    plain_recipe["run"] = {**plain_recipe["run"], "name": "plain"}
    plain = modelyard.train(build_recipe(plain_recipe), progress=False)
    assert not (plain.run_dir / "rehearsal.csv").exists()
    assert not (plain.run_dir / "fisher.safetensors").exists()


@pytest.mark.parametrize("strategy", ["naive", "rehearsal", "ewc"])
def test_continuing_on_new_classes(phases: tuple[dict, dict], strategy: str) -> None:
    first = modelyard.train(build_recipe(phases[0]), progress=False)
    spec = with_train(phases[1], continual={"from_run": str(first.run_dir), "strategy": strategy})
    second: Any = modelyard.train(build_recipe(spec), progress=False)
    run = load_run(second.run_dir)
    assert run.labels == ["billing", "shipping", "account"]
    assert run.manifest["continued_from"] == str(first.run_dir)
    # balanced replay: 20 stored rows of 2 classes against 40 new rows of 2 classes -> twice
    rehearsed = 40 if strategy == "rehearsal" else 0
    assert second.training["train_samples"] == 40 + rehearsed


def test_rehearsal_once_adds_the_stored_sample_a_single_time(phases: tuple[dict, dict]) -> None:
    first = modelyard.train(build_recipe(phases[0]), progress=False)
    cont = {"from_run": str(first.run_dir), "strategy": "rehearsal", "replay": "once"}
    second: Any = modelyard.train(
        build_recipe(with_train(phases[1], continual=cont)), progress=False
    )
    assert second.training["train_samples"] == 40 + 20


def test_replay_factor_balances_class_sizes() -> None:
    assert replay_factor(["a"] * 10 + ["b"] * 10, [0] * 100 + [1] * 100) == 10
    assert replay_factor(["a"] * 50, [0] * 20) == 1
    assert replay_factor([], [0, 1]) == 1


def test_rehearsal_and_ewc_need_what_the_earlier_run_kept(
    phases: tuple[dict, dict], method_recipe: dict
) -> None:
    bare = modelyard.train(build_recipe(with_train(phases[0], memory={})), progress=False)
    for strategy, message in (
        ("rehearsal", "stored no rehearsal sample"),
        ("ewc", "EWC needs Fisher"),
    ):
        spec = with_train(
            phases[1], continual={"from_run": str(bare.run_dir), "strategy": strategy}
        )
        with pytest.raises(ArtifactError, match=message):
            modelyard.train(build_recipe(spec), progress=False)


def test_continual_refuses_another_backbone_and_adapter_methods(
    phases: tuple[dict, dict], tmp_path: Path
) -> None:
    first = modelyard.train(build_recipe(with_train(phases[0], memory={})), progress=False)
    spec = with_train(phases[1], continual={"from_run": str(first.run_dir)})
    spec["model"] = {**spec["model"], "backbone": "minilm-l6"}
    with pytest.raises(RecipeError, match="was trained on backbone"):
        modelyard.train(build_recipe(spec), progress=False)
    with pytest.raises(RecipeError, match="need a method that saves a whole classifier"):
        build_recipe(with_train(phases[1], method="lora", continual={"from_run": str(tmp_path)}))
