"""Markdown report and model card of a language-model run."""

from __future__ import annotations

from typing import Any

from modelyard.recipe import Recipe

_FIGURES = ("loss", "perplexity", "rougeL", "exact_match", "generation_tokens_per_s")


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def metrics_table(metrics: dict[str, Any]) -> str:
    """Return a markdown table of the held-out figures before and after training."""
    before, after = metrics.get("before") or {}, metrics.get("after") or {}
    lines = ["| metric | before | after |", "|---|---|---|"]
    for key in _FIGURES:
        if key in after:
            lines.append(f"| {key} | {_fmt(before.get(key, '-'))} | {_fmt(after[key])} |")
    return "\n".join(lines)


def samples_markdown(samples: list[dict[str, str]]) -> str:
    """Return sample generations as markdown, each with its prompt and reference."""
    parts = []
    for i, s in enumerate(samples, start=1):
        parts.append(
            f"**{i}. prompt:** {s['prompt'][:500]}\n\n- reference: {s['reference'][:500]}\n"
            f"- generated: {s['generated'][:500]}\n"
        )
    return "\n".join(parts)


def lm_report(
    recipe: Recipe, metrics: dict[str, Any], training: dict[str, Any], data: dict[str, Any]
) -> str:
    """Return the run's report: held-out figures, training speed and memory, data counts, samples."""
    lines = [
        f"# {recipe.run.name}: {recipe.task} on {recipe.model.backbone}",
        "",
        f"Held-out split: {metrics.get('evaluated_on')}",
        "",
        metrics_table(metrics),
        "",
        "## Training",
        f"- method {training.get('method', recipe.train.method)}, "
        f"{training['steps']} steps, {training['train_tokens']} tokens at "
        f"{training['tokens_per_s']} tokens/s ({training['precision']} on {training['device']}), "
        f"packing {training['packing']}",
        f"- trainable parameters {training['trainable_parameters']} of {training['parameters']}",
        f"- peak RSS {training['peak_rss_mb']} MB",
        "",
        "## Data",
        *[f"- {k}: {v}" for k, v in data.items() if k != "files"],
    ]
    samples = (metrics.get("after") or {}).get("samples") or []
    if samples:
        lines += ["", "## Sample generations (after training)", "", samples_markdown(samples)]
    return "\n".join(lines) + "\n"


def lm_model_card(
    recipe: Recipe,
    spec: Any,
    metrics: dict[str, Any],
    training: dict[str, Any],
    data: dict[str, Any],
) -> str:
    """Return MODEL_CARD.md of a language-model run: what it is, how it was trained, how it scores."""
    objective = "causal LM" if spec.kind == "decoder" else "masked LM"
    purpose = (
        "instruction following (chat), loss on the assistant's tokens only"
        if spec.is_chat
        else f"continued pre-training ({objective}) on domain text"
    )
    return "\n".join(
        [
            f"# Model card: {recipe.run.name}",
            "",
            "## Model",
            f"- backbone: `{recipe.model.backbone}` ({spec.kind}); task `{recipe.task}`: {purpose}",
            f"- method: {recipe.train.method}; context {spec.max_length} tokens; packing {spec.packing}",
            f"- trained {training['steps']} steps on {training['train_tokens']} tokens, seed {recipe.run.seed}",
            "",
            "## Data",
            f"- files: {', '.join(data.get('files', {})) or '-'}",
            f"- split sizes: {data.get('split_sizes')}",
            "",
            "## Held-out evaluation",
            metrics_table(metrics),
            "",
            "## Limitations",
            "- A small model: answers can be wrong, made up or off-topic; check them before use.",
            "- Figures are from the held-out split named above and may not transfer to other text.",
            "",
        ]
    )
