"""Every old name and module path still works, warns, and names its replacement."""

from __future__ import annotations

import importlib

import pytest

# (old module, attribute, new module, new attribute)
MOVED = [
    ("modelyard.methods.registry", "TRAINING_METHODS", "modelyard.methods.catalog", None),
    ("modelyard.data.active", "select", "modelyard.curation.active", None),
    ("modelyard.data.selftrain", "self_train", "modelyard.methods.selftrain", None),
    ("modelyard.data.api", "audit", "modelyard.curation.api", None),
    ("modelyard.compress.pipeline", "compress", "modelyard.compress.sweep", None),
    ("modelyard.privacy.audit", "audit_membership", "modelyard.privacy.membership", None),
    ("modelyard.registry.memory", "load_encrypted_run", "modelyard.registry.in_memory", None),
    ("modelyard.testing.backends", "check_backend", "modelyard.testing.backend_checks", None),
    ("modelyard.methods", "METHODS", "modelyard.methods", "TRAINING_METHODS"),
    ("modelyard.methods", "register_method", "modelyard.methods", "register_training_method"),
    ("modelyard.methods.catalog", "METHODS", "modelyard.methods.catalog", "TRAINING_METHODS"),
    ("modelyard.compress", "METHODS", "modelyard.compress", "COMPRESSION_METHODS"),
    (
        "modelyard.compress",
        "register_method",
        "modelyard.compress",
        "register_compression_method",
    ),
    ("modelyard.compress.base", "METHODS", "modelyard.compress.base", "COMPRESSION_METHODS"),
]


@pytest.mark.parametrize(("old", "name", "new", "new_name"), MOVED)
def test_an_old_name_warns_naming_the_new_one_and_is_the_same_object(
    old: str, name: str, new: str, new_name: str | None
) -> None:
    target = getattr(importlib.import_module(new), new_name or name)
    with pytest.warns(DeprecationWarning, match=(new_name or new).replace(".", r"\.")):
        assert getattr(importlib.import_module(old), name) is target


def test_an_unknown_name_of_a_module_with_renames_is_still_an_attribute_error() -> None:
    methods = importlib.import_module("modelyard.methods")
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        getattr(methods, "nothing_here")  # noqa: B009


def test_the_two_method_tables_are_different_registries() -> None:
    from modelyard.compress import COMPRESSION_METHODS
    from modelyard.methods import TRAINING_METHODS

    assert "lora" in TRAINING_METHODS and "lora" not in COMPRESSION_METHODS
    assert "int8-dynamic" in COMPRESSION_METHODS and "int8-dynamic" not in TRAINING_METHODS
