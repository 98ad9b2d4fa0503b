"""Markdown report of bench/defaults.py."""

from __future__ import annotations

from typing import Any


def _row(dataset: str, fig: dict[str, Any]) -> str:
    runs = fig["runs"][dataset]
    d = runs["defaults"]
    best = fig.get(f"best_sweep_{dataset}", "")
    sweep = " / ".join(
        f"{runs[f'e{n}']['accuracy']:.4f}" if f"e{n}" in runs else "-" for n in fig["sweep_epochs"]
    )
    gap = fig.get(f"defaults_minus_best_sweep_{dataset}", "")
    ratio = fig.get(f"defaults_time_vs_best_sweep_{dataset}", "")
    steps = fig.get(f"defaults_steps_vs_best_sweep_{dataset}", "")
    return (
        f"| {dataset} | {d['accuracy']:.4f} | {d['epochs_trained']} ({d['stop_reason']}) | "
        f"{sweep} | {best} | {gap:+} | {ratio} | {steps} |"
    )


def _runs_table(fig: dict[str, Any]) -> list[str]:
    lines = [
        "| dataset | setting | test acc | macro-F1 | ECE | epochs | steps | loop s | load before |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset, runs in fig["runs"].items():
        for name, r in runs.items():
            lines.append(
                f"| {dataset} | {name} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | "
                f"{r['ece']:.4f} | {r['epochs_trained']} | {r['steps']} | {r['loop_seconds']:.0f} "
                f"| {r['load_before'][0]} |"
            )
    return lines


def markdown(fig: dict[str, Any]) -> str:
    """Return the figures of bench/defaults.py as a markdown report."""
    sweep = ", ".join(str(n) for n in fig["sweep_epochs"])
    lines = [
        "# Default stopping rule against fixed epoch counts",
        "",
        f"Machine: {fig['machine']}; load average at the end {fig['uptime_load_at_end']}.",
        "",
        f"Each set: a stratified {fig['rows']}-row sample of train.csv (the recipe's default 10% "
        "dev split is carved from it), the test file as listed below, every other option at the "
        f"recipe default. `defaults` = `train.epochs: auto`; the sweep = `train.epochs` {sweep}, "
        "each its own run. Goals: accuracy gap >= -0.005, time ratio <= 1.5 (wall time of the "
        "training loop, evaluations and checkpoints included; the step ratio beside it does not "
        "depend on the machine's load).",
        "",
        f"| dataset | defaults acc | defaults epochs (why) | sweep acc ({sweep}) | best sweep "
        "| gap | time ratio | step ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [_row(d, fig) for d in fig["runs"] if "defaults" in fig["runs"][d]]
    lines += ["", "## Sizes", ""]
    lines += [f"- {d}: {s}" for d, s in fig["sizes"].items()]
    lines += ["", "## Every run", "", *_runs_table(fig), ""]
    lines += ["## Why each default run stopped", ""]
    for dataset, runs in fig["runs"].items():
        for name, r in runs.items():
            if not name.startswith("e"):
                lines.append(f"- {dataset} {name}: {r['stopped_because']}")
    return "\n".join(lines) + "\n"
