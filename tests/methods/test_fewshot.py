"""SetFit-style few-shot: contrastive pairs, the logistic head, the artifact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import modelyard
from modelyard.errors import DataError
from modelyard.methods.embedding import build_embedding_classifier
from modelyard.methods.fewshot import contrastive_pairs, embed_all, fit_logistic_head
from modelyard.models import load_tokenizer
from modelyard.models.encoding import Encoded, encode_texts
from modelyard.recipe import build_recipe
from tests.conftest import make_rows
from tests.methods.conftest import with_train


def test_pairs_are_half_positive_and_label_consistent() -> None:
    labels = [0, 0, 0, 1, 1, 2, 2, 2]
    pairs = contrastive_pairs(labels, 6, seed=1)
    assert len(pairs) == 6 * len(labels)
    assert pairs[:, 2].sum() == len(pairs) // 2
    y = np.asarray(labels)
    assert ((y[pairs[:, 0]] == y[pairs[:, 1]]) == pairs[:, 2].astype(bool)).all()
    assert (pairs[:, 0] != pairs[:, 1]).all()
    assert np.array_equal(pairs, contrastive_pairs(labels, 6, seed=1))


@pytest.mark.parametrize("labels", [[0, 0, 1], [0, 0, 0]])
def test_too_few_examples_are_refused(labels: list[int]) -> None:
    with pytest.raises(DataError, match="2 training examples per class"):
        contrastive_pairs(labels, 4, seed=0)


def _encoded(backbone: Path, n: int) -> Encoded:
    rows = make_rows(n, seed=9)
    names = sorted({label for _, label in rows})
    ids, types, _ = encode_texts(load_tokenizer(backbone), [t for t, _ in rows], None, 32)
    return Encoded(ids, types, [names.index(label) for _, label in rows], 0)


def test_logistic_head_matches_sklearn_probabilities(tiny_backbone: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    model = build_embedding_classifier(tiny_backbone, ["a", "b", "c"])
    data = _encoded(tiny_backbone, 30)
    fit_logistic_head(model, data, c=1.0, seed=0)
    x = embed_all(model, data)
    expected = LogisticRegression(C=1.0, max_iter=2000, random_state=0).fit(x, data.labels)
    with torch.no_grad():
        logits = model.head(torch.from_numpy(x))
    probs = torch.softmax(logits, dim=-1).numpy()
    assert np.allclose(probs, expected.predict_proba(x), atol=1e-5)


def test_binary_head_is_the_logistic_sigmoid(tiny_backbone: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    model = build_embedding_classifier(tiny_backbone, ["a", "b"])
    data = _encoded(tiny_backbone, 20)
    data.labels = [label % 2 for label in data.labels]
    fit_logistic_head(model, data, c=1.0, seed=0)
    x = embed_all(model, data)
    expected = LogisticRegression(C=1.0, max_iter=2000, random_state=0).fit(x, data.labels)
    with torch.no_grad():
        probs = torch.softmax(model.head(torch.from_numpy(x)), dim=-1).numpy()
    assert np.allclose(probs, expected.predict_proba(x), atol=1e-5)


def test_setfit_run_moves_the_encoder_and_records_the_pairs(
    method_recipe: dict, tiny_backbone: Path
) -> None:
    from safetensors.torch import load_file

    recipe = with_train(method_recipe, method="setfit", setfit={"pairs_per_example": 4, "lr": 1e-3})
    result = modelyard.train(build_recipe(recipe), progress=False)
    t = result.training
    assert t["train_samples"] == 2 * 4 * 90 and t["history"][0]["contrastive_loss"] >= 0
    trained = load_file(str(result.run_dir / "model.safetensors"))
    base = load_file(str(tiny_backbone / "model.safetensors"))
    key = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(trained["encoder." + key], base[key])
    assert result.metrics["accuracy"] > 0.5
