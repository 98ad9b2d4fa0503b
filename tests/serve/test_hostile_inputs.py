"""The hostile-request corpus (`modelyard.testing.hostile.BAD_INPUTS`): each gets its 4xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modelyard.registry.store import ModelStore
from modelyard.serve.app import create_app
from modelyard.serve.settings import ServeSettings
from modelyard.testing.hostile import BAD_INPUTS, BadInput
from tests.serve.conftest import Keys


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, tiny_runs: list[Path], keys: Keys
) -> Iterator[TestClient]:
    store = ModelStore(tmp_path_factory.mktemp("hostile-registry"))
    store.push(tiny_runs[0], "tiny")
    settings = ServeSettings(models=["tiny"], watch_aliases_s=None, rate_limit=None)
    app = create_app(settings, store=store, keys=keys.store)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.mark.parametrize("case", BAD_INPUTS, ids=lambda case: case.name)
def test_each_hostile_request_gets_its_4xx_and_a_clear_message(
    client: TestClient, keys: Keys, case: BadInput
) -> None:
    headers = {**keys.headers(case.scope), "Content-Type": "application/json"}
    headers |= case.header_bytes()  # type: ignore[arg-type]
    answer = client.request(case.method, case.url("tiny", "1"), content=case.body, headers=headers)
    assert answer.status_code == case.status, answer.text
    assert case.message in answer.json()["error"]
