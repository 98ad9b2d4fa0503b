"""`modelyard serve --backend ray` against a local Ray instance (marked ray and slow: it takes half a minute to a minute)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modelyard.registry.store import ModelStore
from modelyard.serve.settings import ServeSettings
from tests.serve.conftest import Keys, wait_until

# about half a minute to start Ray and a Serve deployment: out of the quick tier
pytestmark = [pytest.mark.ray, pytest.mark.slow]
ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    try:
        yield
    finally:
        serve.shutdown()
        ray.shutdown()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v2/health/ready", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_same_app_runs_on_ray_serve(
    local_ray: None, tmp_path: Path, tiny_runs: list[Path], keys: Keys
) -> None:
    from modelyard.serve.ray_backend import run_ray

    store = ModelStore(tmp_path / "registry")
    store.push(tiny_runs[0], "tiny")
    port = _free_port()
    settings = ServeSettings(
        models=["tiny"],
        port=port,
        registry=store.root,
        keys_file=keys.store.path,
        watch_aliases_s=None,
    )
    run_ray(settings, blocking=False)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _ready(url), 180, "the Ray Serve replica")
    with httpx.Client(base_url=url, timeout=30) as client:
        anonymous = client.post("/v1/predict", json={"texts": ["my invoice"]})
        answer = client.post("/v1/predict", json={"texts": ["my invoice"]}, headers=keys.headers())
        metrics = client.get("/metrics", headers=keys.headers())
    assert anonymous.status_code == 401
    assert answer.status_code == 200 and answer.json()["version"] == "1"
    assert 'modelyard_requests_total{code="200",method="POST",route="/v1/predict"}' in metrics.text
