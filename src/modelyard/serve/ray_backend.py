"""`modelyard serve --backend ray`: the same app and predictor as replicas on Ray Serve.

Each replica builds the app with `create_app(settings)` when it starts (Ray Serve's
late-bound ingress), so batching, keys, limits, metrics and hot swaps behave as under
uvicorn; Ray adds replicas (`workers`) across the cluster's nodes. Replicas read the
registry and the key file from the paths in the settings, so on a multi-node cluster
those must be on a shared filesystem.
"""

from __future__ import annotations

from typing import Any

from modelyard.plugins import require
from modelyard.serve.server import preflight
from modelyard.serve.settings import ServeSettings

APP_NAME = "modelyard"


def build_deployment(settings: ServeSettings) -> Any:
    """Return a bound Ray Serve application serving `settings` (not yet running).

    Raises MissingExtraError when Ray Serve is not installed.
    """
    require("ray.serve", extra="ray")
    from ray import serve

    settings_json = settings.model_dump_json()

    # a builder function, not a class with `__serve_build_asgi_app__`: Ray calls it on each
    # replica as it starts, in every Ray 2.x release (the class hook arrived after 2.55, which
    # Flower's simulation extra pins), and it carries the settings as a string
    def build_app() -> Any:
        from modelyard.serve.app import create_app

        return create_app(ServeSettings.model_validate_json(settings_json))

    deployment = serve.deployment(
        name="modelyard",
        num_replicas=settings.workers,
        ray_actor_options={"num_cpus": 0},
        graceful_shutdown_timeout_s=settings.drain_timeout_s,
    )(serve.ingress(build_app)())
    return deployment.bind()


def run_ray(settings: ServeSettings, address: str | None = None, blocking: bool = True) -> None:
    """Start (or join, with `address`) a Ray instance and run the app on Ray Serve.

    The HTTP proxy binds settings.host:settings.port (127.0.0.1 by default). With
    `blocking`, returns when interrupted. Raises a ModelyardError when preflight fails
    and MissingExtraError when Ray Serve is not installed.
    """
    preflight(settings)
    ray = require("ray", extra="ray")
    require("ray.serve", extra="ray")
    from ray import serve

    if not ray.is_initialized():  # type: ignore[attr-defined]
        # a local instance listens on loopback only; a cluster address brings its own network
        local = {} if address else {"_node_ip_address": "127.0.0.1"}
        ray.init(address=address, include_dashboard=False, **local)  # type: ignore[attr-defined]
    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(build_deployment(settings), name=APP_NAME, route_prefix="/", blocking=blocking)
