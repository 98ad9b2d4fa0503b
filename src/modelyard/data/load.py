"""Read a labelled table (CSV, TSV, JSONL or Parquet) into a DataFrame of strings.

Every value comes back as ``str`` and an empty or missing cell is ``""``, whatever the
format, so one recipe works on a CSV and on a Parquet export of it alike. Every way a file
can be unreadable raises a DataError that names the file and says what would be valid.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from modelyard.errors import DataError
from modelyard.fsutil import atomic_write_bytes, atomic_write_text

SUFFIXES: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
}
FORMATS: tuple[str, ...] = ("csv", "tsv", "jsonl", "parquet")
_SEPARATORS = {"csv": ",", "tsv": "\t"}
_BOM = b"\xef\xbb\xbf"
_JSONL_EXAMPLE = '{"text": "...", "label": "..."}'


def read_table(path: Path, fmt: str = "auto") -> pd.DataFrame:
    """Return the rows of `path` as a DataFrame whose every value is a str ("" when empty).

    `fmt` is "auto" (chosen by the file extension) or one of csv, tsv, jsonl, parquet.
    Raises DataError when the file is missing, empty or has no data rows, is not UTF-8,
    is malformed for its format, or its format cannot be told from the extension.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"data file not found: {path} "
            "(check data.path / data.train / data.dev / data.test in the recipe)"
        )
    kind = resolve_format(path, fmt)
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty (0 bytes); {_expected(kind)}")
    frame = _read_parquet(path) if kind == "parquet" else _read_text(path, kind)
    if len(frame) == 0:
        columns = ", ".join(repr(str(c)) for c in frame.columns)
        raise DataError(
            f"{path}: no data rows (columns found: {columns or 'none'}); {_expected(kind)}"
        )
    return frame


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    """Write `frame` atomically as CSV, TSV or JSONL (by the extension of `path`); return `path`.

    Raises DataError for another extension.
    """
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        text = frame.to_csv(index=False, sep="," if suffix == ".csv" else "\t")
        return atomic_write_text(path, text)
    if suffix in (".jsonl", ".json"):
        body = frame.to_json(orient="records", lines=True, force_ascii=False) or ""
        return atomic_write_bytes(path, body.encode("utf-8"))
    raise DataError(f"{path}: write .csv, .tsv or .jsonl, not '{path.suffix}'")


def resolve_format(path: Path, fmt: str = "auto") -> str:
    """Return the format of `path`: `fmt` itself, or the one its extension implies.

    Raises DataError when `fmt` is unknown, or "auto" and the extension is not supported.
    """
    if fmt != "auto":
        if fmt not in FORMATS:
            raise DataError(f"{path}: unknown data format '{fmt}'; use auto, {', '.join(FORMATS)}")
        return fmt
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        supported = ", ".join(SUFFIXES)
        raise DataError(
            f"{path}: cannot tell the format from the extension '{path.suffix}'; "
            f"supported extensions: {supported} (or set data.format)"
        )
    return kind


def _expected(kind: str) -> str:
    if kind == "jsonl":
        return f"expected one JSON object per line, e.g. {_JSONL_EXAMPLE}"
    if kind == "parquet":
        return "expected a Parquet file with at least one row"
    return "expected a header row followed by at least one data row"


def _read_text(path: Path, kind: str) -> pd.DataFrame:
    text = _decode(path)
    if not text.strip():
        raise DataError(f"{path}: the file holds only whitespace; {_expected(kind)}")
    if kind == "jsonl":
        return _read_jsonl(path, text)
    return _read_delimited(path, text, kind)


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    start = len(_BOM) if raw.startswith(_BOM) else 0
    try:
        return raw[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = start + exc.start
        line = raw.count(b"\n", 0, offset) + 1
        raise DataError(
            f"{path}: not valid UTF-8 at line {line}, byte offset {offset} "
            f"(byte 0x{raw[offset]:02x}); the file is probably in another encoding "
            "such as Latin-1 or Windows-1252: re-save it as UTF-8"
        ) from None


def _read_delimited(path: Path, text: str, kind: str) -> pd.DataFrame:
    sep = _SEPARATORS[kind]
    try:
        # a first data row longer than the header makes pandas either turn the first
        # column into the index (shifting every value) or, with index_col=False, drop the
        # extra field with a ParserWarning; both lose data, so the warning becomes an error
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(
                io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, index_col=False
            )
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: no header row found; {_expected(kind)}") from None
    except pd.errors.ParserError as exc:
        raise _malformed(path, kind, _parser_detail(str(exc))) from None
    except pd.errors.ParserWarning:
        raise _malformed(path, kind, _first_ragged_row(text, sep)) from None


def _malformed(path: Path, kind: str, detail: str) -> DataError:
    shown = "tab" if kind == "tsv" else "','"
    return DataError(
        f"{path}: malformed {kind.upper()}: {detail}; every row needs as many fields as "
        f"the header, and a field holding a {shown}, a quote or a newline must be wrapped "
        'in double quotes (with inner quotes doubled: "")'
    )


def _first_ragged_row(text: str, sep: str) -> str:
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    header = next(reader, [])
    for fields in reader:
        if fields and len(fields) != len(header):
            return f"Expected {len(header)} fields in line {reader.line_num}, saw {len(fields)}"
    return "the first data row has more fields than the header"


def _parser_detail(message: str) -> str:
    detail = message.strip().removeprefix("Error tokenizing data. C error: ")
    # pandas counts rows from 0 here while its field-count errors count lines from 1
    unclosed = re.fullmatch(r"EOF inside string starting at row (\d+)", detail)
    if unclosed:
        return f"a quoted field opened on line {int(unclosed.group(1)) + 1} is never closed"
    return detail


def _read_jsonl(path: Path, text: str) -> pd.DataFrame:
    # split on "\n" only: str.splitlines would also break on U+2028 and friends, which are
    # legal unescaped inside JSON strings
    records = [
        _parse_jsonl_line(path, number, line)
        for number, line in enumerate(text.split("\n"), start=1)
        if line.strip()
    ]
    columns = list(dict.fromkeys(key for record in records for key in record))
    data = {column: [to_str(record.get(column)) for record in records] for column in columns}
    return pd.DataFrame(data, index=pd.RangeIndex(len(records)), dtype=str)


def _parse_jsonl_line(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}: line {number} is not valid JSON ({exc.msg} at column {exc.colno}); "
            f"JSONL needs one complete JSON object per line, e.g. {_JSONL_EXAMPLE}"
        ) from None
    if not isinstance(record, dict):
        raise DataError(
            f"{path}: line {number} is a JSON {type(record).__name__}, not an object; "
            f"JSONL needs one JSON object per line, e.g. {_JSONL_EXAMPLE}"
        )
    return record


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(
            f"{path}: not a readable Parquet file ({exc}); re-export it as Parquet, "
            "or save the data as CSV or JSONL instead"
        ) from None
    data = {
        str(name): [to_str(value) for value in table.column(i).to_pylist()]
        for i, name in enumerate(table.column_names)
    }
    return pd.DataFrame(data, index=pd.RangeIndex(table.num_rows), dtype=str)


def to_str(value: Any) -> str:
    """Return `value` as the string a text file would hold; None and NaN become ""."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):  # JSON spelling, before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)
