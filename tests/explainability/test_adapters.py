"""Explanations of adapter runs: LoRA (merged on load; on the backbone's head or a mean-pooled
one) and prompt tuning (a live peft model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import modelyard
from modelyard.explainability import EXPLAINERS, as_subject
from modelyard.explainability.gradient import encode, explained_output, pad_baseline
from modelyard.explainability.words import split_words
from modelyard.recipe import build_recipe
from tests.conftest import write_csv
from tests.explainability.conftest import KEY, key_rows

TEXT = f"my {KEY} is late"


@pytest.fixture(scope="module", params=["lora", "prompt-tuning", "lora-mean"])
def adapter_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path
) -> Path:
    tmp = tmp_path_factory.mktemp(request.param)
    method = request.param.removesuffix("-mean")
    pooling = "mean" if request.param.endswith("-mean") else "cls"
    recipe = build_recipe(
        {
            "run": {"name": request.param, "output_dir": str(tmp), "seed": 3},
            "data": {"path": str(write_csv(tmp / "d.csv", key_rows(60, seed=1)))},
            "model": {"backbone": str(tiny_backbone), "max_length": 32, "pooling": pooling},
            "train": {
                "method": method,
                "epochs": 1,
                "batch_size": 16,
                "lr": 3e-3,
                "precision": "fp32",
                "num_threads": 1,
                "checkpoint_every": None,
            },
            "evaluate": {"speed": False},
        }
    )
    return modelyard.train(recipe, progress=False).run_dir


def test_adapter_runs_get_every_method(adapter_run: Path) -> None:
    subject = as_subject(adapter_run)
    assert subject.run is not None  # gradients are available through the loaded model
    for name in EXPLAINERS.names():
        [exp] = modelyard.explain(subject, TEXT, method=name, steps=40, samples=3)
        scores = [w.score for w in exp.words]
        assert len(scores) == 4 and np.isfinite(scores).all(), name


def test_ig_on_an_adapter_run_is_complete_within_its_delta(adapter_run: Path) -> None:
    subject = as_subject(adapter_run)
    assert subject.run is not None
    [exp] = modelyard.explain(subject, TEXT, method="ig", steps=40)
    enc = encode(subject, split_words(TEXT))
    f = explained_output(subject.run.model, subject.labels.index(exp.label), "log-odds")
    with torch.no_grad():
        diff = float(f(enc.input_ids, *enc.extra) - f(pad_baseline(enc, 0), *enc.extra))
    assert exp.delta is not None
    assert abs(sum(t.score for t in exp.tokens) - diff) <= abs(exp.delta) + 1e-5
