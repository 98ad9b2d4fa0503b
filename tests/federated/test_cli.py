"""`modelyard federate` prints a user's mistake without a traceback and exits non-zero."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelyard.recipe import Recipe

pytest.importorskip("flwr")


def test_bad_partition_is_a_clear_error(fed_recipe: Recipe, tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(fed_recipe.to_yaml(), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "modelyard", "federate", str(path), "--partition", "bogus"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode != 0
    assert "iid, dirichlet:ALPHA" in proc.stderr
    assert "Traceback" not in proc.stderr
