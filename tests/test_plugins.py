from __future__ import annotations

import re
from pathlib import Path

import pytest

from modelyard.errors import MissingExtraError, UnknownPluginError
from modelyard.plugins import Registry, install_command, require


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


def _extras() -> dict[str, list[str]]:
    import tomllib

    root = Path(__file__).resolve().parents[1]
    with open(root / "pyproject.toml", "rb") as handle:
        extras: dict[str, list[str]] = tomllib.load(handle)["project"]["optional-dependencies"]
    return extras


def test_every_required_extra_exists_and_the_hint_is_the_exact_command() -> None:
    root = Path(__file__).resolve().parents[1] / "src" / "modelyard"
    named = {
        match
        for path in root.rglob("*.py")
        for match in re.findall(r'require\([^)]*extra="([a-z0-9]+)"', path.read_text("utf-8"))
    }
    assert named - {"dev"} <= set(_extras())
    with pytest.raises(MissingExtraError) as caught:
        require("surely_not_a_module_xyz", extra="compress")
    assert install_command("compress") in str(caught.value)
    assert install_command("compress") == "pip install 'modelyard[compress]'"


def test_the_all_extra_covers_every_feature_extra_but_ray() -> None:
    extras = _extras()
    (spec,) = extras["all"]
    included = set(re.fullmatch(r"modelyard\[(.*)\]", spec).group(1).split(","))  # type: ignore[union-attr]
    features = set(extras) - {"all", "dev", "bench", "backbone", "smollm2", "browser"}
    assert features - included == {"ray"}
