"""Words, word-level perturbations, and word-piece -> word aggregation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelyard.errors import DataError
from modelyard.explainability.words import aggregate, piece_to_word, split_words
from modelyard.models import load_tokenizer


def test_words_are_letter_runs_and_single_punctuation() -> None:
    words = split_words("Don't   stop, 2 pm!")
    assert words.tokens == ["Don", "'", "t", "stop", ",", "2", "pm", "!"]
    assert words.spans[0] == (0, 3)


def test_a_text_without_words_is_refused_with_the_text_named() -> None:
    with pytest.raises(DataError, match="holds no words"):
        split_words("   \n")


def test_compose_keeps_original_gaps_and_never_fuses_neighbours() -> None:
    words = split_words("can't  stop")
    assert words.compose([True] * len(words)) == "can't  stop"
    # removing the apostrophe must not glue "can" and "t" into a new word
    assert words.compose([True, False, True, True]) == "can t  stop"
    assert words.compose([False, False, False, True]) == "stop"
    assert words.compose([False] * len(words)) == ""


def test_multi_piece_words_sum_their_pieces(tiny_backbone: Path) -> None:
    tokenizer = load_tokenizer(tiny_backbone)
    words = split_words("refund 123 late")
    enc = tokenizer(words.text, return_offsets_mapping=True)
    pieces = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    assert pieces == ["[CLS]", "refund", "1", "##2", "##3", "late", "[SEP]"]
    owners = piece_to_word(enc["offset_mapping"], words.spans)
    assert owners == [None, 0, 1, 1, 1, 2, None]
    scores = aggregate([9.0, 0.5, 0.25, 0.125, 2.0, -1.0, 9.0], owners, len(words))
    np.testing.assert_allclose(scores, [0.5, 2.375, -1.0])


def test_offsets_with_a_leading_space_still_find_their_word() -> None:
    # sentencepiece-style tokenizers report "▁late" as covering the space before the word
    words = split_words("so late")
    assert piece_to_word([(0, 2), (2, 7), (0, 0)], words.spans) == [0, 1, None]


def test_words_cut_off_by_truncation_score_zero() -> None:
    scores = aggregate([1.0, 2.0], [0, 1], 4)
    np.testing.assert_array_equal(scores, [1.0, 2.0, 0.0, 0.0])
