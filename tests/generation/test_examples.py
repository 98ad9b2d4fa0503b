"""Examples from documents: end-of-text, pieces of the context length, empty inputs."""

from __future__ import annotations

from pathlib import Path

from modelyard.generation.examples import causal_examples, masked_examples
from modelyard.models import load_tokenizer


def test_long_documents_are_cut_into_pieces_and_counted(tiny_llama: Path) -> None:
    tok = load_tokenizer(tiny_llama)
    counts: dict[str, int] = {}
    doc = " ".join(["the red cat sees the dog."] * 10)
    examples = causal_examples(tok, [doc, "the cat."], 16, counts)
    ids = tok(doc)["input_ids"] + [tok.eos_token_id]
    assert counts == {"documents_split": 1}
    assert [t for e in examples[:-1] for t in e.input_ids] == ids  # no token lost
    assert all(len(e.input_ids) <= 16 for e in examples)
    assert examples[-1].input_ids[-1] == tok.eos_token_id


def test_masked_pieces_carry_cls_and_sep(tiny_backbone: Path) -> None:
    tok = load_tokenizer(tiny_backbone)
    counts: dict[str, int] = {}
    examples = masked_examples(
        tok, ["invoice card refund payment price bill twice charged"], 6, counts
    )
    assert counts == {"documents_split": 1}
    assert all(
        e.input_ids[0] == tok.cls_token_id and e.input_ids[-1] == tok.sep_token_id for e in examples
    )
    assert all(len(e.input_ids) <= 6 for e in examples)


def test_no_documents_give_no_examples(tiny_llama: Path, tiny_backbone: Path) -> None:
    assert causal_examples(load_tokenizer(tiny_llama), [], 16, {}) == []
    assert masked_examples(load_tokenizer(tiny_backbone), [], 16, {}) == []
