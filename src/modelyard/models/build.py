"""Build sequence-classification models and tokenizers from local folders."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerBase

from modelyard.errors import BackboneError


def load_tokenizer(folder: Path) -> PreTrainedTokenizerBase:
    """Return the tokenizer stored in `folder`; raise BackboneError if it cannot be read."""
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise BackboneError(f"cannot load a tokenizer from {folder}: {exc}") from None


def build_classifier(folder: Path, labels: list[str]) -> Any:
    """Return a sequence-classification model on the backbone in `folder` with a head for `labels`."""
    id2label = dict(enumerate(labels))
    # the new head is expected to be untrained; silence the loader's advice about it
    logger = logging.getLogger("transformers.modeling_utils")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            str(folder),
            num_labels=len(labels),
            id2label=id2label,
            label2id={label: i for i, label in id2label.items()},
            local_files_only=True,
            ignore_mismatched_sizes=True,
        )
    except (OSError, ValueError) as exc:
        raise BackboneError(f"cannot load a model from {folder}: {exc}") from None
    finally:
        logger.setLevel(previous)
