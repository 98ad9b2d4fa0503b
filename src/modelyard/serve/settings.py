"""Settings of one server: the recipe's `serve` section plus what to serve and from where."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from pydantic import Field, field_validator

from modelyard.errors import ModelyardError
from modelyard.recipe import ServeConfig
from modelyard.registry.store import RegistryError, parse_ref

SETTINGS_ENV = "MODELYARD_SERVE_SETTINGS"


class ServeSettingsError(ModelyardError):
    """The server settings are unsafe or inconsistent (for example a public bind with auth off)."""


class ServeSettings(ServeConfig):
    """Everything `create_app` needs: the `serve` recipe section, the models, registry and keys."""

    models: list[str] = Field(
        min_length=1, description="Registry references to serve: NAME, NAME:VERSION or NAME:ALIAS."
    )
    registry: Path | None = Field(
        None, description="Registry root; null: $MODELYARD_HOME/registry or ~/.modelyard/registry."
    )
    keys_file: Path | None = Field(
        None, description="API key file; null: $MODELYARD_HOME/keys.json or ~/.modelyard/keys.json."
    )
    jobs_queue: Path | None = Field(
        None, description="Job queue shown read-only at /v1/jobs (admin keys); null: no job routes."
    )

    @field_validator("models")
    @classmethod
    def _refs_are_registry_refs(cls, refs: list[str]) -> list[str]:
        try:
            names = [parse_ref(ref).name for ref in refs]
        except RegistryError as exc:
            raise ValueError(str(exc)) from None
        if len(set(names)) != len(names):
            raise ValueError(f"each model can be served once; got {refs}")
        return refs

    def threads(self) -> int:
        """Return the inference threads per worker: num_threads, else the usable cores / workers."""
        if self.num_threads is not None:
            return self.num_threads
        return max(1, len(os.sched_getaffinity(0)) // self.workers)


def is_loopback(host: str) -> bool:
    """Return True when `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(settings: ServeSettings) -> None:
    """Raise ServeSettingsError when the server would accept unauthenticated public traffic."""
    if not settings.auth and not is_loopback(settings.host):
        raise ServeSettingsError(
            f"refusing to bind {settings.host} with auth off: anyone who can reach it could use "
            "the model. Keep auth on (create a key with `modelyard keys create --scope predict`) "
            "or bind 127.0.0.1"
        )
