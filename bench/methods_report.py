"""Summary keys and the markdown report of bench/methods.py."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from common import write_results

SST2_METHODS = ("full", "lora", "ia3", "bitfit", "linear-probe")


def _mean_spread(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fewshot_table(curves: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    """Return, per k and method, the accuracies over seeds."""
    table: dict[str, dict[str, list[float]]] = {}
    for per_k in curves["seeds"].values():
        for k, accs in per_k.items():
            for method, acc in accs.items():
                table.setdefault(k, {}).setdefault(method, []).append(acc)
    return table


def summarise(fig: dict[str, Any]) -> dict[str, Any]:
    """Return the issue's summary keys (accuracies as fractions, trainable share in percent).

    Keys whose part did not finish are left out.
    """
    out: dict[str, Any] = {}
    sst2 = fig.get("sst2", {})
    if {"full", "lora", "zeroshot"} <= set(sst2):
        out["full_accuracy"] = sst2["full"]["accuracy"]
        out["lora_accuracy"] = sst2["lora"]["accuracy"]
        out["lora_accuracy_gap"] = sst2["full"]["accuracy"] - sst2["lora"]["accuracy"]
        out["lora_trainable_pct"] = sst2["lora"]["trainable_pct"]
        zs = sst2["zeroshot"]
        out["zeroshot_accuracy"] = zs["accuracy"]
        out["zeroshot_over_majority"] = zs["accuracy"] - zs["majority"]
    few = fig.get("fewshot", {}).get("sst2")
    if few and "16" in fewshot_table(few):
        k16 = fewshot_table(few)["16"]
        diffs = [a - b for a, b in zip(k16["setfit"], k16["finetune"], strict=True)]
        out["fewshot_k16_setfit_minus_finetune"] = statistics.fmean(diffs)
    cont = fig.get("continual", {})
    if {"naive", "rehearsal", "ewc"} <= set(cont):
        out["continual_rehearsal_retention"] = cont["rehearsal"]["retention"]
        out["continual_naive_retention"] = cont["naive"]["retention"]
        out["continual_ewc_retention"] = cont["ewc"]["retention"]
    return out


def _goals(fig: dict[str, Any]) -> list[str]:
    checks = [
        (
            "LoRA within 1.0 point of full with <= 2% trainable",
            lambda f: f["lora_accuracy_gap"] <= 0.01 and f["lora_trainable_pct"] <= 2.0,
            "lora_accuracy_gap",
        ),
        (
            "zero-shot >= 20 points above the majority class",
            lambda f: f["zeroshot_over_majority"] >= 0.20,
            "zeroshot_over_majority",
        ),
        (
            "SetFit-style k=16 ahead of plain fine-tuning (SST-2)",
            lambda f: f["fewshot_k16_setfit_minus_finetune"] > 0,
            "fewshot_k16_setfit_minus_finetune",
        ),
        (
            "rehearsal keeps >= 80% of phase-1 accuracy, naive loses most",
            lambda f: (
                f["continual_rehearsal_retention"] >= 0.8 and f["continual_naive_retention"] < 0.5
            ),
            "continual_rehearsal_retention",
        ),
    ]
    lines = ["| goal | met |", "|---|---|"]
    for text, check, key in checks:
        lines.append(f"| {text} | {('yes' if check(fig) else 'no') if key in fig else 'not run'} |")
    return lines


def _sst2_lines(sst2: dict[str, Any]) -> list[str]:
    lines = [
        "| method | test accuracy | trainable % | samples/s (own run) | peak RSS MB | weights MB |",
        "|---|---|---|---|---|---|",
    ]
    for name in SST2_METHODS:
        v = sst2[name]
        lines.append(
            f"| {name} | {v['accuracy']:.4f} | {v['trainable_pct']:.3f} | {v['samples_per_s']} "
            f"| {v['peak_rss_mb']} | {v['weights_mb']} |"
        )
    zs = sst2["zeroshot"]
    lines.append(f"| zero-shot | {zs['accuracy']:.4f} | 0 | (no training) | | {zs['weights_mb']} |")
    lines += ["", f"Majority class share of the test set: {zs['majority']:.4f}."]
    return lines


def _speed_lines(speed: dict[str, Any]) -> list[str]:
    base = speed["full"]["median"]
    lines = [
        "The same 20 length-grouped batches of 32 (max length 64, bf16 autocast), every method "
        "in one process, timed in 5 interleaved rounds; medians. The per-run figures above "
        "were taken hours apart on a shared machine and are not comparable with each other.",
        "",
        "| method | train samples/s (median) | vs full | rounds |",
        "|---|---|---|---|",
    ]
    for name, v in speed.items():
        rounds = ", ".join(str(x) for x in v["all"])
        lines.append(f"| {name} | {v['median']} | {v['median'] / base:.2f}x | {rounds} |")
    return lines


def _fewshot_lines(fewshot: dict[str, Any]) -> list[str]:
    lines = []
    for dataset, curves in fewshot.items():
        lines += [
            "",
            f"### {dataset} (mean ± sd over seeds {', '.join(curves['seeds'])})",
            "",
            "| k per class | SetFit-style | plain fine-tuning | zero-shot |",
            "|---|---|---|---|",
        ]
        for k, methods in sorted(fewshot_table(curves).items(), key=lambda kv: int(kv[0])):
            cells = [
                f"{m:.4f} ± {s:.4f}"
                for m, s in (_mean_spread(methods[n]) for n in ("setfit", "finetune"))
            ]
            lines.append(f"| {k} | {cells[0]} | {cells[1]} | {curves['zeroshot']:.4f} |")
    return lines


def _adversarial_lines(adv: dict[str, Any]) -> list[str]:
    names = list(adv["plain"]["robustness"]["noise"])
    lines = [
        "| training | clean | " + " | ".join(names) + " | mean noisy |",
        "|---" * (len(names) + 3) + "|",
    ]
    for label, key in (("plain (full)", "plain"), ("FGM", "fgm")):
        r = adv[key]["robustness"]
        cells = " | ".join(f"{r['noise'][n]['accuracy']:.4f}" for n in names)
        lines.append(
            f"| {label} | {r['clean_accuracy']:.4f} | {cells} | {r['mean_noisy_accuracy']:.4f} |"
        )
    return lines


def _continual_lines(cont: dict[str, Any]) -> list[str]:
    before = cont["phase1"]["accuracy_phase1"]
    lines = [
        f"Phase-1 accuracy (World, Sports) before phase 2: {before:.4f}. 2,000 training rows per "
        "phase, one epoch each; phase 1 keeps a 200-row stratified rehearsal sample and its Fisher "
        "information; rehearsal replays the sample balanced (the default `replay: balanced`: "
        "repeated until each earlier class weighs as much as a new one).",
        "",
        "| strategy | phase-1 acc. after | retention | phase-2 acc. | all 4 classes |",
        "|---|---|---|---|---|",
    ]
    for name in ("naive", "rehearsal", "ewc"):
        v = cont[name]
        lines.append(
            f"| {name} | {v['accuracy_phase1_after']:.4f} | {v['retention']:.4f} | "
            f"{v['accuracy_phase2']:.4f} | {v['accuracy_all']:.4f} |"
        )
    return lines


def write_report(results: Path, name: str, fig: dict[str, Any]) -> None:
    """Write `<name>.json` and `<name>.md` with every figure and the goals."""
    lines = ["# Training-methods benchmark", "", f"Machine: {fig['machine']}", ""]
    if fig.get("quick"):
        lines += ["**Quick mode: tiny slices, figures only check the script.**", ""]
    lines += ["## Goals", "", *_goals(fig), ""]
    if "earlier_figures" in fig:
        earlier = fig["earlier_figures"]
        lines += [
            f"Figures of these variants come from an earlier run: {earlier['note']}: "
            + ", ".join(f"`{k}`" for k in earlier["keys"])
            + ". Their samples/s are not comparable with this machine's.",
            "",
        ]
    sections = (
        ("sst2", "## SST-2: 8,000-row sample, 2 epochs, max length 64, batch 32", _sst2_lines),
        ("speed", "## Training speed, side by side", _speed_lines),
        ("fewshot", "## Few-shot", _fewshot_lines),
        (
            "adversarial",
            "## Adversarial training (SST-2 test, noise rate 0.1, seed 0)",
            _adversarial_lines,
        ),
        ("continual", "## Continual learning: AG News in two phases", _continual_lines),
    )
    for key, title, render in sections:
        if key in fig:
            try:
                lines += [title, "", *render(fig[key]), ""]
            except KeyError as exc:
                lines += [title, "", f"Incomplete (missing {exc}); see the JSON.", ""]
    if fig.get("errors"):
        lines += [
            "## Parts that failed",
            "",
            *(f"- {k}: {v[-300:]}" for k, v in fig["errors"].items()),
            "",
        ]
    lines += ["## Summary keys", "", "```json", *_summary_json(fig), "```", ""]
    write_results(results, name, fig, "\n".join(lines))


def _summary_json(fig: dict[str, Any]) -> list[str]:
    import json

    return json.dumps(summarise(fig), indent=2).splitlines()
