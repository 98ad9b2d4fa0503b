"""Extension points, their bound checks, and the pytest helper; every point is swept somewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.errors import UnknownPluginError
from modelyard.testing import EXTENSION_POINTS, checks_for, parametrize_with_checks

TESTS = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("point", EXTENSION_POINTS.names())
def test_one_bound_check_per_registered_entry(point: str) -> None:
    spec = EXTENSION_POINTS.get(point)
    pairs = checks_for(point)
    assert [name for name, _ in pairs] == spec.entries() != []
    for name, check in pairs:
        assert (check.point, check.entry, check.check) == (point, name, spec.check)
        assert repr(check) == f"{spec.check.__name__}({name!r})"


def test_a_bound_check_runs_its_check_on_its_entry() -> None:
    [check] = [c for name, c in checks_for("query-strategy") if name == "margin"]
    assert check() is None
    with pytest.raises(TypeError):
        check(unexpected=1)


def test_an_unknown_extension_point_lists_the_known_ones() -> None:
    with pytest.raises(UnknownPluginError, match="unknown extension point 'widget'; available: "):
        checks_for("widget")


def test_the_pytest_helper_parametrizes_entry_and_check() -> None:
    mark = parametrize_with_checks("pii-detector")
    names, pairs = mark.args
    assert names == ("entry", "check")
    expected = [name for name, _ in checks_for("pii-detector")]
    assert [entry for entry, _ in pairs] == mark.kwargs["ids"] == expected


@pytest.mark.parametrize("point", EXTENSION_POINTS.names())
def test_every_extension_point_is_swept_by_the_project_tests(point: str) -> None:
    call = f'parametrize_with_checks("{point}")'
    sweeps = [p for p in TESTS.rglob("test_*.py") if call in p.read_text(encoding="utf-8")]
    assert sweeps, f"no test under tests/ runs @{call}"
