"""`modelyard serve` and `modelyard keys ...`; `register(app)` attaches them (and `registry`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from modelyard.errors import RecipeError
from modelyard.plugins import require

keys_app = typer.Typer(
    rich_markup_mode=None,  # plain help wraps at any width; rich panels cut option names at 80
    help="API keys of the HTTP server (salted hashes; shown once). Signing and encryption "
    "keys: `modelyard signing-keys`, `modelyard encryption-keys`.",
    no_args_is_help=True,
)
console = Console()
KeysFile = Annotated[
    Path | None, typer.Option("--keys-file", help="Key file (default: $MODELYARD_HOME/keys.json).")
]


@keys_app.command("create")
def keys_create(
    scope: Annotated[
        str, typer.Option(help="predict: call models; admin: also hot-swap them.")
    ] = "predict",
    name: Annotated[str, typer.Option(help="A note saying who or what uses the key.")] = "",
    keys_file: KeysFile = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the key as JSON.")] = False,
) -> None:
    """Create an API key and print it once (only its salted hash is stored)."""
    from modelyard.api import create_api_key

    info, key = create_api_key(scope, name, keys_file)
    if as_json:
        console.print_json(json.dumps({"id": info.id, "scope": info.scope, "key": key}))
        return
    console.print(f"key {info.id} (scope {info.scope}) — shown only now, store it safely:")
    print(key)
    console.print("use it as: Authorization: Bearer <key>")


@keys_app.command("list")
def keys_list(keys_file: KeysFile = None) -> None:
    """List key ids, scopes, names and creation times (never the keys)."""
    from modelyard.api import list_api_keys

    table = Table(title="API keys")
    for column in ("id", "scope", "name", "created"):
        table.add_column(column)
    for info in list_api_keys(keys_file):
        table.add_row(info.id, info.scope, info.name, info.created)
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key id (see `keys list`).")],
    keys_file: KeysFile = None,
) -> None:
    """Delete a key; running servers refuse it from their next request on."""
    from modelyard.api import revoke_api_key

    info = revoke_api_key(key_id, keys_file)
    console.print(f"revoked key {info.id} ({info.scope})")


def _recipe_serve_section(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    if not path.is_file():
        raise RecipeError(f"recipe file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML: {exc}") from None
    section = raw.get("serve", {}) if isinstance(raw, dict) else {}
    if not isinstance(section, dict):
        raise RecipeError(f"{path}: `serve` must be a mapping of settings")
    return section


def build_settings(models: list[str], recipe: Path | None, options: dict[str, Any]) -> Any:
    """Return ServeSettings from the recipe's `serve` section, then the options given (not None).

    Raises RecipeError listing every invalid setting.
    """
    from pydantic import ValidationError

    from modelyard.recipe import format_validation_error
    from modelyard.serve.settings import ServeSettings

    values = {**_recipe_serve_section(recipe), "models": models}
    values.update({k: v for k, v in options.items() if v is not None})
    try:
        return ServeSettings.model_validate(values)
    except ValidationError as exc:
        raise RecipeError(format_validation_error(exc, str(recipe or "serve options"))) from None


def serve(
    models: Annotated[
        list[str], typer.Argument(help="Registry models: NAME, NAME:VERSION or NAME:ALIAS.")
    ],
    recipe: Annotated[
        Path | None, typer.Option(help="Take defaults from this recipe's `serve` section.")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default 8080).")] = None,
    workers: Annotated[int | None, typer.Option(help="Server processes (default 1).")] = None,
    backend: Annotated[str | None, typer.Option(help="local (uvicorn) or ray (Ray Serve).")] = None,
    auth: Annotated[
        bool | None, typer.Option("--auth/--no-auth", help="Require API keys (default on).")
    ] = None,
    max_batch_size: Annotated[
        int | None, typer.Option(help="Texts per forward pass (default 32).")
    ] = None,
    max_wait_ms: Annotated[
        float | None, typer.Option(help="Wait for a batch to fill (default 5).")
    ] = None,
    rate_limit: Annotated[
        float | None, typer.Option(help="Requests/s per key (default 50).")
    ] = None,
    registry: Annotated[Path | None, typer.Option(help="Registry root.")] = None,
    keys_file: KeysFile = None,
    ui: Annotated[
        bool, typer.Option("--ui", help="Also serve the dashboard under /ui (same keys).")
    ] = False,
    runs: Annotated[Path, typer.Option(help="Runs folder the dashboard shows (--ui).")] = Path(
        "runs"
    ),
    jobs_queue: Annotated[
        Path | None, typer.Option(help="Also show this job queue, read-only, at /v1/jobs.")
    ] = None,
) -> None:
    """Serve registry models over HTTP: /v1/predict, Open Inference Protocol v2, OpenAI-compatible
    /v1/chat/completions and /v1/completions for generation runs, /metrics."""
    options = {
        "host": host, "port": port, "workers": workers, "backend": backend, "auth": auth,
        "max_batch_size": max_batch_size, "max_wait_ms": max_wait_ms, "rate_limit": rate_limit,
        "registry": registry, "keys_file": keys_file, "jobs_queue": jobs_queue,
    }  # fmt: skip
    settings = build_settings(models, recipe, options)
    for module in ("fastapi", "uvicorn", "prometheus_client"):
        require(module, extra="serve")
    mounts = None
    if ui:
        from modelyard.cli.ui import mounted_ui, ui_settings

        if settings.backend == "ray":
            raise RecipeError("--ui works with the local backend; run `modelyard ui` beside Ray")
        mounts = mounted_ui(
            ui_settings(
                runs, settings.registry, settings.keys_file, None, jobs_queue=settings.jobs_queue
            )
        )
    if settings.backend == "ray":
        from modelyard.serve.ray_backend import run_ray

        run_ray(settings)
        return
    from modelyard.serve.server import run_server

    run_server(settings, mounts)


def register(app: typer.Typer) -> None:
    """Attach `serve`, `keys` and `registry` to the main command line."""
    from modelyard.cli.registry import registry_app

    app.command("serve")(serve)
    app.add_typer(keys_app, name="keys")
    app.add_typer(registry_app, name="registry")
