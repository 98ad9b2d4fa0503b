"""Headline figures and the markdown report of bench/llm_train.py."""

from __future__ import annotations

from typing import Any

KEYS = {
    "clm": ("clm_ppl_before", "clm_ppl_after", "clm_ppl_reduction"),
    "mlm": ("mlm_downstream_gain", "mlm_downstream_gain_ci95", "accuracy_with", "accuracy_without"),
    "sft": ("sft_eval_loss_before", "sft_eval_loss_after", "sft_rougeL_before", "sft_rougeL_after"),
    "speed": (
        "sft_tokens_per_s_ratio_vs_trl",
        "modelyard_tokens_per_s",
        "trl_tokens_per_s",
        "modelyard_peak_rss_mb",
        "trl_peak_rss_mb",
        "modelyard_mfu",
        "trl_mfu",
    ),
}
GOALS = {
    "clm_ppl_reduction": ("at least 30% lower perplexity", lambda v: v >= 0.30),
    "sft_tokens_per_s_ratio_vs_trl": ("at least 1.5x trl's tokens/s", lambda v: v >= 1.5),
}


def headline(parts: dict[str, Any]) -> dict[str, Any]:
    """Return the named figures of every part that ran."""
    out: dict[str, Any] = {}
    for part, keys in KEYS.items():
        for key in keys:
            if part in parts and key in parts[part]:
                out[key] = parts[part][key]
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def markdown(figures: dict[str, Any]) -> str:
    """Return the report: machine, headline figures with goals, and per-part details."""
    m = figures["machine"]
    head = figures["headline"]
    lines = [
        "# bench/llm_train" + (" (quick)" if figures["quick"] else ""),
        "",
        f"Machine: {m['cpu_model']} ({', '.join(m['cpu_isa'])}), {m['cpus']} threads, torch {m['torch']}, "
        f"{m['date']}; load average at start {figures['load_start']}, at end {figures['load_end']} (shared machine).",
        "",
        "| figure | value | goal |",
        "|---|---|---|",
    ]
    for key, value in head.items():
        goal = ""
        if key in GOALS:
            text, test = GOALS[key]
            goal = f"{text}: {'met' if test(value) else 'not met'}"
        lines.append(f"| {key} | {_fmt(value)} | {goal} |")
    sft = figures["parts"].get("sft")
    if sft:
        loss_ok = sft["sft_eval_loss_after"] < sft["sft_eval_loss_before"]
        rouge_ok = sft["sft_rougeL_after"] > sft["sft_rougeL_before"]
        lines += [
            "",
            f"SFT goal (loss down and ROUGE-L up): {'met' if loss_ok and rouge_ok else 'not met'}.",
        ]
    lines += ["", "Sizes: " + ", ".join(f"{p} {v}" for p, v in figures["sizes"].items()), ""]
    for part, data in figures["parts"].items():
        shown = {k: v for k, v in data.items() if k not in {"samples", "runs", "data_report"}}
        lines += [f"## {part}", "", *[f"- {k}: {_fmt(v)}" for k, v in shown.items()], ""]
        if part == "speed":
            for side, runs in data["runs"].items():
                lines.append(
                    f"- {side} runs: "
                    + "; ".join(
                        f"{r['tokens_per_s']} tok/s, {r['peak_rss_mb']} MB, load {r['load']}"
                        for r in runs
                    )
                )
            lines.append("")
        for s in data.get("samples", []):
            lines += [
                f"> **prompt:** {s['prompt'][:300]}",
                ">",
                f"> **reference:** {s['reference'][:300]}",
                ">",
                f"> **generated:** {s['generated'][:300]}",
                "",
            ]
    return "\n".join(lines) + "\n"
