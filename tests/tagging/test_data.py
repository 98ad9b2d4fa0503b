"""Reading tagged sentences: JSONL and CoNLL, every user mistake a clear DataError."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.errors import DataError
from modelyard.tagging.data import read_tagged, scheme_of, split_words, tag_order
from tests.tagging.conftest import tagged_rows, write_conll, write_jsonl


def test_jsonl_and_conll_read_the_same_sentences(tmp_path: Path) -> None:
    rows = tagged_rows(5)
    from_jsonl = read_tagged(write_jsonl(tmp_path / "a.jsonl", rows))
    from_conll = read_tagged(write_conll(tmp_path / "a.conll", rows))
    assert from_jsonl == from_conll
    assert [s.tokens for s in from_jsonl] == [r["tokens"] for r in rows]
    assert [s.tags for s in from_jsonl] == [r["tags"] for r in rows]


def test_other_jsonl_keys_are_named_by_the_caller(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [{"words": ["a", "parcel"], "ner": ["O", "B-LOC"]}])
    [sentence] = read_tagged(path, tokens="words", tags="ner")
    assert sentence.tags == ["O", "B-LOC"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"text": ["a"], "tags": ["O"]}\n', "needs the keys 'tokens' and 'tags'"),
        ('{"tokens": ["a", "b"], "tags": ["O"]}\n', "2 tokens but 1 tags"),
        ('{"tokens": "a b", "tags": ["O"]}\n', "must be lists of strings"),
        ('{"tokens": ["a"], "tags": ["PER"]}\n', "is not BIO/BIOES"),
        ('{"tokens": [], "tags": []}\n', "a sentence without tokens"),
        ('{"tokens": [" "], "tags": ["O"]}\n', "an empty or blank token"),
        ("not json\n", "line 1: not valid JSON"),
        ("", "it is empty"),
        ("\n\n", "it is empty"),
    ],
)
def test_bad_jsonl_is_refused_with_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_tagged(path)


def test_bad_conll_is_refused_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.conll"
    path.write_text("Paris B-LOC\nis O\n\nlonely\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 4: expected a token and its tag"):
        read_tagged(path)


def test_non_utf8_is_refused_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.conll"
    path.write_bytes("Paris B-LOC\n\nS\xe3o B-LOC\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8 text .*line 3"):
        read_tagged(path)


def test_missing_file_and_unknown_extension_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_tagged(tmp_path / "absent.jsonl")
    with pytest.raises(DataError, match="cannot tell the format"):
        read_tagged(tmp_path / "data.parquet")
    with pytest.raises(DataError, match="reads jsonl or conll"):
        read_tagged(tmp_path / "data.csv", fmt="csv")


def test_scheme_and_tag_order() -> None:
    assert scheme_of(["O", "B-PER", "I-PER"]) == "BIO"
    assert scheme_of(["O", "B-PER", "E-PER", "S-LOC"]) == "BIOES"
    assert tag_order({"I-PER", "O", "B-LOC", "B-PER"}, None) == ["O", "B-LOC", "B-PER", "I-PER"]
    assert tag_order({"O", "B-X"}, ["B-X", "O", "I-X"]) == ["B-X", "O", "I-X"]
    with pytest.raises(DataError, match="lacks tags found in the data: B-Y"):
        tag_order({"O", "B-Y"}, ["O", "B-X"])


def test_split_words_keeps_offsets_into_the_text() -> None:
    text = "  Mr. O'Neil (UN) flew to Paris, on 1996-08-22."
    words = split_words(text)
    assert [w for w, _, _ in words] == [
        "Mr",
        ".",
        "O'Neil",
        "(",
        "UN",
        ")",
        "flew",
        "to",
        "Paris",
        ",",
        "on",
        "1996-08-22",
        ".",
    ]
    assert all(text[a:b] == w for w, a, b in words)
    assert split_words("") == [] and split_words("...") == [("...", 0, 3)]
