"""Turn documents and conversations into training examples, counting what had to be cut."""

from __future__ import annotations

from typing import Any

from modelyard.generation.chat import IGNORE, encode_chat
from modelyard.generation.packing import Example


def causal_examples(
    tokenizer: Any, docs: list[str], max_length: int, counts: dict[str, int]
) -> list[Example]:
    """Return causal-LM examples: each document's tokens plus end-of-text, in `max_length` pieces.

    A document longer than the context is cut into consecutive pieces (counted in
    `counts["documents_split"]`); no token is dropped.
    """
    if not docs:
        return []
    eos = tokenizer.eos_token_id
    encoded = tokenizer(docs, add_special_tokens=True, verbose=False)["input_ids"]
    out: list[Example] = []
    for ids in encoded:
        ids = list(ids) + ([eos] if eos is not None else [])
        if len(ids) > max_length:
            counts["documents_split"] = counts.get("documents_split", 0) + 1
        out.extend(
            Example(ids[i : i + max_length], ids[i : i + max_length])
            for i in range(0, len(ids), max_length)
        )
    return out


def masked_examples(
    tokenizer: Any, docs: list[str], max_length: int, counts: dict[str, int]
) -> list[Example]:
    """Return masked-LM examples: each document in pieces of `max_length` tokens with [CLS]/[SEP].

    Labels are the ids themselves; which tokens are masked is drawn at every step.
    """
    head = [t for t in (tokenizer.cls_token_id,) if t is not None]
    tail = [t for t in (tokenizer.sep_token_id,) if t is not None]
    inner = max_length - len(head) - len(tail)
    if not docs:
        return []
    encoded = tokenizer(docs, add_special_tokens=False, verbose=False)["input_ids"]
    out = []
    for ids in encoded:
        if len(ids) > inner:
            counts["documents_split"] = counts.get("documents_split", 0) + 1
        for i in range(0, max(len(ids), 1), inner):
            piece = [*head, *ids[i : i + inner], *tail]
            out.append(Example(piece, piece))
    return out


def chat_examples(
    tokenizer: Any,
    conversations: list[list[dict[str, str]]],
    max_length: int,
    counts: dict[str, int],
) -> list[Example]:
    """Return fine-tuning examples (loss on assistant tokens only), cut to `max_length`.

    A conversation longer than the context is truncated and counted (`truncated`); one left
    with no assistant token after the cut is dropped and counted (`dropped_truncated_answer`).
    """
    out = []
    for messages in conversations:
        chat = encode_chat(tokenizer, messages, max_length)
        if chat.truncated:
            counts["truncated"] = counts.get("truncated", 0) + 1
        if all(label == IGNORE for label in chat.labels[1:]):
            counts["dropped_truncated_answer"] = counts.get("dropped_truncated_answer", 0) + 1
            continue
        out.append(Example(chat.input_ids, chat.labels))
    return out
