"""Where modelyard keeps its own state (registry, API keys): $MODELYARD_HOME or ~/.modelyard."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "MODELYARD_HOME"


def modelyard_home() -> Path:
    """Return the folder for modelyard's own state: $MODELYARD_HOME, else ~/.modelyard."""
    env = os.environ.get(HOME_ENV)
    return Path(env).expanduser() if env else Path.home() / ".modelyard"
