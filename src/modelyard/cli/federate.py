"""`modelyard federate`: federated training, simulated on one machine or over the network.

`modelyard federate RECIPE` (same as `federate simulate RECIPE`) runs the Flower
simulation; `federate server` and `federate client` run the federation as separate
processes over the network; `federate keys` creates their certificates and keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

console = Console()

SIMULATE = "simulate"


class _SimulateByDefault(TyperGroup):
    """A group whose first argument, when it is not a subcommand, is the simulation's recipe."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [SIMULATE, *args]
        return super().resolve_command(ctx, args)


federate_app = typer.Typer(
    cls=_SimulateByDefault,
    help="Federated training on Flower: `federate RECIPE` simulates the clients on this "
    "machine; `federate server` / `federate client` run them over the network.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

_Overrides = Annotated[
    list[str] | None, typer.Argument(help="key=value overrides, e.g. federated.rounds=3.")
]
_Recipe = Annotated[Path, typer.Argument(help="Recipe YAML; its federated: section applies.")]
_Resume = Annotated[bool, typer.Option("--resume", help="Continue from the last completed round.")]
_Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing run.")]


@federate_app.command(SIMULATE)
def federate_command(
    recipe: _Recipe,
    overrides: _Overrides = None,
    clients: Annotated[
        int | None, typer.Option("--clients", min=1, help="Number of clients (Flower SuperNodes).")
    ] = None,
    partition: Annotated[
        str | None,
        typer.Option("--partition", help="iid, dirichlet:ALPHA or column:NAME."),
    ] = None,
    resume: _Resume = False,
    overwrite: _Overwrite = False,
) -> None:
    """Train a recipe with federated learning on the Flower simulation engine."""
    from modelyard.api import federate

    result = federate(
        recipe, clients, partition, resume=resume, overwrite=overwrite, overrides=overrides
    )
    _print_rounds(result)


@federate_app.command("server")
def server_command(
    recipe: _Recipe,
    overrides: _Overrides = None,
    keys: Annotated[
        Path | None,
        typer.Option(
            "--keys",
            help="Directory from `federate keys`: server certificate and key, CA, and the "
            "public keys of the clients allowed in (client-*.pub).",
        ),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option("--insecure", help="No TLS and no client authentication (testing only)."),
    ] = False,
    address: Annotated[
        str, typer.Option("--address", help="HOST:PORT the clients connect to.")
    ] = "0.0.0.0:9092",
    resume: _Resume = False,
    overwrite: _Overwrite = False,
) -> None:
    """Run a federation's server (a Flower SuperLink) and save the trained model as a run."""
    from modelyard.api import serve_federation

    result = serve_federation(
        recipe,
        keys=keys,
        insecure=insecure,
        address=address,
        resume=resume,
        overwrite=overwrite,
        overrides=overrides,
    )
    _print_rounds(result)


@federate_app.command("client")
def client_command(
    recipe: _Recipe,
    data: Annotated[Path, typer.Option("--data", help="This client's labelled rows (CSV...).")],
    server: Annotated[str, typer.Option("--server", help="The server's HOST:PORT.")],
    key: Annotated[
        Path | None, typer.Option("--key", help="This client's private key (client-N.key).")
    ] = None,
    root_certificates: Annotated[
        Path | None,
        typer.Option("--root-certificates", help="The federation's CA certificate (ca.crt)."),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option("--insecure", help="No TLS and no authentication (testing only)."),
    ] = False,
    max_wait: Annotated[
        float,
        typer.Option(
            "--max-wait", help="Seconds to keep trying when the server is not (or no longer) there."
        ),
    ] = 60.0,
) -> None:
    """Join a federation as a client (a Flower SuperNode); the rows never leave this machine."""
    from modelyard.api import join_federation

    code = join_federation(
        recipe,
        data,
        server,
        key=key,
        root_certificates=root_certificates,
        insecure=insecure,
        max_wait=max_wait,
    )
    if code != 0:
        raise typer.Exit(code)


@federate_app.command("keys")
def keys_command(
    directory: Annotated[Path, typer.Argument(help="Directory to write the keys into.")],
    clients: Annotated[int, typer.Option("--clients", min=1, help="Client key pairs to make.")],
    hosts: Annotated[
        list[str] | None,
        typer.Option(
            "--host", help="A name or IP the clients dial (repeatable); localhost always."
        ),
    ] = None,
    days: Annotated[int, typer.Option("--days", min=1, help="Certificate validity.")] = 365,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace keys already in DIRECTORY.")
    ] = False,
) -> None:
    """Create a federation's CA, server certificate and client key pairs."""
    from modelyard.api import create_federation_keys

    files = create_federation_keys(directory, clients, hosts, days=days, overwrite=overwrite)
    console.print(f"CA certificate (give to every client): {files.ca_cert}")
    console.print(f"server certificate and key: {files.server_cert}, {files.server_key}")
    for private in files.client_keys:
        console.print(f"client key (give to that client only): {private}")


def _print_rounds(result: Any) -> None:
    table = Table(title=f"federation: {result.run_dir}")
    for title in ("round", "clients ok", "failed", "accuracy", "bytes sent", "bytes received"):
        table.add_column(title, justify="right")
    for r in result.rounds:
        table.add_row(
            str(r["round"]),
            str(r.get("clients_replied", 0)),
            str(r.get("clients_failed", 0)),
            f"{r.get('accuracy', float('nan')):.4f}",
            f"{r['bytes_sent']:,}",
            f"{r['bytes_received']:,}",
        )
    console.print(table)
    console.print(f"test accuracy {result.metrics['accuracy']:.4f}; run saved to {result.run_dir}")


def register(app: typer.Typer) -> None:
    """Add `modelyard federate` (and its server, client and keys commands) to the main app."""
    app.add_typer(federate_app, name="federate")
