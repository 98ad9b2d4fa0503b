"""The real default backbone: zero-shot separates clearly worded sentiment."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import modelyard
from modelyard.methods import build_zeroshot

POSITIVE = ["what a wonderful, moving film", "I loved every minute of it", "a delightful surprise"]
NEGATIVE = ["a dull, tedious mess", "I hated this boring movie", "a complete waste of time"]


@pytest.mark.integration
def test_zeroshot_with_the_default_backbone(tmp_path: Path) -> None:
    labels = tmp_path / "labels.yaml"
    labels.write_text(
        yaml.safe_dump(
            {"positive": ["a great movie", "I loved it"], "negative": ["a bad movie", "I hated it"]}
        )
    )
    run = build_zeroshot(labels, tmp_path / "zs", max_length=32)
    predicted = [p["label"] for p in modelyard.predict(run, POSITIVE + NEGATIVE)]
    expected = ["positive"] * 3 + ["negative"] * 3
    # zero-shot is not perfect (sarcasm, idioms); on plain wording it should rarely miss
    assert sum(p == e for p, e in zip(predicted, expected, strict=True)) >= 5
