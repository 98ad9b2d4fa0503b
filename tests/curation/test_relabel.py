"""Writing labels back to a data file: atomic, locked, checked against what was shown, undoable."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from modelyard.curation.relabel import (
    LabelConflictError,
    read_log,
    set_label,
    standing,
    undo_last,
)
from modelyard.data.load import read_table
from modelyard.errors import DataError
from tests.conftest import make_rows, write_csv


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "train.csv", make_rows(30))


def _row(path: Path, row: int) -> tuple[str, str]:
    table = read_table(path)
    return table["text"].iloc[row - 1], table["label"].iloc[row - 1]


def test_set_label_writes_the_row_and_logs_it(data: Path, tmp_path: Path) -> None:
    text, label = _row(data, 5)
    log = tmp_path / "review.jsonl"
    change = set_label(data, 5, text, label, "shipping-new", log, "ana", "relabel")
    assert _row(data, 5) == (text, "shipping-new")
    assert _row(data, 4) == tuple(make_rows(30)[3])  # the other rows are untouched
    assert read_log(log) == [change]
    assert (change.old, change.new, change.who) == (label, "shipping-new", "ana")


def test_a_stale_label_is_a_conflict_and_writes_nothing(data: Path, tmp_path: Path) -> None:
    text, label = _row(data, 2)
    before = data.read_bytes()
    with pytest.raises(LabelConflictError, match="someone else changed it"):
        set_label(data, 2, text, "not-" + label, "billing", tmp_path / "log.jsonl", "bo")
    with pytest.raises(LabelConflictError, match="text is no longer"):
        set_label(data, 2, "another text", label, "billing", tmp_path / "log.jsonl", "bo")
    assert data.read_bytes() == before
    assert read_log(tmp_path / "log.jsonl") == []


def test_reject_logs_without_writing(data: Path, tmp_path: Path) -> None:
    text, label = _row(data, 3)
    before = data.read_bytes()
    change = set_label(data, 3, text, label, "x", tmp_path / "log.jsonl", "ana", "reject")
    assert data.read_bytes() == before
    assert change.new == label


def test_undo_puts_the_old_label_back_and_standing_forgets_it(data: Path, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    text1, label1 = _row(data, 1)
    text2, label2 = _row(data, 2)
    first = set_label(data, 1, text1, label1, "a", log, "ana", "accept")
    set_label(data, 2, text2, label2, "b", log, "ana", "relabel")
    undo = undo_last(log, "ana")
    assert _row(data, 2) == (text2, label2)
    assert undo.undoes is not None
    assert standing(read_log(log)) == {(str(data), 1): first}
    undo_last(log, "ana")
    assert _row(data, 1) == (text1, label1)
    with pytest.raises(DataError, match="nothing to undo"):
        undo_last(log, "ana")


def test_unknown_row_and_unwritable_format_are_clear_errors(data: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no data row 99"):
        set_label(data, 99, "t", "l", "x", tmp_path / "l.jsonl", "ana")
    with pytest.raises(DataError, match="can be written back"):
        set_label(tmp_path / "x.parquet", 1, "t", "l", "x", tmp_path / "l.jsonl", "ana")


def test_two_people_labelling_at_once_lose_nothing(data: Path, tmp_path: Path) -> None:
    rows = {r: _row(data, r) for r in range(1, 31)}
    log = tmp_path / "log.jsonl"
    errors: list[BaseException] = []

    def label(person: str, numbers: range) -> None:
        try:
            for r in numbers:
                set_label(data, r, rows[r][0], rows[r][1], f"{person}-{r}", log, person)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    people = [
        threading.Thread(target=label, args=("ana", range(1, 31, 2))),
        threading.Thread(target=label, args=("bo", range(2, 31, 2))),
    ]
    for person in people:
        person.start()
    for person in people:
        person.join(timeout=120)
    assert errors == []
    table = read_table(data)
    expected = [f"{'ana' if r % 2 else 'bo'}-{r}" for r in range(1, 31)]
    assert table["label"].tolist() == expected
    assert len(read_log(log)) == 30
