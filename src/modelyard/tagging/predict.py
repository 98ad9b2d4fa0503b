"""Predictions of a token classifier: a tag and its probability for every word, and the
entities of raw text as spans with character offsets into that text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from modelyard.models.encoding import eval_batches
from modelyard.tagging.data import split_words
from modelyard.tagging.encoding import collate_pieces, word_pieces
from modelyard.tagging.metrics import entities_of


@dataclass
class WordTags:
    """The tags of one sentence's words, each tag's probability, and whether words were cut."""

    tags: list[str]
    scores: list[float]
    truncated: bool


def predict_words(
    model: Any,
    tokenizer: Any,
    tags: list[str],
    sentences: list[list[str]],
    max_length: int,
    batch_size: int = 32,
) -> list[WordTags]:
    """Return the tag of every word of every sentence, read from the word's first piece.

    Words beyond `max_length` pieces are tagged O with probability 0 and the sentence is
    marked truncated. Raises BackboneError for a tokenizer that cannot map pieces to words.
    """
    out: list[WordTags] = [WordTags([], [], False) for _ in sentences]
    todo = [i for i, s in enumerate(sentences) if s]
    if not todo:
        return out
    encoded = word_pieces(tokenizer, [sentences[i] for i in todo], max_length)
    ids = [list(x) for x in encoded["input_ids"]]
    pad = int(tokenizer.pad_token_id or 0)
    device = next(model.parameters()).device
    lengths = np.array([len(x) for x in ids], dtype=np.int64)
    model.eval()
    with torch.inference_mode():
        for index in eval_batches(lengths, batch_size):
            batch = {k: v.to(device) for k, v in collate_pieces(ids, index, pad).items()}
            probs = torch.softmax(model(**batch).logits.float(), dim=-1).cpu().numpy()
            for row, j in enumerate(index):
                out[todo[j]] = _word_tags(
                    encoded.word_ids(int(j)), probs[row], tags, len(sentences[todo[j]])
                )
    return out


def _word_tags(word_ids: list[int | None], probs: np.ndarray, tags: list[str], n: int) -> WordTags:
    labels, scores = ["O"] * n, [0.0] * n
    seen: set[int] = set()
    for position, word in enumerate(word_ids):
        if word is None or word in seen:
            continue
        seen.add(word)
        best = int(probs[position].argmax())
        labels[word], scores[word] = tags[best], round(float(probs[position][best]), 6)
    return WordTags(labels, scores, len(seen) < n)


def entity_spans(
    text: str, words: list[tuple[str, int, int]], tagged: WordTags
) -> list[dict[str, Any]]:
    """Return the entities of `text` as {label, start, end, text, score}: character offsets
    into `text` (end exclusive), the score the mean probability of the entity's word tags."""
    spans = []
    for kind, first, last in entities_of(tagged.tags):
        start, end = words[first][1], words[last][2]
        score = float(np.mean(tagged.scores[first : last + 1]))
        spans.append(
            {
                "label": kind,
                "start": start,
                "end": end,
                "text": text[start:end],
                "score": round(score, 6),
            }
        )
    return spans


def predict_entities(
    model: Any,
    tokenizer: Any,
    tags: list[str],
    texts: list[str],
    max_length: int,
    batch_size: int = 32,
) -> list[dict[str, Any]]:
    """Return, for each raw text, its `entities` (spans with character offsets), its `words`
    with their tags, and `truncated` (True when words beyond the maximum length went untagged)."""
    words = [split_words(t) for t in texts]
    tagged = predict_words(
        model, tokenizer, tags, [[w for w, _, _ in ws] for ws in words], max_length, batch_size
    )
    return [
        {
            "entities": entity_spans(text, ws, result),
            "tags": result.tags,
            "words": [w for w, _, _ in ws],
            "truncated": result.truncated,
        }
        for text, ws, result in zip(texts, words, tagged, strict=True)
    ]
