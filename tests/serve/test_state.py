"""The alias watcher: a version that keeps failing to load is one clear log line, not a
traceback every few seconds."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from modelyard.serve.errors import ConflictError
from modelyard.serve.settings import ServeSettings
from modelyard.serve.state import ServerState


class _Refusing:
    def __init__(self) -> None:
        self.calls = 0

    async def check_aliases(self) -> list[Any]:
        self.calls += 1
        raise ConflictError("version 3 of 'tiny' failed to load and was not swapped in")


def test_a_refused_version_is_logged_once_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    models = _Refusing()
    settings = ServeSettings(models=["tiny"], watch_aliases_s=0.001)
    state = ServerState(settings, models, None)  # type: ignore[arg-type]

    async def watch_a_while() -> None:
        task = asyncio.create_task(state.watch_aliases())
        while models.calls < 5:
            await asyncio.sleep(0.005)
        task.cancel()

    with caplog.at_level(logging.INFO, logger="modelyard.serve"):
        asyncio.run(watch_a_while())
    records = [r for r in caplog.records if "not following the registry" in r.getMessage()]
    assert len(records) == 1 and records[0].exc_info is None
    assert "version 3 of 'tiny' failed to load" in records[0].getMessage()
