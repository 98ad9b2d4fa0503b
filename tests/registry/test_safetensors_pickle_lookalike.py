"""A safetensors file whose header length reads as a tiny pickle is still a safetensors file."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from modelyard.errors import ArtifactError
from modelyard.registry.safety import check_content

# 0x2e28: the little-endian length bytes are "(." (MARK, STOP), a complete protocol-0 pickle
LOOKALIKE_LENGTH = 0x2E28


def _safetensors(path: Path, header_length: int) -> Path:
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})
    padded = header.encode() + b" " * (header_length - len(header))
    path.write_bytes(header_length.to_bytes(8, "little") + padded + b"\0" * 8)
    return path


@pytest.mark.parametrize("weights", [False, True])
def test_a_lookalike_length_is_not_taken_for_a_pickle(tmp_path: Path, weights: bool) -> None:
    path = _safetensors(tmp_path / "model.safetensors", LOOKALIKE_LENGTH)
    with path.open("rb") as handle:
        check_content(tmp_path, Path(path.name), handle, path.stat().st_size, weights=weights)


def test_a_pickle_named_safetensors_is_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=0))
    with path.open("rb") as handle, pytest.raises(ArtifactError, match="pickle"):
        check_content(tmp_path, Path(path.name), handle, path.stat().st_size, weights=True)
