"""Markdown report and model card of a token-classification run."""

from __future__ import annotations

from typing import Any

from modelyard.recipe import Recipe


def entity_table(metrics: dict[str, Any]) -> str:
    """Return a markdown table of entity-level precision, recall and F1: overall and per type."""
    lines = ["| entity type | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for kind, v in sorted(metrics.get("per_type", {}).items()):
        lines.append(
            f"| {kind} | {v['precision']:.4f} | {v['recall']:.4f} | {v['f1']:.4f} | {v['support']} |"
        )
    lines.append(
        f"| **all (micro)** | {metrics['precision']:.4f} | {metrics['recall']:.4f} | "
        f"{metrics['f1']:.4f} | {metrics['entities']} |"
    )
    return "\n".join(lines)


def tagging_report(
    recipe: Recipe, metrics: dict[str, Any], training: dict[str, Any], data: dict[str, Any]
) -> str:
    """Return the run's report: entity figures on the held-out split, training, data counts."""
    lines = [
        f"# {recipe.run.name}: token classification on {recipe.model.backbone}",
        "",
        f"Held-out split: {metrics.get('evaluated_on')} ({metrics['sentences']} sentences); "
        "entity-level figures (seqeval: type and extent must both match).",
        "",
        entity_table(metrics),
        "",
        f"- entity macro-F1 {metrics['macro_f1']:.4f}; word-tag accuracy "
        f"{metrics['token_accuracy']:.4f}; truncated sentences {metrics['truncated_sentences']}",
        "",
        "## Training",
        f"- method {recipe.train.method}, {training['steps']} steps, {training['epochs_run']} "
        f"epochs, {training['samples_per_s']} sentences/s ({training['precision']} on "
        f"{training['device']})",
        f"- {training.get('stopped_because') or training.get('stop_reason')}",
        f"- trainable parameters {training['trainable_parameters']} of {training['parameters']}",
        f"- peak RSS {training['peak_rss_mb']} MB",
        "",
        "## Data",
        *[f"- {k}: {v}" for k, v in data.items()],
    ]
    return "\n".join(lines) + "\n"


def tagging_card(recipe: Recipe, metrics: dict[str, Any], data: dict[str, Any]) -> str:
    """Return the model card: what the model tags, how well, and its limits."""
    tags = ", ".join(data.get("tags", []))
    return "\n".join(
        [
            f"# {recipe.run.name}",
            "",
            f"A token classifier (named entities) fine-tuned from `{recipe.model.backbone}` with "
            f"`{recipe.train.method}`. Tags: {tags}.",
            "",
            f"## Results ({metrics.get('evaluated_on')} split)",
            "",
            entity_table(metrics),
            "",
            "## Limits",
            "",
            f"- Inputs longer than {recipe.model.max_length} word pieces are cut; the words past "
            "the cut are tagged O.",
            "- Raw text is split into words at whitespace, with punctuation at word edges split "
            "off; data tokenised another way can tag differently.",
            "",
        ]
    )
