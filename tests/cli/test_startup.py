"""The command line answers `--help`, `--version` and bad arguments without torch/transformers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from modelyard import __version__

HEAVY = ("torch", "transformers")

# every group and command whose help a user may ask for, and a few wrong invocations
INVOCATIONS = [
    ["--help"],
    ["--version"],
    *[
        [name, "--help"]
        for name in (
            "init", "train", "evaluate", "predict", "quickstart", "export", "explain",
            "compress", "methods", "merge", "zeroshot", "serve", "ui", "federate", "keys",
            "registry", "privacy", "data", "label", "jobs", "runs",
        )
    ],
    ["train"],
    ["predict"],
    ["evaluate", "somewhere", "--bogus"],
    ["no-such-command"],
]  # fmt: skip

PROBE = """
import json, sys
from modelyard.cli import app
try:
    app(sys.argv[1:], prog_name="modelyard", standalone_mode=True)
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {heavy})), file=sys.stderr)
"""


def _heavy_modules(args: list[str]) -> list[str]:
    code = PROBE.format(heavy=set(HEAVY))
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )
    return json.loads(done.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("args", INVOCATIONS, ids=" ".join)
def test_help_and_bad_arguments_do_not_import_torch(args: list[str]) -> None:
    assert _heavy_modules(args) == []


def test_version_prints_the_package_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "modelyard", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"modelyard {__version__}"


def test_python_dash_x_importtime_of_help_shows_no_torch() -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "modelyard", "--help"],
        capture_output=True,
        text=True,
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert done.returncode == 0
    assert not imported & set(HEAVY)
