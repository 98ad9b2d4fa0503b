"""Conversations: checked, rendered with the tokenizer's chat template, with loss on the
assistant's tokens only.

A conversation is a list of `{"role", "content"}` messages. The template renders it to
text; the characters of each assistant turn (its content and the template's end-of-turn
marker) are found by rendering the conversation prefix by prefix, and a token carries loss
when it starts inside one of those spans. Everything else (system, user, the template's
headers) is context without loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelyard.errors import DataError

ROLES = ("system", "user", "assistant")
IGNORE = -100


@dataclass
class ChatExample:
    """One tokenised conversation: ids, labels (IGNORE off the assistant's tokens), truncation."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool


def check_messages(messages: Any, where: str) -> list[dict[str, str]]:
    """Return `messages` as a list of {role, content} dicts.

    Raises DataError naming `where` when it is not a list of objects with a known role and
    a string content.
    """
    if not isinstance(messages, list) or not messages:
        raise DataError(
            f'{where}: messages must be a non-empty JSON list of {{"role", "content"}} '
            f"objects, got {type(messages).__name__}"
        )
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise DataError(
                f"{where}: message {i} must be an object with 'role' and 'content', got {message!r}"
            )
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise DataError(
                f"{where}: message {i} has unknown role {role!r}; roles are {', '.join(ROLES)}"
            )
        if not isinstance(content, str):
            raise DataError(f"{where}: message {i} content must be a string, got {content!r}")
        out.append({"role": str(role), "content": content})
    return out


def has_assistant_turn(messages: list[dict[str, str]]) -> bool:
    """Return True when the conversation holds an assistant message."""
    return any(m["role"] == "assistant" for m in messages)


def has_empty_response(messages: list[dict[str, str]]) -> bool:
    """Return True when an assistant message is empty or only whitespace."""
    return any(m["role"] == "assistant" and not m["content"].strip() for m in messages)


def require_template(tokenizer: Any, backbone: str) -> None:
    """Raise DataError when the tokenizer has no chat template to render conversations with."""
    if not getattr(tokenizer, "chat_template", None):
        raise DataError(
            f"the tokenizer of '{backbone}' has no chat template, so conversations cannot be "
            "rendered; set generation.chat_template to a Jinja template (docs/llm.md has a "
            "ChatML one) or use a backbone whose tokenizer ships one"
        )


def render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    """Return the conversation as the chat template writes it."""
    text = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )
    return str(text)


def assistant_spans(
    tokenizer: Any, messages: list[dict[str, str]]
) -> tuple[str, list[tuple[int, int]]]:
    """Return the rendered conversation and the character spans of its assistant turns.

    Raises DataError when the template does not render a conversation as the sum of its
    prefixes (the assistant's tokens could not be told apart).
    """
    full = render(tokenizer, messages, False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:i], True) if i else ""
        through = render(tokenizer, messages[: i + 1], False)
        if not (full.startswith(through) and through.startswith(before)):
            raise DataError(
                "the chat template does not render a conversation prefix by prefix, so the "
                "assistant's tokens cannot be found; use a template where each turn is appended "
                "(set generation.chat_template)"
            )
        # the end-of-turn marker is learned (it stops generation); whitespace after it is not
        spans.append((len(before), len(through.rstrip())))
    return full, spans


def encode_chat(tokenizer: Any, messages: list[dict[str, str]], max_length: int) -> ChatExample:
    """Return the conversation tokenised, with labels only on assistant tokens, cut to `max_length`."""
    text, spans = assistant_spans(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    labels = [
        tok if any(lo <= start < hi for lo, hi in spans) and end > start else IGNORE
        for tok, (start, end) in zip(ids, enc["offset_mapping"], strict=True)
    ]
    truncated = len(ids) > max_length
    return ChatExample(ids[:max_length], labels[:max_length], truncated)


def prompt_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Return the token ids of a conversation up to where the assistant's answer starts."""
    text = render(tokenizer, messages, True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])
