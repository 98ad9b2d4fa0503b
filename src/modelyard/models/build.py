"""Build sequence-classification models and tokenizers from local folders."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from modelyard.errors import BackboneError


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' loader chatter (new-head notices, shard lists, progress bars) for the body."""
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_tokenizer(folder: Path) -> PreTrainedTokenizerBase:
    """Return the tokenizer stored in `folder`.

    Raises BackboneError if it cannot be read, or if the folder holds no tokenizer files.
    """
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise BackboneError(f"cannot load a tokenizer from {folder}: {exc}") from None
    # without tokenizer files, transformers 5 builds one from config.json alone that knows
    # only its special tokens: every word would silently become [UNK]
    if len(tokenizer) <= len(set(tokenizer.all_special_tokens)):
        raise BackboneError(
            f"{folder} holds no tokenizer files (tokenizer.json, vocab.txt, ...): a tokenizer "
            "built without them knows only its special tokens. Save the model's tokenizer into "
            "the folder (tokenizer.save_pretrained(folder))."
        )
    return tokenizer


def build_classifier(folder: Path, labels: list[str]) -> Any:
    """Return a sequence-classification model on the backbone in `folder` with a head for `labels`."""
    id2label = dict(enumerate(labels))
    # the new head is expected to be untrained; the loader's advice about it is noise here
    try:
        with quiet_transformers():
            return AutoModelForSequenceClassification.from_pretrained(
                str(folder),
                num_labels=len(labels),
                id2label=id2label,
                label2id={label: i for i, label in id2label.items()},
                local_files_only=True,
                ignore_mismatched_sizes=True,
                use_safetensors=True,
            )
    except (OSError, ValueError) as exc:
        raise BackboneError(f"cannot load a model from {folder}: {exc}") from None


def enable_gradient_checkpointing(model: Any) -> None:
    """Turn on activation recomputation; non-reentrant, so frozen embeddings need no special care."""
    kwargs = {"use_reentrant": False}
    # transformers 5 renamed the method; older releases only have the first name
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
