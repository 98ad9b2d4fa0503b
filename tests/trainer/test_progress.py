"""The progress bar stays readable at 80 columns: counts and the ETA are never cut."""

from __future__ import annotations

import io
import re

from rich.console import Console

from modelyard.trainer.progress import TrainingProgress


def test_eta_and_counts_fit_80_columns() -> None:
    bar = TrainingProgress(56789, 1234, enabled=False)
    for _ in range(3):
        bar.step(0.123456)
    bar.dev("macro_f1", 0.912345)
    bar.phase("cool-down")
    out = io.StringIO()
    Console(file=out, width=80, color_system=None).print(
        bar._progress.make_tasks_table(bar._progress.tasks)
    )
    line = out.getvalue().rstrip("\n")
    assert len(line) <= 80
    assert "1237/56789 steps" in line
    assert re.search(r"eta (-:--:--|\d+:\d\d:\d\d)", line), line
