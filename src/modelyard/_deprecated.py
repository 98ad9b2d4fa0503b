"""Old module paths that moved, kept working with a DeprecationWarning that names the new one.

The redirect imports the new module by name on first attribute access, so the old path (in a
lower layer) does not import the higher layer its code moved to.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any


def redirect(old: str, new: str) -> Callable[[str], Any]:
    """Return a module `__getattr__` for `old` that warns and returns `new`'s attribute."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        warnings.warn(f"{old} is deprecated; use {new}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(new), name)

    return __getattr__
