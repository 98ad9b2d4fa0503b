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


def renamed(module: str, names: dict[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """Return a module `__getattr__` for `module` that maps each old name to its new one.

    `names` is {old: new}; `namespace` is the module's globals(), where the new names live.
    Any other name raises AttributeError as a module without the hook would.
    """

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module '{module}' has no attribute '{name}'")
        new = names[name]
        warnings.warn(
            f"{module}.{name} is deprecated; use {module}.{new}", DeprecationWarning, stacklevel=2
        )
        return namespace[new]

    return __getattr__
