"""Every command is a thin map of a public function: same parameter names, same defaults.

The command line is walked as a user sees it (`modelyard.cli.app`); each command's function
comes from `modelyard.cli.surface.API_OF`, and every difference must be written in GAPS.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from modelyard.cli import app
from modelyard.cli.surface import API_OF, GAPS, PRESENTATION, SERVERS


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield " ".join(path), command


COMMANDS = dict(_commands(typer.main.get_command(app)))


def _function(dotted: str) -> Callable[..., Any]:
    module, _, name = dotted.rpartition(".")
    function: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return function


def _same_default(cli: Any, api: Any) -> bool:
    if isinstance(cli, list | tuple) or isinstance(api, list | tuple):
        return list(cli or []) == list(api or [])
    if isinstance(cli, Path) or isinstance(api, Path):
        return cli is not None and api is not None and Path(cli) == Path(api)
    return bool(cli == api)


def _differences(name: str, command: Any) -> dict[str, str]:
    """Return parameter -> how the command differs from its functions."""
    signatures = [inspect.signature(_function(f)).parameters for f in API_OF[name]]
    found = {}
    for param in command.params:
        if param.name in PRESENTATION:
            continue
        matches = [s[param.name] for s in signatures if param.name in s]
        if not matches:
            found[param.name] = "no such parameter"
            continue
        default = matches[0].default
        if default is inspect.Parameter.empty:
            if not param.required:
                found[param.name] = f"optional here ({param.default!r}), required in Python"
        elif param.required:
            found[param.name] = f"required here, {default!r} in Python"
        elif not _same_default(param.default, default):
            found[param.name] = f"default {param.default!r} here, {default!r} in Python"
    return found


def test_every_command_is_mapped() -> None:
    assert set(COMMANDS) - set(API_OF) - set(SERVERS) == set()
    assert set(API_OF) | set(SERVERS) <= set(COMMANDS)  # no stale entries
    assert set(GAPS) <= set(API_OF)


@pytest.mark.parametrize("name", sorted(API_OF))
def test_command_parameters_are_the_functions(name: str) -> None:
    found = _differences(name, COMMANDS[name])
    assert set(found) == set(GAPS.get(name, {})), (
        f"`modelyard {name}` differs from {', '.join(API_OF[name])}: {found}"
    )


def test_top_level_names_still_work() -> None:
    import modelyard
    import modelyard.api as api

    for name in modelyard.__all__:
        assert getattr(modelyard, name) is not None
    for name in api.__all__:
        assert callable(getattr(api, name)), name
