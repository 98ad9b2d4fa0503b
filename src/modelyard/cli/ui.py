"""`modelyard ui`: the web dashboard, and the pieces `modelyard serve --ui` mounts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from modelyard.plugins import require

UI_PREFIX = "/ui"


def ui_settings(
    runs: Path, registry: Path | None, keys_file: Path | None, data: Path | None, **extra: Any
) -> Any:
    """Return the dashboard's UiSettings after checking its extra is installed.

    Raises MissingExtraError when the `ui` extra is missing.
    """
    for module in ("jinja2", "starlette", "uvicorn", "multipart", "markdown_it"):
        require(module, extra="ui")
    from modelyard.ui.settings import UiSettings

    return UiSettings(
        runs=runs, registry=registry, keys_file=keys_file, data=data or Path("."), **extra
    )


def mounted_ui(settings: Any) -> dict[str, Any]:
    """Return the dashboard app to mount under UI_PREFIX of `modelyard serve`, by prefix."""
    from modelyard.ui.app import create_ui_app
    from modelyard.ui.server import preflight

    preflight(settings)
    return {UI_PREFIX: create_ui_app(settings)}


def ui(
    runs: Annotated[Path, typer.Option(help="Runs folder (the recipes' run.output_dir).")] = Path(
        "runs"
    ),
    registry: Annotated[Path | None, typer.Option(help="Registry root.")] = None,
    keys_file: Annotated[
        Path | None,
        typer.Option("--keys-file", help="Key file (default: $MODELYARD_HOME/keys.json)."),
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="Folder of pool files for active learning (default: .).")
    ] = None,
    jobs_queue: Annotated[
        Path | None, typer.Option(help="Job queue the jobs page shows (default: the usual one).")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8765,
    allow_public: Annotated[
        bool, typer.Option(help="Bind a non-loopback address (only behind a TLS proxy).")
    ] = False,
) -> None:
    """Serve the dashboard: runs, comparisons, compression, explanations, labelling, playground."""
    settings = ui_settings(
        runs, registry, keys_file, data, host=host, port=port, jobs_queue=jobs_queue
    )
    from modelyard.ui.server import run_ui

    run_ui(settings, allow_public)


def register(app: typer.Typer) -> None:
    """Attach `ui` to the main command line."""
    app.command("ui")(ui)
