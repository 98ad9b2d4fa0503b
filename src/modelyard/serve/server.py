"""Run the app under uvicorn: checks first, then one process or `workers` processes.

Before anything binds, the settings are checked: a public address needs auth on, auth
needs at least one key, and every model must resolve in the registry to a verified
artifact. On SIGTERM readiness turns off, queued texts run at once, requests in flight
finish, then the process exits (uvicorn's graceful shutdown, bounded by drain_timeout_s).

With `workers > 1` this process binds the socket once and starts that many worker
processes (`python -m modelyard.serve.server FD`) that all accept on it; it forwards
SIGTERM/SIGINT to them and waits. Workers are started with a small entry point rather
than through uvicorn's supervisor, which re-imports the caller's `__main__` in each
child and gives up on children that take longer than a few seconds to load a model.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from types import FrameType
from typing import Any

from starlette.types import ASGIApp

from modelyard.registry.manifest import verify_manifest
from modelyard.registry.store import ModelStore
from modelyard.serve.auth import KeyStore
from modelyard.serve.protocol import uvicorn_limits
from modelyard.serve.settings import SETTINGS_ENV, ServeSettings, ServeSettingsError, check_bind

log = logging.getLogger("modelyard.serve")
_BACKLOG = 2048


def preflight(settings: ServeSettings) -> None:
    """Raise a ModelyardError when the settings are unsafe, keys are missing or a model is bad."""
    check_bind(settings)
    if settings.auth and not KeyStore(settings.keys_file).list():
        raise ServeSettingsError(
            f"auth is on but there are no API keys in {KeyStore(settings.keys_file).path}; "
            "create one with `modelyard keys create --scope predict` "
            "(or pass --no-auth to serve 127.0.0.1 without keys)"
        )
    store = ModelStore(settings.registry)
    for ref in settings.models:
        verify_manifest(store.resolve(ref).path)


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    # uvicorn re-raises the signal after its graceful shutdown; a drained server exits 0
    sys.exit(0)


def _log_to_stderr() -> None:
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def _uvicorn_options(settings: ServeSettings) -> dict[str, Any]:
    return {
        "timeout_graceful_shutdown": int(settings.drain_timeout_s),
        "log_level": "info",
        "access_log": settings.access_log,
        "server_header": False,
        **uvicorn_limits(),
    }


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(_BACKLOG)
    return sock


def settle_heap() -> int:
    """Collect once, then move every surviving object out of the collector's reach.

    Returns how many objects were frozen. Loading models leaves hundreds of thousands of
    long-lived objects (modules, tokenizer tables, parameters); without this, each full
    collection walks all of them while holding the GIL, which stalls the event loop for
    hundreds of milliseconds and shows up as a slow refusal at the tail under overload.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def serve_socket(
    settings: ServeSettings, sock: socket.socket, mounts: Mapping[str, ASGIApp] | None = None
) -> None:
    """Load the models, then serve the app (and `mounts`) on a bound socket until told to stop."""
    import uvicorn

    from modelyard.serve.app import create_app

    _log_to_stderr()
    app = create_app(settings, mounts=mounts)
    app.state.serve.start()  # load before accepting, so a bad model is a clean error
    settle_heap()
    signal.signal(signal.SIGTERM, _exit_cleanly)
    server = uvicorn.Server(uvicorn.Config(app, **_uvicorn_options(settings)))
    server.run(sockets=[sock])


def _supervise(settings: ServeSettings, sock: socket.socket) -> None:
    env = {**os.environ, SETTINGS_ENV: settings.model_dump_json()}
    command = [sys.executable, "-m", "modelyard.serve.server", str(sock.fileno())]
    workers = [
        subprocess.Popen(command, env=env, pass_fds=[sock.fileno()])
        for _ in range(settings.workers)
    ]

    def forward(signum: int, frame: FrameType | None) -> None:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [worker.wait() for worker in workers]
    log.info("all %d workers stopped (exit codes %s)", len(workers), codes)


def run_server(settings: ServeSettings, mounts: Mapping[str, ASGIApp] | None = None) -> None:
    """Serve until SIGTERM/SIGINT; raise a ModelyardError before binding when preflight fails.

    `mounts` (apps by path prefix, such as the dashboard) run in the one server process, so
    they need `workers == 1` (ServeSettingsError otherwise).
    """
    preflight(settings)
    if mounts and settings.workers != 1:
        raise ServeSettingsError(
            f"--ui runs in the serving process, so it needs --workers 1 (got {settings.workers}); "
            "or run `modelyard ui` as its own process beside the server"
        )
    _log_to_stderr()
    sock = _bind(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    log.info("listening on http://%s:%d with %d worker(s)", host, port, settings.workers)
    if settings.workers == 1:
        serve_socket(settings, sock, mounts)
    else:
        _supervise(settings, sock)


def _worker_main(fd: int) -> None:
    settings = ServeSettings.model_validate_json(os.environ[SETTINGS_ENV])
    serve_socket(settings, socket.socket(fileno=fd))


if __name__ == "__main__":
    _worker_main(int(sys.argv[1]))
