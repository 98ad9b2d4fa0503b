"""read_table: every format round-trips as strings; unreadable files are named in a DataError."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from modelyard.data import read_table
from modelyard.data.load import to_str
from modelyard.errors import DataError

FRAME = pd.DataFrame(
    {
        "text": ["good, really", 'she said "hi"', "tab\there", "multi\nline", "ünïcødé ✓"],
        "label": ["pos", "pos", "neg", "neg", "pos"],
    }
)


def write(path: Path, content: str | bytes) -> Path:
    """Write text (UTF-8) or bytes to `path`; return it."""
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("name", "save"),
    [
        ("d.csv", lambda f, p: f.to_csv(p, index=False)),
        ("d.tsv", lambda f, p: f.to_csv(p, sep="\t", index=False)),
        ("d.jsonl", lambda f, p: f.to_json(p, orient="records", lines=True, force_ascii=False)),
        ("d.json", lambda f, p: f.to_json(p, orient="records", lines=True)),
        ("d.parquet", lambda f, p: f.to_parquet(p, index=False)),
    ],
)
def test_round_trip_every_format(tmp_path: Path, name: str, save) -> None:
    path = tmp_path / name
    save(FRAME, path)
    table = read_table(path)
    assert table.columns.tolist() == ["text", "label"]
    assert table.to_dict("records") == FRAME.to_dict("records")


def test_explicit_format_overrides_extension(tmp_path: Path) -> None:
    path = write(tmp_path / "data.txt", "text\tlabel\nhello\tpos\n")
    assert read_table(path, fmt="tsv").to_dict("records") == [{"text": "hello", "label": "pos"}]


def test_values_are_strings_and_empty_cells_are_empty_strings(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "text,label,score\nNA,0,1.5\n,null,\nN/A,1,2\n")
    table = read_table(path)
    assert table.to_dict("records") == [
        {"text": "NA", "label": "0", "score": "1.5"},
        {"text": "", "label": "null", "score": ""},
        {"text": "N/A", "label": "1", "score": "2"},
    ]
    assert all(isinstance(v, str) for v in table.to_numpy().ravel())


def test_jsonl_missing_keys_and_non_strings_become_strings(tmp_path: Path) -> None:
    lines = [
        {"text": "a", "label": 1, "extra": None},
        {"text": "b", "label": 0},
        {"label": True, "text": "c", "tags": ["x", "y"]},
    ]
    path = write(tmp_path / "d.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n\n")
    records = read_table(path).to_dict("records")
    assert records == [
        {"text": "a", "label": "1", "extra": "", "tags": ""},
        {"text": "b", "label": "0", "extra": "", "tags": ""},
        {"text": "c", "label": "true", "extra": "", "tags": '["x", "y"]'},
    ]


def test_jsonl_keeps_unicode_line_separators_inside_strings(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"text": "one\u2028two", "label": "a"}\n')
    assert read_table(path)["text"].tolist() == ["one\u2028two"]


def test_parquet_nulls_and_integers_become_strings(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    frame = pd.DataFrame({"text": ["a", None], "label": pd.array([1, 0], dtype="int64")})
    frame.to_parquet(path, index=False)
    assert read_table(path).to_dict("records") == [
        {"text": "a", "label": "1"},
        {"text": "", "label": "0"},
    ]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_utf8_bom_is_ignored(tmp_path: Path, suffix: str) -> None:
    sep = "\t" if suffix == ".tsv" else ","
    body = '{"text": "hé", "label": "a"}\n' if suffix == ".jsonl" else f"text{sep}label\nhé{sep}a\n"
    path = write(tmp_path / f"d{suffix}", b"\xef\xbb\xbf" + body.encode("utf-8"))
    table = read_table(path)
    assert table.columns.tolist() == ["text", "label"]
    assert table["text"].tolist() == ["hé"]


def test_to_str_spellings() -> None:
    assert [to_str(v) for v in (None, float("nan"), 3, 2.5, False, b"x", {"a": 1})] == [
        "",
        "",
        "3",
        "2.5",
        "false",
        "x",
        '{"a": 1}',
    ]


# --- bad input: each error names the file and says what would be valid -----------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="not found") as err:
        read_table(path)
    assert str(path) in str(err.value)
    assert "data.path" in str(err.value)


def test_unknown_extension_lists_supported(tmp_path: Path) -> None:
    path = write(tmp_path / "data.xlsx", "x")
    with pytest.raises(DataError) as err:
        read_table(path)
    message = str(err.value)
    assert str(path) in message
    for suffix in (".csv", ".tsv", ".jsonl", ".json", ".parquet"):
        assert suffix in message
    assert "data.format" in message


def test_unknown_explicit_format(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "text,label\na,b\n")
    with pytest.raises(DataError, match=r"unknown data format 'xml'.*csv, tsv, jsonl, parquet"):
        read_table(path, fmt="xml")


@pytest.mark.parametrize("name", ["d.csv", "d.tsv", "d.jsonl", "d.parquet"])
def test_zero_byte_file(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / name, b"")
    with pytest.raises(DataError, match="empty") as err:
        read_table(path)
    assert str(path) in str(err.value)


def test_whitespace_only_file(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "\n  \n")
    with pytest.raises(DataError, match="only whitespace") as err:
        read_table(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("name", "content"), [("d.csv", "text,label\n"), ("d.tsv", "text\tlabel"), ("d.jsonl", "\n\n")]
)
def test_header_only_has_no_data_rows(tmp_path: Path, name: str, content: str) -> None:
    path = write(tmp_path / name, content)
    with pytest.raises(DataError) as err:
        read_table(path)
    assert str(path) in str(err.value)
    assert "no data rows" in str(err.value) or "only whitespace" in str(err.value)


def test_header_only_csv_names_the_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "text,label\n")
    with pytest.raises(DataError, match=r"no data rows \(columns found: 'text', 'label'\)"):
        read_table(path)


def test_empty_parquet_has_no_data_rows(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pd.DataFrame({"text": pd.Series([], dtype=str)}).to_parquet(path)
    with pytest.raises(DataError, match="no data rows") as err:
        read_table(path)
    assert str(path) in str(err.value)


def test_not_utf8_names_line_and_byte_offset(tmp_path: Path) -> None:
    content = b"text,label\ngood,a\ncaf\xe9" + b",b\n"
    path = write(tmp_path / "d.csv", content)
    with pytest.raises(DataError) as err:
        read_table(path)
    message = str(err.value)
    assert str(path) in message
    assert "line 3" in message
    offset = content.index(b"\xe9")
    assert f"byte offset {offset}" in message
    assert "re-save it as UTF-8" in message


def test_not_utf8_offset_counts_the_bom(tmp_path: Path) -> None:
    content = b"\xef\xbb\xbftext,label\n\xff,a\n"
    path = write(tmp_path / "d.jsonl", content)
    with pytest.raises(DataError, match="line 2, byte offset 14"):
        read_table(path)


def test_malformed_csv_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "text,label\nfine,a\nnot, fine,b\n")
    with pytest.raises(DataError) as err:
        read_table(path)
    message = str(err.value)
    assert str(path) in message
    assert "malformed CSV" in message
    assert "line 3" in message
    assert "double quotes" in message


def test_unclosed_quote_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", 'text,label\nfine,a\n"open,b\nmore,c\n')
    with pytest.raises(DataError, match="opened on line 3 is never closed") as err:
        read_table(path)
    assert str(path) in str(err.value)


def test_malformed_tsv(tmp_path: Path) -> None:
    path = write(tmp_path / "d.tsv", "text\tlabel\na\tb\tc\n")
    with pytest.raises(DataError, match=r"malformed TSV.*line 2") as err:
        read_table(path)
    assert str(path) in str(err.value)


def test_malformed_jsonl_line(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"text": "a", "label": "x"}\n\n{"text": "b", "label": }\n')
    with pytest.raises(DataError, match="line 3 is not valid JSON") as err:
        read_table(path)
    assert str(path) in str(err.value)
    assert "one complete JSON object per line" in str(err.value)


@pytest.mark.parametrize(
    ("line", "kind"), [('["a", "b"]', "list"), ('"text"', "str"), ("3", "int")]
)
def test_jsonl_line_that_is_not_an_object(tmp_path: Path, line: str, kind: str) -> None:
    path = write(tmp_path / "d.jsonl", '{"text": "a", "label": "x"}\n' + line + "\n")
    with pytest.raises(DataError, match=f"line 2 is a JSON {kind}, not an object") as err:
        read_table(path)
    assert str(path) in str(err.value)


def test_json_array_file_is_explained(tmp_path: Path) -> None:
    path = write(tmp_path / "d.json", '[{"text": "a", "label": "x"}]')
    with pytest.raises(DataError, match="line 1 is a JSON list, not an object"):
        read_table(path)


def test_corrupt_parquet(tmp_path: Path) -> None:
    path = write(tmp_path / "d.parquet", b"PAR1 this is not really parquet PAR1")
    with pytest.raises(DataError, match="not a readable Parquet file") as err:
        read_table(path)
    assert str(path) in str(err.value)


def test_truncated_parquet(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    FRAME.to_parquet(path)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(DataError, match="not a readable Parquet file") as err:
        read_table(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("first_row", ["a,b,c", "a,b,"])
def test_first_row_longer_than_header_is_malformed_not_shifted(
    tmp_path: Path, first_row: str
) -> None:
    path = write(tmp_path / "d.csv", f"text,label\n{first_row}\nd,e\n")
    with pytest.raises(DataError, match="malformed CSV: Expected 2 fields in line 2, saw 3") as err:
        read_table(path)
    assert str(path) in str(err.value)


def test_short_row_gets_empty_cells(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "text,label\nonly text\nb,c\n")
    assert read_table(path)["label"].tolist() == ["", "c"]
