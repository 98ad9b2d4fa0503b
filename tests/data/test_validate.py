"""Checks, cleaning counts and the DataReport: nothing is removed without being reported."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from modelyard.data import DataReport, load_data
from modelyard.data.validate import (
    Removal,
    check_allowed_labels,
    check_label_cells,
    class_counts,
    count_overlap,
    drop_empty_texts,
    duplicate_mask,
    find_conflicts,
    select_columns,
    token_lengths,
)
from modelyard.errors import DataError
from modelyard.recipe import DataConfig, SplitConfig


def write_csv(
    path: Path, rows: list[tuple[str, ...]], header: tuple[str, ...] = ("text", "label")
) -> Path:
    """Write `rows` under `header` as a CSV; return the path."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def rows_frame(*rows: tuple[str, str], pair: str = "") -> pd.DataFrame:
    """Return ROW_COLUMNS rows from (text, label) pairs, numbered from 1."""
    return pd.DataFrame(
        {
            "text": [text for text, _ in rows],
            "pair": [pair] * len(rows),
            "label": [label for _, label in rows],
            "row": list(range(1, len(rows) + 1)),
        }
    )


def balanced(n: int, prefix: str = "t") -> list[tuple[str, str]]:
    """Return n distinct rows alternating labels a and b."""
    return [(f"{prefix} {i}", "ab"[i % 2]) for i in range(n)]


# --- select_columns ----------------------------------------------------------------------


def test_select_columns_strips_and_numbers_rows() -> None:
    table = pd.DataFrame({"body": ["  hi there ", "x"], "y": [" a", "b "], "other": ["1", "2"]})
    cfg = DataConfig(path=Path("d.csv"), text_column="body", label_column="y")
    rows = select_columns(table, cfg, "d.csv")
    assert rows.to_dict("records") == [
        {"text": "hi there", "pair": "", "label": "a", "row": 1},
        {"text": "x", "pair": "", "label": "b", "row": 2},
    ]


def test_select_columns_keeps_inner_whitespace() -> None:
    table = pd.DataFrame({"text": ["\t two  spaces\nand a newline  "], "label": ["a"]})
    rows = select_columns(table, DataConfig(path=Path("d.csv")), "d.csv")
    assert rows["text"].tolist() == ["two  spaces\nand a newline"]


@pytest.mark.parametrize(
    ("overrides", "column", "key"),
    [
        ({"text_column": "body"}, "body", "data.text_column"),
        ({"label_column": "y"}, "y", "data.label_column"),
        ({"text_pair_column": "hypothesis"}, "hypothesis", "data.text_pair_column"),
    ],
)
def test_missing_column_names_file_column_key_and_existing(
    overrides: dict[str, str], column: str, key: str
) -> None:
    table = pd.DataFrame({"text": ["a"], "label": ["b"]})
    cfg = DataConfig(path=Path("d.csv"), **overrides)
    with pytest.raises(DataError) as err:
        select_columns(table, cfg, "/data/d.csv")
    message = str(err.value)
    assert message.startswith("/data/d.csv:")
    assert f"no column '{column}'" in message
    assert key in message
    assert "columns in the file: 'text', 'label'" in message


def test_missing_column_hints_at_the_separator() -> None:
    table = pd.DataFrame({"text;label": ["a;b"]})
    with pytest.raises(DataError, match="another separator"):
        select_columns(table, DataConfig(path=Path("d.csv")), "d.csv")


# --- cleaning and checks ------------------------------------------------------------------


def test_drop_empty_texts_counts_per_file() -> None:
    rows = rows_frame(("a", "x"), ("", "x"), ("b", "y"), ("", "y"))
    report = DataReport()
    kept = drop_empty_texts(rows, DataConfig(path=Path("d.csv")), "d.csv", report)
    assert kept["text"].tolist() == ["a", "b"]
    assert report.removed == [
        Removal("empty text", "d.csv", 2, "column 'text' is empty or whitespace-only")
    ]


def test_drop_empty_pair_texts_is_its_own_removal() -> None:
    rows = rows_frame(("a", "x"), ("", "x"), ("b", "y"))
    rows.loc[2, "pair"] = ""
    rows.loc[0, "pair"] = "p"
    rows.loc[1, "pair"] = "p"
    cfg = DataConfig(path=Path("d.csv"), text_pair_column="hyp")
    report = DataReport()
    kept = drop_empty_texts(rows, cfg, "d.csv", report)
    assert kept["text"].tolist() == ["a"]
    assert [(r.rows, r.reason) for r in report.removed] == [
        (1, "column 'text' is empty or whitespace-only"),
        (1, "column 'hyp' is empty or whitespace-only"),
    ]


def test_no_removal_recorded_when_nothing_is_empty() -> None:
    report = DataReport()
    drop_empty_texts(rows_frame(("a", "x")), DataConfig(path=Path("d.csv")), "d.csv", report)
    assert report.removed == []


def test_empty_label_names_file_and_row() -> None:
    rows = rows_frame(("a", "x"), ("b", ""), ("c", ""))
    with pytest.raises(DataError) as err:
        check_label_cells(rows, DataConfig(path=Path("d.csv"), label_column="y"), "d.csv")
    assert str(err.value).startswith("d.csv, data row 2:")
    assert "column 'y'" in str(err.value)
    assert "2 row(s)" in str(err.value)


def test_label_outside_allowed_names_file_row_and_allowed() -> None:
    rows = rows_frame(("a", "pos"), ("b", "neutral"), ("c", "neg"))
    with pytest.raises(DataError) as err:
        check_allowed_labels(rows, ["pos", "neg"], "d.csv")
    message = str(err.value)
    assert message.startswith("d.csv, data row 2: label 'neutral' is not in data.labels")
    assert "allowed: pos, neg" in message


def test_duplicate_mask_marks_repeats_only() -> None:
    rows = rows_frame(("a", "x"), ("a", "x"), ("a", "y"), ("a", "x"))
    assert duplicate_mask(rows).tolist() == [False, True, False, True]


def test_find_conflicts_counts_texts_and_limits_examples() -> None:
    rows = rows_frame(*[(f"t{i}", label) for i in range(12) for label in ("x", "y")], ("ok", "x"))
    count, examples = find_conflicts(rows)
    assert count == 12
    assert len(examples) == 10
    assert examples[0] == {"text": "t0", "labels": ["x", "y"]}


def test_count_overlap_uses_text_and_pair() -> None:
    train = rows_frame(("a", "x"), ("b", "x"))
    other = rows_frame(("a", "y"), ("a", "x"), ("c", "x"))
    assert count_overlap(train, other) == 2
    assert count_overlap(train, rows_frame(("a", "x"), pair="p")) == 0


def test_class_counts_includes_zero_and_keeps_order() -> None:
    rows = rows_frame(("a", "y"), ("b", "y"), ("c", "x"))
    assert class_counts(rows, ["z", "y", "x"]) == {"z": 0, "y": 2, "x": 1}


def test_token_lengths_percentiles_and_pairs() -> None:
    rows = rows_frame(*[(" ".join(["w"] * n), "x") for n in range(1, 101)], pair="p q")

    def words(texts: list[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    stats = token_lengths(rows, words, pairs=False)
    assert stats == pytest.approx(
        {"p50": 50.5, "p90": 90.1, "p95": 95.05, "p99": 99.01, "max": 100}
    )
    assert token_lengths(rows, words, pairs=True)["max"] == 102.0
    assert token_lengths(rows.iloc[0:0], words, pairs=False) == {}


# --- the report, through load_data ------------------------------------------------------


def test_report_counts_empty_duplicate_and_conflicting_rows(tmp_path: Path) -> None:
    rows = [*balanced(40), ("   ", "a"), ("", "b"), ("dup", "a"), ("dup", "a"), ("dup", "a")]
    rows += [("both", "a"), ("both", "b")]
    path = write_csv(tmp_path / "d.csv", rows)
    report = load_data(DataConfig(path=path, split=SplitConfig(dev=0, test=0)), seed=0).report
    assert report.files == {str(path): 47}
    removed = {r.step: r for r in report.removed}
    assert removed["empty text"].rows == 2
    assert removed["empty text"].source == str(path)
    assert removed["duplicates"].rows == 2
    assert report.duplicates == 2
    assert report.conflicts == 1
    assert report.conflict_examples == [{"text": "both", "labels": ["a", "b"]}]
    assert report.rows == {"train": 43, "dev": 0, "test": 0}
    assert report.removed_rows() == 4


def test_duplicates_kept_but_counted_when_not_dropping(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", [*balanced(10), ("dup", "a"), ("dup", "a")])
    cfg = DataConfig(path=path, drop_duplicates=False, split=SplitConfig(dev=0, test=0))
    report = load_data(cfg, seed=0).report
    assert report.duplicates == 1
    assert report.duplicates_dropped is False
    assert report.removed == []
    assert "kept: data.drop_duplicates is false" in report.to_markdown()


def test_report_counts_overlap_and_empty_rows_per_file(tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", balanced(20))
    dev = write_csv(tmp_path / "dev.csv", [("t 1", "b"), ("new", "a"), ("", "a")])
    test = write_csv(tmp_path / "test.csv", [("t 2", "a"), ("t 4", "a"), ("t 3", "b")])
    report = load_data(DataConfig(train=train, dev=dev, test=test), seed=0).report
    assert report.overlap == {"train_dev": 1, "train_test": 3}
    assert [(r.step, r.source, r.rows) for r in report.removed] == [("empty text", str(dev), 1)]
    assert report.files == {str(train): 20, str(dev): 3, str(test): 3}


def test_report_is_json_serialisable_and_markdown_has_tables(tmp_path: Path) -> None:
    rows = [*balanced(60), ("", "a"), ("dup", "a"), ("dup", "a"), ("x | y", "a"), ("x | y", "b")]
    path = write_csv(tmp_path / "d.csv", rows)

    def count(texts: list[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    report = load_data(DataConfig(path=path), seed=3, count_tokens=count).report
    data = json.loads(json.dumps(report.to_dict()))
    assert data["removed"][0] == {
        "step": "empty text",
        "source": str(path),
        "rows": 1,
        "reason": "column 'text' is empty or whitespace-only",
    }
    assert set(data["token_lengths"]) == {"train", "dev", "test"}
    assert set(data["token_lengths"]["train"]) == {"p50", "p90", "p95", "p99", "max"}
    text = report.to_markdown()
    for heading in ("## Files read", "## Splits", "## Rows removed", "## Class balance"):
        assert heading in text
    assert "## Token lengths" in text
    assert "| empty text |" in text
    assert "| duplicates |" in text
    assert "x \\| y" in text  # a pipe in a text must not break the table


def test_markdown_says_when_nothing_was_removed() -> None:
    report = DataReport(labels=["a", "b"], class_counts={"train": {"a": 1, "b": 3}})
    text = report.to_markdown()
    assert "No rows were removed." in text
    assert "| a | 1 (25.0%) | 0 | 0 |" in text
    assert "## Token lengths" not in text
    assert "## Warnings" not in text
