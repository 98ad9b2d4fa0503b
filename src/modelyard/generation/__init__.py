"""Causal and masked language models: continued pre-training, instruction fine-tuning,
generation, evaluation and export.

`prepare_lm_run(recipe)` reads data and builds the model for `task: language-modeling` or
`task: generation`; `LMRun.train(run_dir)` trains and saves the artifact;
`load_lm_run(path)` loads one back; `generate_text`/`evaluate_lm_run` use it.
"""

from __future__ import annotations

from modelyard.generation.artifacts import LM_KINDS, LoadedLM, load_lm_run
from modelyard.generation.generate import SamplingOptions
from modelyard.generation.training import LMRun, prepare_lm_run

__all__ = ["LM_KINDS", "LMRun", "LoadedLM", "SamplingOptions", "load_lm_run", "prepare_lm_run"]
