"""Explanations are bounded: only the words the model reads are explained, and a cancelled
explanation stops at its next forward pass."""

from __future__ import annotations

import threading

import pytest

from modelyard.explainability.api import explain
from modelyard.explainability.cancel import ExplainCancelled, cancellable, check_cancelled
from modelyard.explainability.core import fit_text
from modelyard.explainability.subject import as_subject
from modelyard.registry import LoadedRun
from tests.explainability.conftest import KEY

LONG = " ".join([KEY] + ["word"] * 400)


def test_words_past_the_model_window_are_cut_first_and_counted(key_run: LoadedRun) -> None:
    subject = as_subject(key_run)
    kept, cut = fit_text(subject, LONG)
    assert LONG.startswith(kept) and 0 < len(kept.split()) <= key_run.max_length
    assert cut == 401 - len(kept.split())
    assert fit_text(subject, "short text") == ("short text", 0)


@pytest.mark.parametrize("method", ["occlusion", "ig"])
def test_an_explanation_of_a_long_text_reports_what_was_cut(
    key_run: LoadedRun, method: str
) -> None:
    (result,) = explain(key_run, LONG, method=method, steps=4)
    assert result.truncated and result.words_cut > 300
    assert len(result.words) + result.words_cut == 401
    assert result.text == LONG[: len(result.text)]


@pytest.mark.parametrize("method", ["occlusion", "shapley", "ig"])
def test_a_cancelled_explanation_stops_before_its_next_forward_pass(
    key_run: LoadedRun, method: str
) -> None:
    flag = threading.Event()
    flag.set()
    with pytest.raises(ExplainCancelled, match="cancelled"):
        explain(key_run, f"my card {KEY} is late", method=method, steps=4, samples=2, cancel=flag)


def test_the_flag_is_scoped_to_its_block() -> None:
    flag = threading.Event()
    flag.set()
    with cancellable(flag), pytest.raises(ExplainCancelled):
        check_cancelled()
    check_cancelled()  # outside the block: nothing to stop
