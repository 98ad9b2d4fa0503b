"""Settings of one dashboard: where runs, the registry, keys and data files are."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelyard.errors import ModelyardError


class UiSettingsError(ModelyardError):
    """The dashboard settings cannot work (a missing folder, an unsafe bind, no keys)."""


@dataclass(frozen=True)
class UiSettings:
    """What `create_ui_app` needs.

    `runs` is the folder `modelyard train` writes runs into (recipe `run.output_dir`);
    `registry` and `keys_file` default as for `modelyard serve`; `data` is the folder whose
    CSV/TSV/JSONL files the labelling page offers as pools; audits are read from
    `runs/audit/` and labelling batches are written to `runs/labeling/`. `jobs_queue` is
    the job queue the jobs page shows (default: `modelyard jobs`'s own, when it exists).
    """

    runs: Path = Path("runs")
    registry: Path | None = None
    keys_file: Path | None = None
    data: Path = Path(".")
    host: str = "127.0.0.1"
    port: int = 8765
    idle_hours: float = 8.0
    jobs_queue: Path | None = None

    @property
    def audits(self) -> Path:
        """Return the folder `modelyard data audit` writes audits into by default."""
        return self.runs / "audit"

    @property
    def labeling(self) -> Path:
        """Return the folder the dashboard writes active-learning batches into."""
        return self.runs / "labeling"
