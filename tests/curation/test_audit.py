"""Label audit: flipped labels rank above clean ones; duplicates, leakage, outliers; reports."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from modelyard.cli import EXIT_USER_ERROR, main
from modelyard.curation.audit import check_folds, embedding_oof_probs, rank_label_issues
from modelyard.curation.audit_run import finetune_and_predict, finetuned_oof_probs, run_audit
from modelyard.curation.embed import normalise
from modelyard.curation.neighbours import leakage_pairs, near_duplicate_pairs, outlier_scores
from modelyard.data.splits import Split
from modelyard.errors import DataError
from modelyard.recipe import build_recipe
from tests.conftest import make_rows, write_csv


def _flip(labels: list[str], share: float, seed: int) -> tuple[list[str], set[int]]:
    rng = random.Random(seed)
    names = sorted(set(labels))
    flipped = set(rng.sample(range(len(labels)), int(share * len(labels))))
    out = [
        rng.choice([n for n in names if n != lab]) if i in flipped else lab
        for i, lab in enumerate(labels)
    ]
    return out, flipped


def test_flipped_labels_rank_above_clean_ones_on_clustered_embeddings() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=300)
    x = normalise((np.eye(3)[y] * 2 + rng.normal(scale=0.5, size=(300, 3))).astype(np.float32))
    noisy = y.copy()
    flipped = rng.choice(300, size=30, replace=False)
    noisy[flipped] = (y[flipped] + 1) % 3
    probs = embedding_oof_probs(x, noisy, folds=5, seed=0)
    assert np.allclose(probs.sum(axis=1), 1.0)
    issues = rank_label_issues(noisy, probs, "both")
    found = set(issues["index"].tolist())
    assert len(found & set(flipped.tolist())) >= 27 and len(found - set(flipped.tolist())) <= 10
    assert (issues["suggested"].to_numpy() != issues["given"].to_numpy()).all()
    assert list(issues["label_quality"]) == sorted(issues["label_quality"])


def test_near_duplicates_and_leakage() -> None:
    base = normalise(np.eye(5, dtype=np.float32))
    twin = normalise(base[2:3] + 0.01)
    vectors = np.vstack([base, twin])
    assert [(i, j) for i, j, _ in near_duplicate_pairs(vectors, 0.99)] == [(2, 5)]
    assert near_duplicate_pairs(vectors, 0.99, limit=0) == []
    held = np.vstack([twin, normalise(np.ones((1, 5), dtype=np.float32))])
    assert [(i, j) for i, j, _ in leakage_pairs(held, base, 0.99)] == [(0, 2)]


def test_outliers_score_lowest_far_from_the_crowd() -> None:
    rng = np.random.default_rng(0)
    crowd = normalise(np.array([1.0, 0, 0]) + rng.normal(scale=0.05, size=(50, 3)))
    vectors = np.vstack([crowd, normalise(np.array([[0.0, 0, 1]]))])
    assert int(np.argmin(outlier_scores(vectors, k=5))) == 50


def test_folds_need_enough_rows_per_class() -> None:
    with pytest.raises(DataError, match=r"class 'b' has 2 row\(s\).*audit.folds=2"):
        check_folds(np.array([0, 0, 0, 0, 0, 1, 1]), ["a", "b"], 5)


def _noisy_recipe(tmp_path: Path, backbone: Path, **audit: Any) -> tuple[Any, set[str]]:
    rows = make_rows(240, seed=1)
    labels, flipped = _flip([label for _, label in rows], 0.1, seed=2)
    data = write_csv(
        tmp_path / "noisy.csv", [(t, lab) for (t, _), lab in zip(rows, labels, strict=True)]
    )
    recipe = build_recipe(
        {
            "run": {"name": "audit", "output_dir": str(tmp_path / "runs"), "seed": 3},
            "data": {"path": str(data), "split": {"dev": 0.0, "test": 0.0}},
            "model": {"backbone": str(backbone), "max_length": 32},
            "train": {
                "epochs": 3,
                "batch_size": 16,
                "lr": 5e-3,
                "precision": "fp32",
                "num_threads": 1,
            },
            "audit": {"max_outliers": 5, **audit},
        }
    )
    return recipe, {rows[i][0] for i in flipped}


def test_audit_with_the_tiny_backbone_finds_flipped_rows(
    tmp_path: Path, tiny_backbone: Path
) -> None:
    # an untrained tiny BERT gives low-variance embeddings: a weakly regularised learner fits them
    recipe, flipped = _noisy_recipe(tmp_path, tiny_backbone, c=100.0)
    report = run_audit(recipe, tmp_path / "out")
    texts = report.issues["text"].tolist()
    hits = [t in flipped for t in texts]
    assert sum(hits) >= 0.6 * len(flipped)
    assert sum(hits[: len(flipped) // 2]) >= 0.75 * (len(flipped) // 2)  # the top is mostly right
    for name in ("label_issues", "near_duplicates", "leakage", "outliers"):
        assert Path(report.files[name]).is_file()
    summary = json.loads(Path(report.files["json"]).read_text())
    assert summary["label_issues"] == len(report.issues) and summary["rows"] == 240
    markdown = Path(report.files["markdown"]).read_text()
    assert "# Label audit" in markdown and "Suspected label errors" in markdown
    assert len(report.outliers) == 5


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_finetuned_learner_gives_out_of_fold_probabilities(
    tmp_path: Path, tiny_backbone: Path, pooling: str
) -> None:
    recipe, _ = _noisy_recipe(tmp_path, tiny_backbone, learner="finetune", folds=2)
    recipe.model.pooling = pooling  # type: ignore[assignment]
    rows = make_rows(90, seed=4)
    names = sorted({label for _, label in rows})
    labels = np.array([names.index(label) for _, label in rows])
    recipe.train.epochs, recipe.train.batch_size = 6, 8
    probs = finetuned_oof_probs(recipe, [t for t, _ in rows], labels, names)
    assert probs.shape == (90, 3) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs.argmax(axis=1) == labels).mean() > 0.6  # chance is 1/3; held-out rows only


def test_finetune_and_predict_scores_unseen_texts(tmp_path: Path, tiny_backbone: Path) -> None:
    recipe, _ = _noisy_recipe(tmp_path, tiny_backbone, learner="finetune", folds=2)
    recipe.train.epochs, recipe.train.batch_size = 6, 8
    rows = make_rows(120, seed=5)
    names = sorted({label for _, label in rows})
    labels = [names.index(label) for _, label in rows]
    fit = Split([t for t, _ in rows[:80]], labels[:80])
    probs = finetune_and_predict(recipe, fit, [t for t, _ in rows[80:]], names)
    assert probs.shape == (40, 3) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs.argmax(axis=1) == np.array(labels[80:])).mean() > 0.6


def test_finetune_and_predict_starts_from_the_recipes_head_init(
    tmp_path: Path, tiny_backbone: Path
) -> None:
    """At a vanishing learning rate the fitted model is the zero-shot classifier of the descriptions."""
    from modelyard.methods.zeroshot import zeroshot_model
    from modelyard.recipe.training import HeadInitConfig

    recipe, _ = _noisy_recipe(tmp_path, tiny_backbone, learner="finetune", folds=2)
    recipe.model.pooling = "mean"  # type: ignore[assignment]
    descriptions = {
        "account": ["password login"],
        "billing": ["invoice refund"],
        "shipping": ["parcel"],
    }
    recipe.model.head_init = HeadInitConfig(descriptions=descriptions)
    recipe.train.lr, recipe.train.max_steps = 1e-12, 1
    rows = make_rows(60, seed=6)
    names = sorted({label for _, label in rows})
    fit = Split([t for t, _ in rows[:30]], [names.index(label) for _, label in rows[:30]])
    texts = [t for t, _ in rows[30:]]
    probs = finetune_and_predict(recipe, fit, texts, names)
    reference, tokenizer, labels = zeroshot_model(descriptions, str(tiny_backbone), 32, 0.05)
    assert labels == names
    batch = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.no_grad():
        expected = torch.softmax(reference(**batch).logits, dim=-1).numpy()
    assert expected.max(axis=1).mean() > 0.5  # far from uniform, so the check below can fail
    assert np.allclose(probs, expected, atol=1e-4)


def test_dynamics_learner_ranks_flipped_rows_first(tmp_path: Path, tiny_backbone: Path) -> None:
    recipe, flipped = _noisy_recipe(tmp_path, tiny_backbone, learner="dynamics")
    recipe.train.epochs, recipe.train.batch_size = 6, 8  # the tiny model learns the topics
    report = run_audit(recipe, tmp_path / "out")
    hits = [t in flipped for t in report.issues["text"]]
    assert sum(hits) >= 0.8 * len(flipped) and sum(hits) >= 0.8 * len(hits)
    assert all(hits[: len(flipped) // 2])  # the top of the ranking is all flipped rows
    assert report.summary["filter_by"] == "predicted_neq_given"  # what auto means for dynamics
    assert "snapshots per epoch" in report.summary["probabilities"]
    assert "one fine-tune on every row" in Path(report.files["markdown"]).read_text()


def test_dynamics_averages_a_snapshot_per_interval_and_the_end(
    tmp_path: Path, tiny_backbone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modelyard.curation.audit_run as audit_run

    recipe, _ = _noisy_recipe(tmp_path, tiny_backbone, learner="dynamics", snapshots=2)
    recipe.train.epochs, recipe.train.batch_size = 2, 10
    rows = make_rows(50, seed=7)  # 5 steps an epoch: snapshots after steps 2, 4, 6, 8, 10
    names = sorted({label for _, label in rows})
    labels = np.array([names.index(label) for _, label in rows])
    taken: list[np.ndarray] = []
    probs_of = audit_run._Learner.probs

    def spy(self: Any, data: Any) -> np.ndarray:
        taken.append(probs_of(self, data))
        return taken[-1]

    monkeypatch.setattr(audit_run._Learner, "probs", spy)
    probs = audit_run.dynamics_probs(recipe, [t for t, _ in rows], labels, names)
    assert len(taken) == 5 and probs.shape == (50, 3)
    assert not np.allclose(taken[0], taken[-1])  # the model moved between snapshots
    assert np.allclose(probs, np.mean(taken, axis=0))
    recipe.train.epochs = 1.4  # ends at step 7, between snapshots: the end is taken too
    taken.clear()
    audit_run.dynamics_probs(recipe, [t for t, _ in rows], labels, names)
    assert len(taken) == 4


def test_dynamics_needs_no_rows_per_fold(tmp_path: Path, tiny_backbone: Path) -> None:
    rows = [*make_rows(30, seed=8), ("password login reset 1", "rare"), ("invoice 2", "rare")]
    data = write_csv(tmp_path / "d.csv", rows)
    recipe = build_recipe(
        {
            "data": {"path": str(data), "split": {"dev": 0.0, "test": 0.0}},
            "model": {"backbone": str(tiny_backbone), "max_length": 32},
            "train": {"epochs": 1, "batch_size": 8, "precision": "fp32", "num_threads": 1},
            "audit": {"learner": "dynamics", "folds": 5},
        }
    )
    report = run_audit(recipe, tmp_path / "out")  # 5 folds would need 5 'rare' rows
    assert report.summary["rows"] == 32


def test_filter_by_auto_resolves_per_learner() -> None:
    def audit(**section: Any) -> Any:
        return build_recipe({"data": {"path": "x.csv"}, "audit": section}).audit

    assert audit().rule() == "both"
    assert audit(learner="finetune").rule() == "both"
    assert audit(learner="dynamics").rule() == "predicted_neq_given"
    assert audit(learner="dynamics", filter_by="confident_learning").rule() == "confident_learning"


def test_cli_audit_and_its_errors(
    tmp_path: Path,
    tiny_backbone: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recipe, _ = _noisy_recipe(tmp_path, tiny_backbone)
    path = tmp_path / "r.yaml"
    path.write_text(recipe.to_yaml(), encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["modelyard", "data", "audit", str(path), "--json"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == 240 and Path(out["files"]["markdown"]).is_file()
    monkeypatch.setattr(sys, "argv", ["modelyard", "data", "audit", str(path), "audit.folds=100"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == EXIT_USER_ERROR
    assert "audit.folds" in capsys.readouterr().err
