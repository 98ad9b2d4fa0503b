"""What each task trains, and which kind of backbone it needs, as plain data.

The recipe checks a task against its backbone when it loads, so a run that pairs a
classifier with a decoder (or chat fine-tuning with an encoder) fails before any work.
Registered backbone names are looked up in BACKBONE_KINDS; a local folder's kind is read
from its config.json (architectures and model_type), never by importing a model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, get_args

Task = Literal[
    "classification",
    "language-modeling",
    "generation",
    "token-classification",
    "multi-label",
    "regression",
]
BackboneKind = Literal["encoder", "decoder"]

TASKS: tuple[Task, ...] = get_args(Task)

# which backbone kinds each task can train
TASK_KINDS: dict[str, tuple[BackboneKind, ...]] = {
    "classification": ("encoder",),
    "language-modeling": ("encoder", "decoder"),  # masked LM for encoders, causal LM for decoders
    "generation": ("decoder",),
    "token-classification": ("encoder",),
    "multi-label": ("encoder",),
    "regression": ("encoder",),
}

# the training methods each task other than classification can use (classification: every method)
TASK_METHODS: dict[str, tuple[str, ...]] = {
    "language-modeling": ("full", "lora", "ia3"),
    "generation": ("full", "lora", "ia3"),
    "token-classification": ("full", "lora"),
    "multi-label": ("full", "lora"),
    "regression": ("full", "lora"),
}
# encoder tasks with a head of their own beside classification (token tags, label sets, numbers)
HEAD_TASKS = ("token-classification", "multi-label", "regression")
# tasks that train a language model (they early-stop on the dev loss)
LM_TASKS = ("language-modeling", "generation")

# the kind of every registered backbone (modelyard.models.backbones registers the same names)
BACKBONE_KINDS: dict[str, BackboneKind] = {
    "minilm-l6": "encoder",
    "smollm2-135m": "decoder",
}

_DECODER_TYPES = frozenset(
    {
        "llama",
        "mistral",
        "mixtral",
        "qwen2",
        "qwen3",
        "gemma",
        "gemma2",
        "gemma3_text",
        "phi",
        "phi3",
        "gpt2",
        "gpt_neox",
        "gptj",
        "opt",
        "falcon",
        "bloom",
        "olmo",
        "olmo2",
        "smollm3",
        "granite",
        "stablelm",
    }
)
_ENCODER_TYPES = frozenset(
    {
        "bert",
        "roberta",
        "xlm-roberta",
        "distilbert",
        "deberta",
        "deberta-v2",
        "electra",
        "albert",
        "mpnet",
        "camembert",
        "modernbert",
    }
)


def kind_from_config(config: dict[str, object]) -> BackboneKind | None:
    """Return the kind a Hugging Face config.json describes, or None when it cannot tell."""
    architectures = config.get("architectures") or []
    names = [str(a) for a in architectures] if isinstance(architectures, list) else []
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in names):
        return "decoder"
    model_type = str(config.get("model_type", ""))
    if model_type in _DECODER_TYPES:
        return "decoder"
    if model_type in _ENCODER_TYPES or any(a.endswith("ForMaskedLM") for a in names):
        return "encoder"
    return None


def folder_kind(folder: Path) -> BackboneKind | None:
    """Return the kind of the model folder's config.json, or None when unreadable or unknown."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return kind_from_config(config) if isinstance(config, dict) else None


def backbone_kind(backbone: str) -> BackboneKind | None:
    """Return the kind of a registered backbone name or a local folder; None when unknown."""
    if backbone in BACKBONE_KINDS:
        return BACKBONE_KINDS[backbone]
    path = Path(backbone).expanduser()
    return folder_kind(path) if path.is_dir() else None


def task_backbone_problem(task: str, backbone: str) -> str | None:
    """Return why `task` cannot train `backbone` (naming both), or None when they fit or the kind is unknown."""
    kind = backbone_kind(backbone)
    allowed = TASK_KINDS.get(task, ())
    if kind is None or kind in allowed:
        return None
    fits = _article(" or ".join(allowed))
    example = "smollm2-135m" if "decoder" in allowed else "minilm-l6"
    return (
        f"task '{task}' needs {fits} backbone, but model.backbone '{backbone}' is "
        f"{_article(kind)}; pick {fits} backbone (e.g. {example}) or another task"
    )


def _article(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"
