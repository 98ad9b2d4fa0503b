"""`modelyard registry ...`: push runs in as versions, move aliases, list what is stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

registry_app = typer.Typer(
    rich_markup_mode=None,  # plain help wraps at any width; rich panels cut option names at 80
    help="The model registry: versions and aliases (root: $MODELYARD_HOME/registry or ~/.modelyard/registry).",
    no_args_is_help=True,
)
console = Console()
RegistryOption = Annotated[
    Path | None,
    typer.Option("--registry", help="Registry root (default: $MODELYARD_HOME/registry)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


@registry_app.command("push")
def push(
    run: Annotated[Path, typer.Argument(help="A finished run (or compressed artifact) directory.")],
    name: Annotated[str, typer.Option("--name", help="Model name in the registry.")],
    registry: RegistryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Verify a run and copy it in atomically as the next version of NAME."""
    from modelyard.api import push as push_run

    stored = push_run(run, name, registry)
    if as_json:
        console.print_json(
            json.dumps({"name": stored.name, "version": stored.version, "path": str(stored.path)})
        )
        return
    console.print(f"pushed {run} as {stored}\nserve it: modelyard serve {stored}")


@registry_app.command("alias")
def alias(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION (or NAME:ALIAS) to point at.")],
    alias_name: Annotated[
        str, typer.Argument(metavar="ALIAS", help="Alias to set, e.g. production.")
    ],
    registry: RegistryOption = None,
) -> None:
    """Point ALIAS at a version (an atomic rename: readers see the old or the new version)."""
    from modelyard.api import set_alias

    target = set_alias(ref, alias_name, registry)
    console.print(f"{target.name}:{alias_name} -> version {target.version}")


@registry_app.command("list")
def list_models(
    name: Annotated[str | None, typer.Argument(help="Show one model only.")] = None,
    registry: RegistryOption = None,
    as_json: JsonOption = False,
) -> None:
    """List models with their versions and aliases."""
    from modelyard.registry.store import ModelStore

    store = ModelStore(registry)
    names = [name] if name else store.names()
    if as_json:
        rows = {n: {"versions": store.versions(n), "aliases": store.aliases(n)} for n in names}
        console.print_json(json.dumps(rows))
        return
    table = Table(title=f"registry {store.root}")
    for column in ("model", "versions", "aliases"):
        table.add_column(column)
    for n in names:
        aliases = ", ".join(f"{a} -> {v}" for a, v in store.aliases(n).items())
        table.add_row(n, ", ".join(map(str, store.versions(n))), aliases)
    console.print(table)
