"""Registries for extension points (backbones, training methods, quantizers, ...)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from modelyard.errors import MissingExtraError, UnknownPluginError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named table of plug-ins; registering a name twice fails loudly."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Return a decorator that registers its argument under `name`."""

        def decorator(item: T) -> T:
            self.add(name, item)
            return item

        return decorator

    def add(self, name: str, item: T) -> None:
        """Register `item` under `name`; raise ValueError if the name is taken."""
        if name in self._items:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._items[name] = item

    def get(self, name: str) -> T:
        """Return the plug-in called `name`; raise UnknownPluginError listing the known names."""
        try:
            return self._items[name]
        except KeyError:
            raise UnknownPluginError(
                f"unknown {self.kind} '{name}'; available: {', '.join(sorted(self._items)) or '(none)'}"
            ) from None

    def names(self) -> list[str]:
        """Return the registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def install_command(extra: str) -> str:
    """Return the exact pip command that adds `extra` to an installed modelyard.

    pip resolves the extra against the installed distribution (a wheel or an editable checkout
    alike), so the same command works after `pip install -e '.[all]'` and after a wheel.
    """
    return f"pip install 'modelyard[{extra}]'"


def require(module: str, extra: str) -> object:
    """Import and return an optional dependency, or raise MissingExtraError with the install hint."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"this feature needs the '{module}' package of the '{extra}' extra: "
            f"{install_command(extra)}"
        ) from exc
