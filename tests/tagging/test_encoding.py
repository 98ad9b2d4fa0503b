"""Word-piece alignment and entity-level metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.models import load_tokenizer
from modelyard.tagging.data import Sentence
from modelyard.tagging.encoding import IGNORE, align, encode_sentences
from modelyard.tagging.metrics import entities_of, entity_metrics


def test_first_piece_carries_the_tag_the_rest_are_ignored() -> None:
    assert align([None, 0, 1, 1, 1, 2, None], [5, 6, 7]) == [
        IGNORE,
        5,
        6,
        IGNORE,
        IGNORE,
        7,
        IGNORE,
    ]


def test_encoding_aligns_tags_to_the_tiny_tokenizer(tiny_backbone: Path) -> None:
    tokenizer = load_tokenizer(tiny_backbone)
    tags = ["O", "B-NUM", "B-LOC"]
    # "42" is two pieces (4, ##2): only the first carries B-NUM
    data = encode_sentences(
        tokenizer, [Sentence(["parcel", "42", "today"], ["B-LOC", "B-NUM", "O"])], tags, 32
    )
    pieces = tokenizer.convert_ids_to_tokens(data.input_ids[0])
    assert pieces == ["[CLS]", "parcel", "4", "##2", "today", "[SEP]"]
    assert data.labels[0] == [IGNORE, 2, 1, IGNORE, 0, IGNORE]
    assert data.truncated == 0
    cut = encode_sentences(tokenizer, [Sentence(["the"] * 20, ["O"] * 20)], tags, 8)
    assert cut.truncated == 1 and len(cut.input_ids[0]) == 8


def test_entities_of_reads_bio_and_bioes() -> None:
    assert entities_of(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 1), ("LOC", 3, 3)]
    assert entities_of(["S-LOC", "B-ORG", "I-ORG", "E-ORG"]) == [("LOC", 0, 0), ("ORG", 1, 3)]


def test_entity_metrics_count_exact_matches_only() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "O"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-LOC", "O"]]  # the PER's extent is wrong
    m = entity_metrics(gold, pred)
    assert m["precision"] == pytest.approx(2 / 3, abs=1e-6)
    assert m["recall"] == pytest.approx(2 / 3, abs=1e-6)
    assert m["per_type"]["LOC"]["f1"] == 1.0 and m["per_type"]["PER"]["f1"] == 0.0
    assert m["macro_f1"] == pytest.approx(0.5)
    assert m["token_accuracy"] == pytest.approx(5 / 6, abs=1e-6)
    assert m["entities"] == 3 and m["predicted_entities"] == 3
