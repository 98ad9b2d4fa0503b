"""Schemathesis over the OpenAPI schema: generated requests never get a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from modelyard.registry.store import ModelStore
from modelyard.serve.app import create_app
from modelyard.serve.settings import ServeSettings
from tests.serve.conftest import Keys, LiveServer, start_server, stop_server


@pytest.fixture(scope="module")
def schema_server(
    tmp_path_factory: pytest.TempPathFactory, tiny_runs: list[Path], keys: Keys
) -> Iterator[LiveServer]:
    store = ModelStore(tmp_path_factory.mktemp("schema-registry"))
    store.push(tiny_runs[0], "tiny")
    store.push(tiny_runs[1], "tiny")
    store.set_alias("tiny:1", "production")
    settings_ = ServeSettings(
        models=["tiny:production"],
        watch_aliases_s=None,
        rate_limit=None,
        max_texts=8,
        max_chars=200,
    )
    live = start_server(create_app(settings_, store=store, keys=keys.store))
    yield live
    stop_server(live)


@pytest.mark.parametrize(
    ("mode", "path_parameters", "examples"),
    [
        (GenerationMode.POSITIVE, {"name": "tiny"}, 60),  # valid requests against the served model
        (GenerationMode.POSITIVE, None, 20),
        (GenerationMode.NEGATIVE, None, 40),  # requests that break the schema
    ],
)
def test_generated_requests_never_get_a_server_error(
    schema_server: LiveServer,
    keys: Keys,
    mode: GenerationMode,
    path_parameters: dict[str, str] | None,
    examples: int,
) -> None:
    raw = httpx.get(f"{schema_server.url}/openapi.json", headers=keys.headers(), timeout=30).json()
    strategy = schemathesis.openapi.from_dict(raw).as_strategy(
        mode, path_parameters=path_parameters
    )
    seen: list[int] = []

    @given(case=strategy)
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    def check(case: Any) -> None:
        response = case.call(base_url=schema_server.url, headers=keys.headers("admin"), timeout=30)
        seen.append(response.status_code)
        assert response.status_code < 500, (
            case.method,
            case.path,
            response.status_code,
            response.text[:300],
        )

    check()
    assert len(seen) >= examples // 2 and any(code == 200 for code in seen)
