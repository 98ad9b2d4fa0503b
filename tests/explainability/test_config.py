"""The recipe's `explain:` section: typed, closed, every problem reported at once."""

from __future__ import annotations

import pytest

from modelyard.errors import RecipeError
from modelyard.recipe import build_recipe


def test_defaults_are_the_documented_ones() -> None:
    cfg = build_recipe({"data": {"path": "d.csv"}}).explain
    assert (cfg.method, cfg.steps, cfg.samples, cfg.score) == ("ig", None, 10, "log-odds")
    # unset steps: chosen per text to meet a 1% completeness error, at most 128
    assert (cfg.completeness_error, cfg.max_steps) == (0.01, 128)
    assert cfg.top_k_percent == (1.0, 5.0, 10.0, 20.0, 50.0)


def test_bad_explain_options_are_all_reported() -> None:
    raw = {
        "data": {"path": "d.csv"},
        "explain": {"top_k_percent": [0, 20], "steps": 1, "score": "odds", "bogus": 1},
    }
    with pytest.raises(RecipeError) as info:
        build_recipe(raw)
    message = str(info.value)
    assert "4 problem(s)" in message
    assert "explain.top_k_percent.0: Input should be greater than 0" in message
    assert "explain.steps" in message and "explain.score" in message
    assert "explain.bogus: unknown key; allowed keys here:" in message
