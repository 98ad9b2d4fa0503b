"""A tiny saved classifier run to attack, sign and encrypt, and a recorder of file opens."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from modelyard.models import build_classifier, load_tokenizer
from modelyard.registry.manifest import write_manifest
from modelyard.registry.run import save_model_files

LABELS = ["account", "billing", "shipping"]


@pytest.fixture(scope="session")
def saved_run(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    """A finished (untrained) classifier run on the tiny backbone, written the way training does."""
    root = tmp_path_factory.mktemp("saved") / "run"
    model = build_classifier(tiny_backbone, LABELS)
    save_model_files(root, model, load_tokenizer(tiny_backbone), LABELS)
    recipe = {"data": {"path": "data.csv"}, "model": {"max_length": 32}}
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    (root / "metrics.json").write_text('{"test": {"accuracy": 0.5}}\n', encoding="utf-8")
    write_manifest(root)
    return root


@pytest.fixture()
def run_copy(saved_run: Path, tmp_path: Path) -> Path:
    """A private copy of `saved_run` at tmp_path/run, free to damage."""
    return Path(shutil.copytree(saved_run, tmp_path / "run"))


class OpenRecorder:
    """Records every path opened inside `watch()` (through a process-wide audit hook)."""

    def __init__(self) -> None:
        self.active = False
        self.paths: list[str] = []
        self.writes: list[str] = []

    def __call__(self, event: str, args: tuple) -> None:
        if self.active and event == "open" and isinstance(args[0], str | bytes | os.PathLike):
            path = os.path.realpath(os.fsdecode(args[0]))
            self.paths.append(path)
            mode, flags = args[1], args[2]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            )
            if writing:
                self.writes.append(path)

    @contextlib.contextmanager
    def watch(self) -> Iterator[OpenRecorder]:
        """Record opens in the body only."""
        self.paths, self.writes, self.active = [], [], True
        try:
            yield self
        finally:
            self.active = False


_RECORDER = OpenRecorder()
sys.addaudithook(_RECORDER)  # audit hooks cannot be removed; the recorder is inert when inactive


@pytest.fixture()
def opened() -> OpenRecorder:
    """The recorder of opened paths; use `with opened.watch(): ...`."""
    return _RECORDER
