"""The hostile-artifact corpus (`modelyard.testing.hostile.HOSTILE_ARTIFACTS`): each damaged
run is refused with a clear ModelyardError by every loader (predict, serve, push)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.backends import load_backend
from modelyard.errors import ModelyardError
from modelyard.testing.hostile import HOSTILE_ARTIFACTS, HostileArtifact, damaged_copy
from tests.registry.conftest import saved_run  # noqa: F401  (a fixture)


@pytest.mark.parametrize("case", HOSTILE_ARTIFACTS, ids=lambda case: case.name)
def test_each_hostile_artifact_is_refused_with_a_clear_message(
    saved_run: Path,  # noqa: F811  (the imported fixture)
    tmp_path: Path,
    case: HostileArtifact,
) -> None:
    root = damaged_copy(saved_run, case, tmp_path / "run")
    with pytest.raises(ModelyardError, match=f"(?i){case.message}"):
        load_backend(root)
