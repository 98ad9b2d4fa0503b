"""Using a saved multi-label or regression run: evaluate it on a labelled file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelyard.errors import DataError
from modelyard.fsutil import atomic_write_json, atomic_write_text
from modelyard.seqtasks.data import read_rows
from modelyard.seqtasks.training import evaluate_rows, load_head_run


def evaluate_head_file(path: Path, data: Path, output: Path | None = None) -> dict[str, Any]:
    """Return the task's metrics of the run at `path` on a labelled file (the run's own text
    and label columns), written to `output` (default `RUN/evaluations/<file stem>/`).

    Raises DataError for an unreadable file or a label the model does not know.
    """
    run = load_head_run(path)
    rows = read_rows(data, run.recipe)
    unknown = (
        sorted({t for ts in rows.targets for t in ts} - set(run.head["labels"]))
        if run.head["task"] == "multi-label"
        else []
    )
    if unknown:
        raise DataError(f"{data}: labels the model does not know: {', '.join(unknown)}")
    metrics = evaluate_rows(run.model, run.tokenizer, run.head, rows, run.recipe.model.max_length)
    metrics["data"] = str(data)
    out = output or path / "evaluations" / data.stem
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "metrics.json", metrics)
    figures = "\n".join(f"- {k}: {v}" for k, v in metrics.items() if not isinstance(v, dict))
    atomic_write_text(out / "report.md", f"# {path.name} on {data.name}\n\n{figures}\n")
    return metrics
