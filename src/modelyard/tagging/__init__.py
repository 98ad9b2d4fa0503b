"""Token classification (named entities): tagged data, training, entity metrics and spans.

`prepare_tagging_run(recipe)` reads the tagged data and builds the model for
`task: token-classification`; `TaggingRun.train(run_dir)` trains and saves the artifact;
`load_tagger(path)` loads one back; `predict_entities` returns entity spans of raw text.
"""

from __future__ import annotations

from modelyard.tagging.model import TOKEN_CLASSIFIER, LoadedTagger, is_tagger, load_tagger
from modelyard.tagging.training import TaggingRun, prepare_tagging_run

__all__ = [
    "TOKEN_CLASSIFIER",
    "LoadedTagger",
    "TaggingRun",
    "is_tagger",
    "load_tagger",
    "prepare_tagging_run",
]
