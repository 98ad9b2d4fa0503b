"""A real uvicorn server on 127.0.0.1: back-pressure, deadlines, hot reload under load, tritonclient."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from fastapi import FastAPI

from modelyard.registry.store import ModelStore
from tests.serve.conftest import LABELS, Keys, LiveServer, wait_until

PREDICT = {"texts": ["my parcel is late"]}
Start = Callable[[FastAPI], LiveServer]


def _depth(server: LiveServer) -> int:
    return int(server.app.state.serve.models.get("tiny").predictor.depth)


def test_full_queue_answers_503_quickly_and_queued_requests_finish(
    make_app: Callable[..., FastAPI], live_server: Start, keys: Keys
) -> None:
    server = live_server(make_app(max_queue=2, max_batch_size=64, max_wait_ms=10_000))
    with (
        ThreadPoolExecutor(2) as pool,
        httpx.Client(base_url=server.url, headers=keys.headers(), timeout=30) as client,
    ):
        queued = [pool.submit(client.post, "/v1/predict", json=PREDICT) for _ in range(2)]
        wait_until(lambda: _depth(server) == 2, what="two queued texts")
        began = time.perf_counter()
        refused = client.post("/v1/predict", json=PREDICT)
        refused_ms = (time.perf_counter() - began) * 1000
        server.app.state.serve.models.drain()  # stop the 10 s batch window
        answers = [f.result(timeout=30) for f in queued]
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "queue is full" in refused.json()["error"] and refused_ms < 1000
    assert [a.status_code for a in answers] == [200, 200]


def test_full_queue_refuses_before_reading_the_body(
    make_app: Callable[..., FastAPI], live_server: Start, keys: Keys
) -> None:
    server = live_server(make_app(max_queue=1, max_batch_size=64, max_wait_ms=10_000))
    bad = {"content": b"not json", "headers": {"Content-Type": "application/json"}}
    with (
        ThreadPoolExecutor(1) as pool,
        httpx.Client(base_url=server.url, headers=keys.headers(), timeout=30) as client,
    ):
        assert client.post("/v1/predict", **bad).status_code == 422  # parsed while not full
        queued = pool.submit(client.post, "/v1/predict", json=PREDICT)
        wait_until(lambda: _depth(server) == 1, what="one queued text")
        refused = [
            client.post("/v1/predict", **bad),
            client.post("/v2/models/tiny/infer", **bad),
        ]
        listing = client.get("/v1/models")  # routes that queue nothing still answer
        server.app.state.serve.models.drain()
        answer = queued.result(timeout=30)
    # a malformed body answers 503, not 422: the refusal came before the body was parsed
    assert [r.status_code for r in refused] == [503, 503]
    assert all(r.json()["code"] == "overloaded" for r in refused)
    assert listing.status_code == 200 and answer.status_code == 200


def test_deadline_answers_504(
    make_app: Callable[..., FastAPI], live_server: Start, keys: Keys
) -> None:
    server = live_server(make_app(request_timeout_s=0.2, max_batch_size=64, max_wait_ms=10_000))
    with httpx.Client(base_url=server.url, headers=keys.headers(), timeout=30) as client:
        began = time.perf_counter()
        answer = client.post("/v1/predict", json=PREDICT)
        elapsed = time.perf_counter() - began
    assert answer.status_code == 504 and "0.2 s deadline" in answer.json()["error"]
    assert elapsed < 5


def _load(
    url: str, headers: dict[str, str], stop: threading.Event, done: list[tuple[int, str]]
) -> None:
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for _ in range(400):  # bounded even if `stop` never comes
            if stop.is_set():
                return
            answer = client.post(
                "/v1/predict", json={"texts": ["refund my card", "the parcel arrived"]}
            )
            done.append((answer.status_code, answer.json().get("version", "")))


def test_hot_reload_under_load_drops_nothing(
    make_app: Callable[..., FastAPI], live_server: Start, keys: Keys
) -> None:
    server = live_server(make_app(max_wait_ms=2, rate_limit=None))
    stop, done = threading.Event(), []  # type: ignore[var-annotated]
    with ThreadPoolExecutor(4) as pool:
        loads = [pool.submit(_load, server.url, keys.headers(), stop, done) for _ in range(4)]
        with httpx.Client(base_url=server.url, headers=keys.headers("admin"), timeout=60) as admin:
            for version in ("2", "1", "2"):
                seen = len(done)
                wait_until(lambda seen=seen: len(done) >= seen + 20, what="requests between swaps")
                swap = admin.post("/v1/admin/models/tiny/reload", json={"version": version})
                assert swap.status_code == 200 and swap.json()["version"] == version
        seen = len(done)
        wait_until(lambda: len(done) >= seen + 20, what="requests after the last swap")
        stop.set()
        for load in loads:
            load.result(timeout=120)
    failed = [r for r in done if r[0] != 200]
    assert not failed, f"failed requests: {failed[:5]}"
    assert {v for _, v in done} == {"1", "2"} and done[-1][1] == "2"


def test_server_follows_an_alias_when_it_moves(
    make_app: Callable[..., FastAPI], live_server: Start, keys: Keys, store: ModelStore
) -> None:
    server = live_server(make_app(watch_aliases_s=0.05))
    with httpx.Client(base_url=server.url, headers=keys.headers(), timeout=30) as client:
        assert client.post("/v1/predict", json=PREDICT).json()["version"] == "1"
        store.set_alias("tiny:2", "production")
        wait_until(
            lambda: client.post("/v1/predict", json=PREDICT).json()["version"] == "2",
            what="the swap",
        )
        metrics = client.get("/metrics").text
    assert 'modelyard_model_version{model="tiny"} 2.0' in metrics


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_works_unchanged(
    make_app: Callable[..., FastAPI], live_server: Start, keys: Keys, binary: bool
) -> None:
    server = live_server(make_app())
    client = triton.InferenceServerClient(
        f"127.0.0.1:{server.port}", connection_timeout=30, network_timeout=30
    )
    headers = keys.headers()  # tritonclient adds its own entries to the dict it is given
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("tiny", headers=headers)
        meta = client.get_model_metadata("tiny", headers=headers)
        assert meta["inputs"][0]["datatype"] == "BYTES" and meta["versions"] == ["1"]
        texts = np.array([["my invoice"], ["reset my password please"]], dtype=object)
        tensor = triton.InferInput("text", list(texts.shape), "BYTES")
        tensor.set_data_from_numpy(texts, binary_data=binary)
        outputs = (
            None
            if binary
            else [
                triton.InferRequestedOutput(n, binary_data=False)
                for n in ("label", "probabilities")
            ]
        )
        result = client.infer("tiny", [tensor], outputs=outputs, headers=keys.headers())
        with pytest.raises(triton.InferenceServerException, match="needs an API key"):
            client.infer("tiny", [tensor])
    finally:
        client.close()
    probs = result.as_numpy("probabilities")
    labels = [x.decode() if isinstance(x, bytes) else x for x in result.as_numpy("label")]
    assert probs.shape == (2, 3) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert labels == [LABELS[i] for i in probs.argmax(axis=1)]
    with httpx.Client(base_url=server.url, headers=keys.headers()) as http:
        direct = http.post(
            "/v1/predict", json={"texts": ["my invoice", "reset my password please"]}
        ).json()
    np.testing.assert_allclose(
        probs, [[p["probabilities"][n] for n in LABELS] for p in direct["predictions"]], atol=1e-5
    )
