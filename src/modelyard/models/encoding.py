"""Tokenised datasets, length-grouped batch order and dynamic padding.

Padding is most of the CPU cost on short texts, so batches hold texts of similar length
and are padded only to their own longest member.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

# batches per length-sorted mega-batch: a batch holds sentences of similar length among
# 50 batches' worth of random ones
MEGABATCH_FACTOR = 50


class LabelledTexts(Protocol):
    """Texts (with optional second texts) and their label ids, such as a `modelyard.data.Split`."""

    @property
    def texts(self) -> list[str]: ...
    @property
    def pairs(self) -> list[str] | None: ...
    @property
    def labels(self) -> Sequence[int]: ...


@dataclass
class Encoded:
    """Token ids of a split, unpadded, with labels and a count of truncated texts."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    labels: list[int]
    truncated: int

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> np.ndarray:
        """Return the token length of every example."""
        return np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64, count=len(self))


def encode_texts(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], pairs: list[str] | None, max_length: int
) -> tuple[list[list[int]], list[list[int]] | None, list[bool]]:
    """Return token ids, token type ids (or None) and, per text, whether it was truncated."""
    if not texts:
        return [], None, []
    full = tokenizer(texts, pairs, truncation=False, add_special_tokens=True, verbose=False)
    ids = full["input_ids"]
    truncated = [len(seq) > max_length for seq in ids]
    if any(truncated):
        enc = tokenizer(texts, pairs, truncation=True, max_length=max_length)
        ids = enc["input_ids"]
        types = enc.get("token_type_ids")
    else:
        types = full.get("token_type_ids")
    return ids, types, truncated


def encode_split(
    tokenizer: PreTrainedTokenizerBase, split: LabelledTexts, max_length: int
) -> Encoded:
    """Return the split tokenised to at most `max_length` tokens per example."""
    ids, types, truncated = encode_texts(tokenizer, split.texts, split.pairs, max_length)
    return Encoded(ids, types, list(split.labels), sum(truncated))


def epoch_batches(
    lengths: np.ndarray,
    batch_size: int,
    seed: int,
    epoch: int,
    group_by_length: bool,
    window: int = MEGABATCH_FACTOR,
) -> list[np.ndarray]:
    """Return the batches (index arrays) of one epoch, the same for the same seed and epoch.

    With grouping, indices are shuffled, cut into mega-batches of `window` batches, sorted by
    length inside each, cut into batches, and the batch order is shuffled again.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    if not group_by_length:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    mega = batch_size * window
    batches: list[np.ndarray] = []
    for start in range(0, len(order), mega):
        chunk = order[start : start + mega]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


# a CPU forward call's fixed cost, in tokens of padding: a batch of 32 short texts is run as
# a few calls of similar lengths when that computes fewer tokens (SST-2 test, batch 32: 52%
# of the tokens of one padded call are real, about 80% once cut); see `length_groups`
CALL_TOKENS = 64


def eval_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Return batches for inference, sorted by length so padding is minimal."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def length_groups(lengths: np.ndarray, batch_size: int, call_tokens: int) -> list[np.ndarray]:
    """Return inference batches of at most `batch_size` rows, each batch of `eval_batches` cut
    into runs of similar length where that computes fewer padded tokens.

    A batch's cost is taken as its rows times its longest row (padding computes like real
    tokens) plus `call_tokens` for each call (a call's fixed cost, in tokens); the cuts
    minimise that sum exactly (a dynamic programme over the sorted lengths).
    """
    groups: list[np.ndarray] = []
    for batch in eval_batches(lengths, batch_size):
        longest = lengths[batch]  # sorted, longest first
        n = len(batch)
        cost = [0.0] + [float("inf")] * n
        start = [0] * (n + 1)
        for end in range(1, n + 1):
            for first in range(end):
                total = cost[first] + (end - first) * float(longest[first]) + call_tokens
                if total < cost[end]:
                    cost[end], start[end] = total, first
        cuts, end = [], n
        while end > 0:
            cuts.append(batch[start[end] : end])
            end = start[end]
        groups.extend(reversed(cuts))
    return groups


def collate(
    input_ids: list[list[int]],
    token_type_ids: list[list[int]] | None,
    index: np.ndarray,
    pad_id: int,
) -> dict[str, torch.Tensor]:
    """Return padded `input_ids`, `attention_mask` (and `token_type_ids`) for the rows in `index`."""
    rows = [input_ids[i] for i in index]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for j, row in enumerate(rows):
        ids[j, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[j, : len(row)] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    if token_type_ids is not None:
        types = torch.zeros((len(rows), width), dtype=torch.long)
        for j, i in enumerate(index):
            types[j, : len(token_type_ids[i])] = torch.tensor(token_type_ids[i], dtype=torch.long)
        batch["token_type_ids"] = types
    return batch
