"""What a finished search leaves: the trials as JSON, the best recipe as YAML, and a plot."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from modelyard.fsutil import atomic_write_bytes


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """Return every trial of `study`: number, state, value, params, its run and test figures."""
    rows = []
    for trial in study.get_trials():
        steps = sorted(trial.intermediate_values.items())
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name.lower(),
                "value": trial.value,
                "last_reported": steps[-1][1] if steps else None,
                "evaluations": len(steps),
                "params": dict(trial.params),
                **{k: trial.user_attrs.get(k) for k in ("run_dir", "test", "epochs_run")},
                "seconds": (
                    (trial.datetime_complete - trial.datetime_start).total_seconds()
                    if trial.datetime_complete and trial.datetime_start
                    else None
                ),
            }
        )
    return rows


def best_so_far(values: list[float], maximize: bool) -> list[float]:
    """Return the running best of `values` (the running max, or min when minimising)."""
    out: list[float] = []
    for value in values:
        out.append(value if not out else (max if maximize else min)(out[-1], value))
    return out


def plot_search(rows: list[dict[str, Any]], metric: str, maximize: bool, path: Path) -> Path:
    """Draw the search: each finished trial's objective, each pruned trial's last reported
    value, and the best so far. Returns `path`, now holding a PNG image."""
    fig = Figure(figsize=(7.0, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    done = [(r["number"], r["value"]) for r in rows if r["state"] == "complete"]
    pruned = [
        (r["number"], r["last_reported"])
        for r in rows
        if r["state"] == "pruned" and r["last_reported"] is not None
    ]
    if done:
        numbers, values = zip(*done, strict=True)
        ax.plot(numbers, values, "o", color="tab:blue", label="trial (finished)")
        ax.step(
            numbers,
            best_so_far(list(values), maximize),
            where="post",
            color="tab:orange",
            label="best so far",
        )
    if pruned:
        numbers, values = zip(*pruned, strict=True)
        ax.plot(numbers, values, "x", color="tab:gray", label="trial (pruned, last evaluation)")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"dev {metric}")
    ax.set_title("Hyper-parameter search")
    if done or pruned:
        ax.legend(loc="best")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return atomic_write_bytes(Path(path), buffer.getvalue())
