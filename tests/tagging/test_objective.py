"""The token-classification training loss: every labelled piece weighs the same, whichever
batch (of short or of long sentences) it lands in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from modelyard.models import load_tokenizer
from modelyard.tagging.data import Sentence
from modelyard.tagging.encoding import IGNORE, encode_sentences
from modelyard.tagging.model import build_tagger
from modelyard.tagging.objective import TokenObjective

TAGS = ["O", "B-LOC", "B-NUM", "B-PER", "I-PER"]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def setup(tiny_backbone: Path) -> tuple[torch.nn.Module, TokenObjective, object]:
    """The tiny tagger in eval mode (no dropout), its objective, and sentences of 1 to 8 words."""
    tokenizer = load_tokenizer(tiny_backbone)
    torch.manual_seed(0)
    model = build_tagger(tiny_backbone, TAGS).eval()
    sentences = [
        Sentence(["parcel"], ["B-LOC"]),
        Sentence(["42"], ["B-NUM"]),
        Sentence(["the", "courier"], ["O", "B-LOC"]),
        Sentence(
            ["my", "password", "login", "is", "not", "the", "parcel", "17"],
            ["O", "B-PER", "I-PER", "O", "O", "O", "B-LOC", "B-NUM"],
        ),
        Sentence(
            ["please", "help", "with", "the", "delivery", "of", "my", "package"],
            ["O", "O", "O", "O", "B-LOC", "O", "O", "B-LOC"],
        ),
    ]
    data = encode_sentences(tokenizer, sentences, TAGS, 32)
    return model, TokenObjective(int(tokenizer.pad_token_id), "macro_f1", TAGS, 4), data


def _per_piece(model: torch.nn.Module, objective: TokenObjective, data: object) -> torch.Tensor:
    """Return the cross-entropy of every labelled piece, sentence by sentence, in order."""
    losses = []
    with torch.no_grad():
        for i in range(len(data)):  # type: ignore[arg-type]
            batch = objective._batch(data, np.array([i]), CPU)  # type: ignore[arg-type]
            labels = batch.pop("labels")[0]
            logits = model(**batch).logits[0].float()
            keep = labels != IGNORE
            losses.append(
                torch.nn.functional.cross_entropy(logits[keep], labels[keep], reduction="none")
            )
    return torch.cat(losses)


def test_labelled_pieces_are_counted_per_sentence(setup: tuple) -> None:
    _, _, data = setup
    # 1 + 1 + 2 + 8 + 8 words, each with one labelled (first) piece
    assert data.labelled_per_sentence == pytest.approx(20 / 5)


def test_a_batch_of_short_sentences_does_not_weigh_its_pieces_more(setup: tuple) -> None:
    model, objective, data = setup
    short, long = np.array([0, 1, 2]), np.array([3, 4])
    with torch.no_grad():
        both = objective.loss(model, data, np.arange(5), CPU, None)
        parts = [objective.loss(model, data, b, CPU, None) for b in (short, long)]
    # the two batches' losses, weighted by their sentences, add up to the whole one's ...
    assert float(parts[0] * 3 + parts[1] * 2) == pytest.approx(float(both * 5), rel=1e-5)
    # ... which is the plain mean over all labelled pieces
    assert float(both) == pytest.approx(float(_per_piece(model, objective, data).mean()), rel=1e-5)
    # a per-batch mean would give the short batch's 4 pieces the weight of the long one's 16
    pieces = _per_piece(model, objective, data)
    assert float(parts[0]) == pytest.approx(float(pieces[:4].sum() / (3 * 4.0)), rel=1e-5)


def test_a_batch_without_labelled_pieces_has_zero_loss_and_a_gradient(
    setup: tuple, tiny_backbone: Path
) -> None:
    _, objective, _ = setup
    tokenizer = load_tokenizer(tiny_backbone)
    torch.manual_seed(0)
    model = build_tagger(tiny_backbone, TAGS)
    data = encode_sentences(tokenizer, [Sentence(["the", "parcel"], ["O", "B-LOC"])], TAGS, 32)
    data.labels[0] = [IGNORE] * len(data.labels[0])  # e.g. every word cut by the maximum length
    loss = objective.loss(model, data, np.array([0]), CPU, None)
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
