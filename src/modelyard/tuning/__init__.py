"""Hyper-parameter search with Optuna over a recipe's keys (`modelyard tune`).

`space` parses and checks the `--param` specs, `study` runs the trials as runs of the train
stage (pruning on the dev metric), `report` writes the best recipe, the trials and a plot.
"""

from __future__ import annotations

from modelyard.tuning.errors import TuningError
from modelyard.tuning.run import TuneResult, tune
from modelyard.tuning.space import DISTRIBUTIONS, ParamSpec, parse_param, parse_space

__all__ = [
    "DISTRIBUTIONS",
    "ParamSpec",
    "TuneResult",
    "TuningError",
    "parse_param",
    "parse_space",
    "tune",
]
