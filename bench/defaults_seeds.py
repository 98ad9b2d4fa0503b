"""The defaults against the sweep over several run seeds (bench/defaults.py --seeds).

One seed's comparison picks the best of four fixed lengths on the test set itself, so it
favours the sweep; over seeds, the fixed length is chosen by its mean test accuracy and the
defaults' mean is compared with it, with the spread of the per-seed differences.
"""

from __future__ import annotations

import statistics
from typing import Any


def seeds_report(
    by_seed: dict[int, dict[str, dict[str, Any]]], sweep: tuple[int, ...]
) -> dict[str, Any]:
    """Return per-dataset figures over seeds: mean accuracies, the best fixed length by mean,
    the defaults' mean minus it, the per-seed differences and their standard error."""
    seeds = sorted(by_seed)
    datasets = list(by_seed[seeds[0]])
    fig: dict[str, Any] = {"seeds": seeds, "sweep_epochs": list(sweep), "runs": by_seed}
    for d in datasets:
        names = ["defaults", *(f"e{n}" for n in sweep)]
        acc = {n: [by_seed[s][d][n]["accuracy"] for s in seeds] for n in names}
        secs = {n: [by_seed[s][d][n]["loop_seconds"] for s in seeds] for n in names}
        mean = {n: statistics.fmean(v) for n, v in acc.items()}
        best = max((mean[f"e{n}"], -n, f"e{n}") for n in sweep)[2]
        diffs = [a - b for a, b in zip(acc["defaults"], acc[best], strict=True)]
        se = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else None
        fig[f"mean_accuracy_{d}"] = {n: round(m, 4) for n, m in mean.items()}
        fig[f"best_sweep_by_mean_{d}"] = best
        fig[f"defaults_minus_best_sweep_mean_{d}"] = round(statistics.fmean(diffs), 4)
        fig[f"defaults_minus_best_sweep_per_seed_{d}"] = [round(x, 4) for x in diffs]
        fig[f"defaults_minus_best_sweep_se_{d}"] = None if se is None else round(se, 4)
        fig[f"defaults_time_vs_best_sweep_mean_{d}"] = round(
            statistics.fmean(secs["defaults"]) / statistics.fmean(secs[best]), 3
        )
    return fig


def markdown(fig: dict[str, Any]) -> str:
    """Return the seeds report as markdown."""
    lines = [
        "# Default stopping rule against fixed epoch counts, over run seeds",
        "",
        f"Seeds {fig['seeds']}, {fig['rows']} training rows per set; the fixed length is chosen "
        "by its mean test accuracy over the seeds. Machine: "
        f"{fig['machine'].get('cpu_model')}, load at the end {fig['uptime_load_at_end']}.",
        "",
        "| set | defaults mean | best fixed (by mean) | its mean | defaults - best (mean) | "
        "per seed | SE | time ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key in fig:
        if not key.startswith("best_sweep_by_mean_"):
            continue
        d = key.removeprefix("best_sweep_by_mean_")
        mean, best = fig[f"mean_accuracy_{d}"], fig[key]
        lines.append(
            f"| {d} | {mean['defaults']} | {best} | {mean[best]} | "
            f"{fig[f'defaults_minus_best_sweep_mean_{d}']} | "
            f"{fig[f'defaults_minus_best_sweep_per_seed_{d}']} | "
            f"{fig[f'defaults_minus_best_sweep_se_{d}']} | "
            f"{fig[f'defaults_time_vs_best_sweep_mean_{d}']} |"
        )
    lines.append("")
    from defaults_report import reused_note

    for seed, by_set in fig["runs"].items():
        lines += [f"Seed {seed}: " + x if x else x for x in reused_note(by_set)]
    return "\n".join(lines)
