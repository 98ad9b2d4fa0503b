"""Multi-label classification and regression: a sentence-level head of their own beside
classification (a sigmoid per label with thresholds tuned on dev, or one number a text).

`prepare_head_run(recipe)` reads the rows and builds the model for `task: multi-label` or
`task: regression`; `HeadRun.train(run_dir)` trains and saves; `load_head_run(path)` loads
one back to predict.
"""

from __future__ import annotations

from modelyard.seqtasks.training import (
    KINDS,
    HeadRun,
    LoadedHead,
    head_kind,
    load_head_run,
    prepare_head_run,
)

__all__ = ["KINDS", "HeadRun", "LoadedHead", "head_kind", "load_head_run", "prepare_head_run"]
