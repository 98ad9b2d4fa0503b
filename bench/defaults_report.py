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
    gap = fig.get(f"defaults_minus_best_sweep_{dataset}")
    gap_text = "" if gap is None else f"{gap:+}"  # none while the sweep is incomplete
    ratio = fig.get(f"defaults_time_vs_best_sweep_{dataset}", "")
    steps = fig.get(f"defaults_steps_vs_best_sweep_{dataset}", "")
    return (
        f"| {dataset} | {d['accuracy']:.4f} | {d['epochs_trained']} ({d['stop_reason']}) | "
        f"{sweep} | {best} | {gap_text} | {ratio} | {steps} |"
    )


def _runs_table(fig: dict[str, Any]) -> list[str]:
    lines = [
        "| dataset | setting | test acc | macro-F1 | ECE | epochs | steps | loop s | load before "
        "| measured |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset, runs in fig["runs"].items():
        for name, r in runs.items():
            lines.append(
                f"| {dataset} | {name} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | "
                f"{r['ece']:.4f} | {r['epochs_trained']} | {r['steps']} | {r['loop_seconds']:.0f} "
                f"| {r['load_before'][0]} | {_measured(r)} |"
            )
    return lines


def _measured(run: dict[str, Any]) -> str:
    """Return when a run was measured: in this run, or the earlier result it was reused from."""
    return f"reused: {run['reused_from']}" if "reused_from" in run else "this run"


def reused_note(runs: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Return a paragraph on the runs reused from an earlier result, or nothing."""
    reused = sorted(
        f"{d} {n}" for d, by in runs.items() for n, r in by.items() if "reused_from" in r
    )
    if not reused:
        return []
    sources = sorted(
        {r["reused_from"] for by in runs.values() for r in by.values() if "reused_from" in r}
    )
    return [
        f"Reused runs ({len(reused)}: {', '.join(reused)}): fixed-epoch runs not repeated here, "
        f"copied from {' and '.join(sources)}. The code path of a fixed number of epochs did not "
        "change, and training is deterministic: each set's best sweep run was repeated in this "
        "run to check that (its accuracy against the earlier result's is in the notes). Their "
        "loop times are not used: every time ratio is between two runs of this run.",
        "",
    ]


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
    lines += ["", *reused_note(fig["runs"])]
    lines += ["## Sizes", ""]
    lines += [f"- {d}: {s}" for d, s in fig["sizes"].items()]
    lines += ["", "## Every run", "", *_runs_table(fig), ""]
    lines += ["## Why each default run stopped", ""]
    for dataset, runs in fig["runs"].items():
        for name, r in runs.items():
            if not name.startswith("e"):
                lines.append(f"- {dataset} {name}: {r['stopped_because']}")
    return "\n".join(lines) + "\n"
