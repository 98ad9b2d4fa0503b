"""Change one row's label in a data file, safely while others do the same, with an undo log.

Every change runs under an exclusive lock on the file (`fcntl.flock` on a hidden lock file
beside it), reads the file as it is now, checks that the row still holds the text and the
label the person saw, writes the whole file atomically (temporary file, fsync, rename) and
appends what it did to a JSON-lines log. Two people labelling different rows at once both
keep their work; two changing the same row get a conflict instead of a silent overwrite.
Undoing a change is a change back, checked and logged the same way.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelyard.data.load import read_table, write_table
from modelyard.errors import DataError

WRITABLE = (".csv", ".tsv", ".jsonl", ".json")
ACTIONS = ("accept", "relabel", "reject", "label", "undo")


class LabelConflictError(DataError):
    """The row changed since the person looked at it; nothing was written."""


@dataclass(frozen=True)
class LabelChange:
    """One logged decision: which row of which file, the label before and after, who and when."""

    id: str
    action: str
    file: str
    row: int
    text: str
    old: str
    new: str
    who: str
    time: str
    undoes: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock for `path` (other processes and threads wait) while inside."""
    lock = path.with_name(f".{path.name}.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _check_writable(path: Path) -> None:
    if path.suffix.lower() not in WRITABLE:
        raise DataError(
            f"{path}: labels can be written back to {', '.join(WRITABLE)} files only, not "
            f"'{path.suffix}'; convert the file, or label a CSV copy"
        )


def _cell(table: Any, row: int, column: str, path: Path) -> str:
    if column not in table.columns:
        raise DataError(
            f"{path}: no column '{column}'; columns are: {', '.join(map(str, table.columns))}"
        )
    if not 1 <= row <= len(table):
        raise DataError(f"{path}: no data row {row}; the file has {len(table)} data rows")
    return str(table[column].iloc[row - 1])


def _append_log(log: Path, change: LabelChange) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(asdict(change), ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def set_label(
    path: Path,
    row: int,
    text: str,
    expected: str,
    new: str,
    log: Path,
    who: str,
    action: str = "label",
    text_column: str = "text",
    label_column: str = "label",
    extra: dict[str, Any] | None = None,
    undoes: str | None = None,
) -> LabelChange:
    """Set the label of data row `row` (1-based) of `path` to `new`; return the logged change.

    The row must still hold `text` and the label `expected` (what the person saw).
    `action` "reject" writes nothing to the file and only logs the decision; `undoes` names
    the logged change an "undo" reverts.
    Raises LabelConflictError when the row changed meanwhile, DataError for a missing file,
    row or column, or a format that cannot be written back.
    """
    if action not in ACTIONS:
        raise DataError(f"unknown labelling action '{action}'; use one of: {', '.join(ACTIONS)}")
    _check_writable(path)
    with locked(path):
        table = read_table(path)
        if _cell(table, row, text_column, path).strip() != text.strip():
            raise LabelConflictError(
                f"{path}, data row {row}: the text is no longer the one shown (the file was "
                "edited or re-ordered); reload the page"
            )
        current = _cell(table, row, label_column, path)
        if current != expected:
            raise LabelConflictError(
                f"{path}, data row {row}: its label is now {current!r}, not {expected!r} as shown "
                "(someone else changed it); reload the page and decide again"
            )
        if action != "reject" and new != current:
            table.loc[table.index[row - 1], label_column] = new
            write_table(table, path)
        change = LabelChange(
            uuid.uuid4().hex[:12], action, str(path), row, text, current,
            current if action == "reject" else new, who,
            datetime.now(UTC).isoformat(timespec="seconds"), undoes, extra or {},
        )  # fmt: skip
        _append_log(log, change)
    return change


def read_log(log: Path) -> list[LabelChange]:
    """Return the changes of a labelling log, oldest first (an empty list when it is missing).

    Raises DataError for a line that is not a logged change.
    """
    if not log.is_file():
        return []
    changes = []
    for number, line in enumerate(log.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            changes.append(LabelChange(**json.loads(line)))
        except (TypeError, ValueError) as exc:
            raise DataError(f"{log}, line {number}: not a labelling log entry ({exc})") from None
    return changes


def standing(changes: list[LabelChange]) -> dict[tuple[str, int], LabelChange]:
    """Return the decision in force for each (file, row): the latest one not undone."""
    undone = {c.undoes for c in changes if c.undoes}
    current: dict[tuple[str, int], LabelChange] = {}
    for change in changes:
        if change.action == "undo" or change.id in undone:
            continue
        current[(change.file, change.row)] = change
    return current


def undo_last(
    log: Path, who: str, text_column: str = "text", label_column: str = "label"
) -> LabelChange:
    """Undo the latest change of `log` not yet undone: put the old label back; return the undo.

    Raises DataError when there is nothing to undo, and LabelConflictError when the row has
    changed since (someone relabelled it again): undo that change first.
    """
    changes = read_log(log)
    undone = {c.undoes for c in changes if c.undoes}
    pending = [c for c in changes if c.action != "undo" and c.id not in undone]
    if not pending:
        raise DataError(f"{log}: nothing to undo")
    last = pending[-1]
    path = Path(last.file)
    if last.action == "reject":
        change = LabelChange(
            uuid.uuid4().hex[:12], "undo", last.file, last.row, last.text, last.new, last.old,
            who, datetime.now(UTC).isoformat(timespec="seconds"), undoes=last.id,
        )  # fmt: skip
        with locked(path):
            _append_log(log, change)
        return change
    return set_label(
        path, last.row, last.text, last.new, last.old, log, who, "undo", text_column,
        label_column, undoes=last.id,
    )  # fmt: skip
