"""Chat templating: assistant-only loss masks, and every malformed conversation."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.errors import DataError
from modelyard.generation.chat import (
    IGNORE,
    assistant_spans,
    check_messages,
    encode_chat,
    require_template,
)
from modelyard.models import load_tokenizer

CONVO = [
    {"role": "system", "content": "be brief."},
    {"role": "user", "content": "what colour is the cat?"},
    {"role": "assistant", "content": "the cat is red."},
    {"role": "user", "content": "and the dog?"},
    {"role": "assistant", "content": "the dog is green."},
]


def _labelled_text(tok, ids: list[int], labels: list[int]) -> str:
    return tok.decode([t for t, label in zip(ids, labels, strict=True) if label != IGNORE])


def test_prompt_tokens_carry_no_loss(tiny_llama: Path) -> None:
    tok = load_tokenizer(tiny_llama)
    chat = encode_chat(tok, CONVO, 512)
    assert not chat.truncated and len(chat.labels) == len(chat.input_ids)
    # exactly the two answers and their end-of-turn markers are learned, nothing else
    assert (
        _labelled_text(tok, chat.input_ids, chat.labels)
        == "the cat is red.<|im_end|>the dog is green.<|im_end|>"
    )
    text = tok.decode(chat.input_ids)
    assert "what colour is the cat?" in text and "be brief." in text
    for token, label in zip(chat.input_ids, chat.labels, strict=True):
        assert label in (IGNORE, token)


def test_spans_cover_assistant_content(tiny_llama: Path) -> None:
    tok = load_tokenizer(tiny_llama)
    text, spans = assistant_spans(tok, CONVO)
    assert [text[a:b] for a, b in spans] == [
        "the cat is red.<|im_end|>",
        "the dog is green.<|im_end|>",
    ]


def test_long_conversation_is_truncated_and_flagged(tiny_llama: Path) -> None:
    tok = load_tokenizer(tiny_llama)
    chat = encode_chat(tok, CONVO, 12)
    assert chat.truncated and len(chat.input_ids) == 12


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([{"role": "robot", "content": "hi"}], "unknown role 'robot'"),
        ([{"role": "user"}], "must be an object with 'role' and 'content'"),
        ([], "non-empty JSON list"),
        ("hello", "non-empty JSON list"),
        ([{"role": "user", "content": 3}], "content must be a string"),
    ],
)
def test_malformed_messages_are_clear_errors(messages, match: str) -> None:
    with pytest.raises(DataError, match=match):
        check_messages(messages, "chat.jsonl row 4")


def test_tokenizer_without_template_is_refused(tiny_llama_no_template: Path) -> None:
    tok = load_tokenizer(tiny_llama_no_template)
    with pytest.raises(DataError, match="no chat template.*generation.chat_template"):
        require_template(tok, "my-model")


def test_template_that_is_not_prefix_stable_is_refused(tiny_llama: Path) -> None:
    tok = load_tokenizer(tiny_llama)
    # renders the turns in reverse, so a prefix of the conversation is not a prefix of its text
    tok.chat_template = (
        "{% for m in messages|reverse %}{{ m['role'] + ': ' + m['content'] + '\\n' }}{% endfor %}"
    )
    with pytest.raises(DataError, match="prefix by prefix"):
        encode_chat(tok, CONVO, 512)
