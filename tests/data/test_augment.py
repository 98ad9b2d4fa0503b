"""EDA augmentation: seeded, train-only, counted, and synonyms from the backbone's vocabulary."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from modelyard.data import load_data
from modelyard.data.augment import Eda, SynonymSource, augment_bundle, augment_split
from modelyard.data.splits import Split
from modelyard.recipe import AugmentConfig, build_recipe
from tests.conftest import WORDS, make_rows, write_csv


def _source() -> SynonymSource:
    words = ["[PAD]", "refund", "repayment", "parcel", "package", "zebra", "the"]
    vectors = np.array(
        [[0, 0, 0], [1, 0.1, 0], [1, 0.2, 0], [0, 1, 0.1], [0, 1, 0.2], [0, 0, 1], [1, 1, 1]],
        dtype=np.float32,
    )
    return SynonymSource(words, vectors, k=2, min_similarity=0.9)


def test_synonyms_are_close_words_only() -> None:
    source = _source()
    assert source("Refund") == ["repayment"]
    assert source("parcel") == ["package"]
    assert source("zebra") == [] and source("unknown") == []
    assert source("the") == []  # stopwords are never replaced


def test_synonyms_from_a_backbone_folder(tiny_backbone: Path) -> None:
    source = SynonymSource.from_backbone(tiny_backbone, k=3, min_similarity=-1.0)
    neighbours = source("refund")
    assert len(neighbours) == 3 and "refund" not in neighbours
    assert all(n.isalpha() and not n.startswith("##") for n in neighbours)


@pytest.mark.parametrize("operation", ["swap", "delete", "insert", "synonym"])
def test_each_operation_changes_the_words_as_it_says(operation: str) -> None:
    eda = Eda(AugmentConfig(operations=[operation], alpha=0.5), _source())
    words = ["please", "refund", "my", "parcel", "today", "now"]
    out = getattr(eda, operation)(words, random.Random(3))
    if operation == "swap":
        assert sorted(out) == sorted(words) and out != words
    elif operation == "delete":
        assert 1 <= len(out) < len(words) and all(w in words for w in out)
    elif operation == "insert":
        assert len(out) > len(words) and set(out) - set(words) <= {"repayment", "package"}
    else:
        assert len(out) == len(words) and set(out) - set(words) <= {"repayment", "package"}
        assert out != words


def test_augment_split_is_seeded_and_adds_distinct_labelled_rows() -> None:
    rows = make_rows(30)
    split = Split(
        [t for t, _ in rows], [i % 3 for i in range(30)], None, "x.csv", list(range(1, 31))
    )
    eda = Eda(AugmentConfig(n=2, operations=["swap", "delete"]))
    first, added = augment_split(split, eda, 2, seed=5)
    again, _ = augment_split(split, eda, 2, seed=5)
    other, _ = augment_split(split, eda, 2, seed=6)
    assert first == again and first.texts != other.texts
    assert 0 < added <= 60 and len(first) == 30 + added
    assert first.texts[:30] == split.texts and len(set(first.texts)) == len(first)
    for text, label, row in zip(first.texts[30:], first.labels[30:], first.rows[30:], strict=True):
        source = split.texts[row - 1]
        assert label == split.labels[row - 1] and set(text.split()) <= set(source.split())


def test_augmentation_never_reaches_dev_or_test(tmp_path: Path, tiny_backbone: Path) -> None:
    data = write_csv(tmp_path / "d.csv", make_rows(90))
    recipe = build_recipe({"data": {"path": str(data), "augment": {"n": 2, "alpha": 0.3}}})
    plain = load_data(recipe.data, seed=1)
    bundle = augment_bundle(load_data(recipe.data, seed=1), recipe.data.augment, tiny_backbone, 1)
    assert bundle.dev == plain.dev and bundle.test == plain.test
    assert len(bundle.train) == len(plain.train) + bundle.report.augmented_rows
    assert bundle.report.augmented_rows > len(plain.train) // 2
    assert "Augmented training rows added" in bundle.report.to_markdown()
    vocabulary = {w for ws in WORDS.values() for w in ws}
    new_words = {w for t in bundle.train.texts for w in t.split()} - {
        w for t in plain.train.texts for w in t.split()
    }
    assert new_words <= vocabulary | set("0123456789")  # synonyms come from the backbone vocab


def test_no_augment_section_changes_nothing(tmp_path: Path, tiny_backbone: Path) -> None:
    data = write_csv(tmp_path / "d.csv", make_rows(30))
    recipe = build_recipe({"data": {"path": str(data)}})
    bundle = load_data(recipe.data, seed=1)
    assert augment_bundle(bundle, None, tiny_backbone, 1) is bundle
