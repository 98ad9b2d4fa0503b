"""A progress bar with ETA, loss and the dev metric; silent when not wanted."""

from __future__ import annotations

from types import TracebackType

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Column


def _fixed(width: int) -> Column:
    # counts and times keep their width; only the status text gives way on a narrow terminal
    return Column(no_wrap=True, min_width=width)


class TrainingProgress:
    """Shows optimizer steps done, ETA, the running loss and the last dev metric."""

    def __init__(self, total_steps: int, done: int = 0, enabled: bool = True) -> None:
        self.enabled = enabled
        self._progress = Progress(
            TextColumn("[bold]train", table_column=_fixed(5)),
            BarColumn(bar_width=16),
            TextColumn("{task.completed}/{task.total} steps", table_column=_fixed(11)),
            TimeElapsedColumn(table_column=_fixed(7)),
            TextColumn("eta", table_column=_fixed(3)),
            TimeRemainingColumn(table_column=_fixed(7)),
            TextColumn(
                "{task.fields[status]}",
                table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1),
            ),
            disable=not enabled,
        )
        self._task = self._progress.add_task("train", total=total_steps, completed=done, status="")
        self._loss: float | None = None
        self._dev = ""
        self._phase = ""

    def __enter__(self) -> TrainingProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def step(self, loss: float) -> None:
        """Advance one optimizer step and update the smoothed loss."""
        self._loss = loss if self._loss is None else 0.9 * self._loss + 0.1 * loss
        self._progress.update(self._task, advance=1, status=self._status())

    def dev(self, name: str, value: float) -> None:
        """Show the latest dev metric."""
        self._dev = f"dev {name} {value:.3f}"
        self._progress.update(self._task, status=self._status())

    def set_total(self, total_steps: int) -> None:
        """Move the end of the bar (and so the ETA): a cool-down started, a budget nears."""
        self._progress.update(self._task, total=total_steps)

    def phase(self, name: str) -> None:
        """Show which phase training is in (e.g. cool-down)."""
        self._phase = name
        self._progress.update(self._task, status=self._status())

    def _status(self) -> str:
        loss = f"loss {self._loss:.3f}" if self._loss is not None else ""
        return " ".join(part for part in (loss, self._dev, self._phase) if part)
