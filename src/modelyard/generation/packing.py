"""Tokenised language-model data, and packing examples into fixed-length blocks.

Packing places whole examples into blocks of at most `max_length` tokens (best fit,
longest first), so padding almost vanishes. Each example keeps its own position ids
(0, 1, ...) and the first token of each carries no loss; transformers reads restarting
position ids, with no attention mask, as separate sequences, so no example attends to
another. Padding is one more such sequence, without loss.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np
import torch

IGNORE = -100


@dataclass
class Example:
    """One training example: token ids and labels (IGNORE where no loss is taken)."""

    input_ids: list[int]
    labels: list[int]


@dataclass
class LMData:
    """Rows ready for the loop: each a single example or a packed block of several."""

    rows: list[list[Example]]
    counts: dict[str, int] = field(default_factory=dict)
    _per_row: float | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.rows)

    def lengths(self) -> np.ndarray:
        """Return the real (non-padding) token count of every row."""
        return np.fromiter(
            (sum(len(e.input_ids) for e in row) for row in self.rows), np.int64, len(self.rows)
        )

    def loss_tokens(self) -> int:
        """Return how many tokens carry loss over all rows (targets after the causal shift)."""
        return sum(sum(t != IGNORE for t in e.labels[1:]) for row in self.rows for e in row)

    def loss_tokens_per_row(self) -> float:
        """Return the average number of loss-carrying tokens a row holds (counted once)."""
        if self._per_row is None:
            self._per_row = self.loss_tokens() / max(len(self.rows), 1)
        return self._per_row


def pack(examples: list[Example], max_length: int) -> list[list[Example]]:
    """Return the examples grouped into blocks of at most `max_length` tokens (best fit decreasing)."""
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i].input_ids))
    free: list[tuple[int, int]] = []  # (room left, block), sorted
    blocks: list[list[Example]] = []
    for i in order:
        size = len(examples[i].input_ids)
        at = bisect.bisect_left(free, (size, -1))
        if at < len(free):
            room, block = free.pop(at)
        else:
            room, block = max_length, len(blocks)
            blocks.append([])
        blocks[block].append(examples[i])
        if room - size > 0:
            bisect.insort(free, (room - size, block))
    return blocks


def as_rows(examples: list[Example], max_length: int, packing: bool) -> LMData:
    """Return the examples as loop rows: packed blocks, or one example per row."""
    rows = pack(examples, max_length) if packing else [[e] for e in examples]
    return LMData(rows)


def collate_rows(rows: list[list[Example]], pad_id: int) -> dict[str, torch.Tensor]:
    """Return input_ids, position_ids and labels for the rows, padded to the longest.

    Position ids restart at every example (and at the padding), labels are IGNORE at each
    example's first token and on padding, so nothing is learned across examples.
    """
    width = max(sum(len(e.input_ids) for e in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        at = 0
        for example in row:
            n = len(example.input_ids)
            ids[r, at : at + n] = torch.tensor(example.input_ids)
            labels[r, at : at + n] = torch.tensor(example.labels)
            labels[r, at] = IGNORE  # never predicted from the previous example
            positions[r, at : at + n] = torch.arange(n)
            at += n
        positions[r, at:] = torch.arange(width - at)
    return {"input_ids": ids, "position_ids": positions, "labels": labels}
