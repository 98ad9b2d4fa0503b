"""Run the dashboard alone under uvicorn, after checking that it can work safely."""

from __future__ import annotations

import logging

from modelyard.serve.auth import KeyStore
from modelyard.serve.settings import is_loopback
from modelyard.ui.settings import UiSettings, UiSettingsError

log = logging.getLogger("modelyard.ui")


def preflight(settings: UiSettings, allow_public: bool = False) -> None:
    """Raise UiSettingsError when there is no API key to log in with, the runs folder is
    missing, or the bind address is public without `allow_public`."""
    store = KeyStore(settings.keys_file)
    if not store.list():
        raise UiSettingsError(
            f"the dashboard logs in with API keys and {store.path} holds none; create one with "
            "`modelyard keys create --scope admin --name YOUR-NAME`"
        )
    if not settings.runs.is_dir():
        raise UiSettingsError(
            f"runs folder {settings.runs} does not exist; pass --runs DIR (where "
            "`modelyard train` writes runs: the recipe's run.output_dir, default runs/)"
        )
    if not is_loopback(settings.host) and not allow_public:
        raise UiSettingsError(
            f"refusing to bind {settings.host}: the dashboard speaks plain HTTP, so keys and "
            "session cookies would cross the network unencrypted. Bind 127.0.0.1 and put a TLS "
            "proxy in front, or pass --allow-public if that proxy is on this address"
        )


def run_ui(settings: UiSettings, allow_public: bool = False) -> None:
    """Serve the dashboard until interrupted; raise UiSettingsError before binding when
    `preflight` fails."""
    import uvicorn

    from modelyard.ui.app import create_ui_app

    preflight(settings, allow_public)
    app = create_ui_app(settings)
    log.warning("dashboard on http://%s:%d", settings.host, settings.port)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", server_header=False)
