"""A token classifier as an ONNX graph (`onnx-token-classifier`, what `modelyard compress`
writes for a token-classification run), answering like the PyTorch model it was exported from,
so the word tags, entity spans and metrics of a run are computed by the same code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from modelyard.models.onnx_runtime import make_session

ONNX_TOKEN_CLASSIFIER = "onnx-token-classifier"


class OnnxTokenModel:
    """An ONNX Runtime session over a graph with a per-piece `logits` output.

    Called with the tensors `collate_pieces` makes, it returns an object whose `logits` is a
    CPU tensor of shape (batch, pieces, tags), as a transformers token classifier does.
    """

    def __init__(self, graph: Path | bytes, threads: int | None = None) -> None:
        self.session = make_session(graph, threads)
        self.inputs = {i.name for i in self.session.get_inputs()}

    def eval(self) -> OnnxTokenModel:
        """Return itself: a graph has no training mode."""
        return self

    def parameters(self) -> Iterator[torch.Tensor]:
        """Yield one empty CPU tensor: callers read the device the inputs go to from it."""
        yield torch.zeros(0)

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> Any:
        feed = {
            "input_ids": input_ids.cpu().numpy(),
            "attention_mask": attention_mask.cpu().numpy(),
            "token_type_ids": np.zeros_like(input_ids.cpu().numpy()),
        }
        logits = self.session.run(["logits"], {k: v for k, v in feed.items() if k in self.inputs})
        return SimpleNamespace(logits=torch.from_numpy(logits[0]))
