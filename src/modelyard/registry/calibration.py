"""A run's calibration record (`calibration.json`): the temperature its probabilities use.

Training fits one temperature T on the dev split and every prediction path divides the
logits by it before the softmax. The file is an ordinary artifact file, so the manifest's
hash covers it; compressed variants copy their parent's. An artifact without one (every
artifact written before calibration existed, or trained with `train.calibrate: false`)
predicts with T = 1, exactly as before. A file that is not a JSON object with a finite
temperature in range is refused, never silently read as 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelyard.errors import ArtifactError
from modelyard.evaluation.calibration import check_temperature
from modelyard.fsutil import atomic_write_json

CALIBRATION = "calibration.json"
# a calibration record is a few hundred bytes; anything far larger is not one
MAX_CALIBRATION_BYTES = 64 * 1024


def write_calibration(run_dir: Path, record: dict[str, Any]) -> Path:
    """Write `record` (at least a valid `temperature`) as `run_dir/calibration.json`; return
    its path. Raises ValueError for a temperature out of range."""
    check_temperature(record.get("temperature"))
    return atomic_write_json(Path(run_dir) / CALIBRATION, record)


def parse_temperature(data: bytes, source: str | Path) -> float:
    """Return the temperature recorded in the `calibration.json` bytes `data`.

    Raises ArtifactError naming `source` when the bytes are not a small JSON object whose
    `temperature` is a finite number in the accepted range.
    """
    if len(data) > MAX_CALIBRATION_BYTES:
        raise ArtifactError(f"{source}: {len(data)} bytes is too large for a calibration record")
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ArtifactError(f"{source} is corrupt: {exc}; refusing to load this artifact") from None
    if not isinstance(record, dict) or "temperature" not in record:
        raise ArtifactError(
            f"{source} is corrupt: it must be a JSON object with a 'temperature'; "
            "refusing to load this artifact"
        )
    try:
        return check_temperature(record["temperature"])
    except ValueError as exc:
        raise ArtifactError(f"{source}: {exc}; refusing to load this artifact") from None


def read_temperature(run_dir: str | Path, manifest: dict[str, Any]) -> float:
    """Return the temperature of the verified artifact at `run_dir`: its calibration record's
    when the manifest lists one, else 1.0. Raises ArtifactError for a corrupt record."""
    files = manifest.get("files")
    if not isinstance(files, dict) or CALIBRATION not in files:
        return 1.0
    path = Path(run_dir) / CALIBRATION
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CALIBRATION_BYTES + 1)
    except OSError as exc:
        raise ArtifactError(f"{path} cannot be read: {exc}") from None
    return parse_temperature(data, path)
