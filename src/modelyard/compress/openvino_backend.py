"""OpenVINO inference: the `openvino-classifier` backend, an ONNX graph compiled by OpenVINO.

The artifact is an `onnx-classifier` artifact plus `openvino.json`, which records the
precision OpenVINO computes the unquantized parts in (`f32` or `bf16`). Everything else —
tokenizing, length grouping, temperature, hash checks — is the ONNX backend's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from modelyard.compress.onnx_backend import OnnxBackend
from modelyard.errors import ArtifactError
from modelyard.models.openvino_runtime import PRECISIONS, Precision, make_openvino_session

OPENVINO_KIND = "openvino-classifier"
OPENVINO_FILE = "openvino.json"
_MAX_BYTES = 4096


def write_openvino_record(directory: Path, precision: Precision) -> None:
    """Write the record naming the precision the artifact in `directory` runs in."""
    (directory / OPENVINO_FILE).write_text(json.dumps({"precision": precision}), encoding="utf-8")


def read_precision(path: Path, manifest: dict[str, Any]) -> Precision:
    """Return the precision recorded in the verified artifact at `path`.

    Raises ArtifactError when the manifest lists no record or the record is not one.
    """
    if OPENVINO_FILE not in manifest.get("files", {}):
        raise ArtifactError(f"{path}: the manifest lists no {OPENVINO_FILE}")
    with open(path / OPENVINO_FILE, "rb") as handle:
        raw = handle.read(_MAX_BYTES + 1)
    try:
        value = json.loads(raw)["precision"] if len(raw) <= _MAX_BYTES else None
    except (ValueError, KeyError, TypeError):
        value = None
    if value not in PRECISIONS:
        raise ArtifactError(
            f"{path / OPENVINO_FILE} does not name a precision ({', '.join(PRECISIONS)})"
        )
    precision: Precision = value
    return precision


class OpenVinoBackend(OnnxBackend):
    """An `openvino-classifier` artifact run by OpenVINO; its manifest is verified on load."""

    name = "openvino"

    def _session(self) -> Callable[[Path | bytes, int | None], Any]:
        return partial(make_openvino_session, precision=read_precision(self.path, self.manifest))
