"""The global view: top words per class by mean attribution, with counts, table and chart."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.explainability import Explanation, WordScore, global_view
from modelyard.explainability.api import explain
from modelyard.explainability.overview import plot_global
from modelyard.registry import LoadedRun
from tests.explainability.conftest import KEY, key_rows


def _exp(label: str, scores: dict[str, float]) -> Explanation:
    words = [WordScore(w, 0, len(w), s) for w, s in scores.items()]
    return Explanation(" ".join(scores), "occlusion", label, {label: 1.0}, words)


def test_mean_and_count_per_class_case_folded() -> None:
    view = global_view(
        [
            _exp("yes", {"Refund": 3.0, "late": 0.5}),
            _exp("yes", {"refund": 1.0, "late": -0.5, "once": 9.0}),
            _exp("no", {"late": 0.2, "parcel": 0.4}),
            _exp("no", {"late": 0.4, "parcel": 0.2}),
        ],
        top=5,
        min_count=2,
    )
    assert view.n_texts == 4 and view.method == "occlusion"
    assert [(s.word, s.mean, s.count) for s in view.classes["yes"]] == [
        ("refund", 2.0, 2),
        ("late", 0.0, 2),
    ]  # "once" is seen once: below min_count
    assert [s.word for s in view.classes["no"]] == ["late", "parcel"]  # tie broken by word
    assert view.classes["no"][0].mean == pytest.approx(0.3)


def test_too_few_texts_say_how_many_the_view_needs() -> None:
    view = global_view([_exp("yes", {"refund": 1.0}), _exp("no", {"late": 1.0})], min_count=2)
    note = view.shortfall()
    assert "no top words for no, yes" in note and "at least 2 texts per class" in note
    assert "got 2 texts" in note and f"**Note:** {note}." in view.markdown()
    assert global_view([], min_count=2).shortfall().startswith("no top words:")
    full = [_exp("yes", {"refund": 1.0}), _exp("yes", {"refund": 2.0})]
    assert global_view(full, min_count=2).shortfall() == ""


def test_top_limits_the_words_per_class() -> None:
    view = global_view([_exp("yes", {"a": 1.0, "b": 2.0, "c": 3.0})], top=2, min_count=1)
    assert [s.word for s in view.classes["yes"]] == ["c", "b"]


def test_the_key_word_tops_its_class_on_the_tiny_model(key_run: LoadedRun, tmp_path: Path) -> None:
    exps = explain(key_run, [t for t, _ in key_rows(16, seed=2)], method="occlusion")
    view = global_view(exps, top=3, min_count=2)
    assert view.classes["yes"][0].word == KEY and view.classes["yes"][0].count == 8
    assert KEY not in [s.word for s in view.classes["no"]]
    table = view.markdown()
    assert f"| {KEY} |" in table and "## yes" in table and "## no" in table
    png = plot_global(view, tmp_path / "global.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
