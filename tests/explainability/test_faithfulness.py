"""ERASER comprehensiveness / sufficiency, AOPC, and the random baseline."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelyard.errors import DataError
from modelyard.explainability import as_subject, evaluate_faithfulness
from modelyard.explainability.core import resolve_config
from modelyard.explainability.faithfulness import (
    RANDOM,
    _safe_ratio,
    perturbations,
    removal_counts,
)
from modelyard.explainability.words import split_words
from modelyard.registry import LoadedRun
from tests.explainability.conftest import key_rows


def test_removal_counts_take_at_least_one_word_and_round_up() -> None:
    assert removal_counts(19, [1, 5, 10, 20, 50]) == [1, 1, 2, 4, 10]
    assert removal_counts(10, [10, 100]) == [1, 10]


def test_perturbations_remove_then_keep_the_top_words() -> None:
    words = split_words("a b c d")
    order = np.array([2, 0, 3, 1])
    assert perturbations(words, order, [1, 2]) == ["a b d", "b d", "c", "a c"]


@pytest.fixture(scope="module")
def report(key_run: LoadedRun):  # type: ignore[no-untyped-def]
    subject = as_subject(key_run)
    cfg = resolve_config(subject, top_k_percent=(10.0, 20.0, 50.0))
    texts = [t for t, _ in key_rows(24, seed=5)] + ["   "]
    return evaluate_faithfulness(subject, texts, ["ig", "occlusion", "shapley", "gxi"], cfg)


def test_ig_occlusion_and_shapley_beat_random_twice_over(report) -> None:  # type: ignore[no-untyped-def]
    assert report.n_texts == 24 and report.skipped_empty == 1
    rand = report.methods[RANDOM]
    # gradient x input is measured too, but it is known to be weak (saturated gradients)
    for name in ("ig", "occlusion", "shapley"):
        m = report.methods[name]
        assert m.comprehensiveness["10"] > 2 * rand.comprehensiveness["10"], name
        assert m.comprehensiveness_aopc > rand.comprehensiveness_aopc, name
        assert m.sufficiency_aopc < rand.sufficiency_aopc, name
        assert report.ratio(name, 10) == pytest.approx(
            m.comprehensiveness["10"] / rand.comprehensiveness["10"]
        )


def test_aopc_is_the_mean_over_the_bins(report) -> None:  # type: ignore[no-untyped-def]
    for m in report.methods.values():
        assert m.comprehensiveness_aopc == pytest.approx(
            np.mean(list(m.comprehensiveness.values())), abs=1e-5
        )
        assert m.sufficiency_aopc == pytest.approx(np.mean(list(m.sufficiency.values())), abs=1e-5)


def test_report_dict_has_ratios_and_timings(report) -> None:  # type: ignore[no-untyped-def]
    data = report.to_dict()
    assert data["k_percent"] == [10.0, 20.0, 50.0]
    ig = data["methods"]["ig"]
    assert set(ig["comprehensiveness_ratio"]) == {"10", "20", "50"}
    assert ig["ms_per_explanation"] > 0 and data["methods"][RANDOM]["ms_per_explanation"] is None
    assert "comprehensiveness_ratio" not in data["methods"][RANDOM]
    assert 0 <= ig["median_relative_delta"] < 1  # IG reports how well its integral converged
    assert data["methods"]["occlusion"]["median_relative_delta"] is None


def test_no_text_to_evaluate_is_an_error(key_run: LoadedRun) -> None:
    subject = as_subject(key_run)
    with pytest.raises(DataError, match=r"no text to evaluate explanations on \(2 empty"):
        evaluate_faithfulness(subject, ["", "  "], ["occlusion"], resolve_config(subject))


def test_one_word_texts_leave_method_and_random_the_same_choice(key_run: LoadedRun) -> None:
    subject = as_subject(key_run)
    report = evaluate_faithfulness(subject, ["refund"], ["occlusion"], resolve_config(subject))
    assert report.ratio("occlusion", 50) == pytest.approx(1.0)


def test_ratios_over_a_zero_baseline_are_inf_or_nan_not_errors() -> None:
    assert _safe_ratio(0.5, 0.25) == 2.0
    assert _safe_ratio(0.1, 0.0) == math.inf
    assert math.isnan(_safe_ratio(0.0, 0.0))
