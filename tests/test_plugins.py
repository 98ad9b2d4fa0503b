from __future__ import annotations

import pytest

from modelyard.errors import MissingExtraError, UnknownPluginError
from modelyard.plugins import Registry, require


def test_registry_lists_available_names_on_unknown() -> None:
    reg: Registry[int] = Registry("quantizer")
    reg.add("int8-dynamic", 1)
    reg.add("int8-static", 2)
    with pytest.raises(
        UnknownPluginError, match="unknown quantizer 'int3'; available: int8-dynamic, int8-static"
    ):
        reg.get("int3")


def test_registering_twice_fails() -> None:
    reg: Registry[int] = Registry("method")

    @reg.register("full")
    def full() -> None: ...

    with pytest.raises(ValueError, match="already registered"):
        reg.add("full", 2)


def test_require_gives_install_hint() -> None:
    with pytest.raises(MissingExtraError, match=r"pip install 'modelyard\[federated\]'"):
        require("surely_not_a_module_xyz", extra="federated")
