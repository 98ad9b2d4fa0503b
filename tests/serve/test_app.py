"""The HTTP app in process: auth on every route, limits, errors, several models, metrics."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from modelyard.backends import load_backend
from modelyard.registry.store import ModelStore
from modelyard.serve import app as serve_app
from modelyard.serve.app import create_app
from modelyard.serve.settings import ServeSettings, ServeSettingsError, check_bind
from tests.serve.conftest import LABELS, Keys

# written out here on purpose: a route that becomes public must be added to this list by hand
PUBLIC = {"/v2/health/live", "/v2/health/ready"}
ADMIN = {"/v1/admin/models/{name}/reload"}
PREDICT = {"texts": ["my invoice was charged twice"]}


@pytest.fixture()
def client(make_app: Callable[..., FastAPI]) -> Iterator[TestClient]:
    with TestClient(make_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def _routes(app: FastAPI) -> list[tuple[str, str]]:
    pairs = []
    for route in app.routes:
        for method in sorted(getattr(route, "methods", None) or []):
            pairs.append((method, route.path))
    return pairs


def _call(
    client: TestClient, method: str, template: str, headers: dict[str, str]
) -> httpx.Response:
    path = template.replace("{name}", "tiny").replace("{version}", "1")
    body = (
        {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hi"]}]}
        if "infer" in path
        else PREDICT
    )
    if path == "/v1/chat/completions":
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    elif path == "/v1/completions":
        body = {"prompt": "hi", "max_tokens": 2}
    kwargs = {"json": body} if method in {"POST", "PUT", "PATCH"} and "reload" not in path else {}
    return client.request(method, path, headers=headers, **kwargs)


def test_auth_matrix_covers_every_route_and_method(
    make_lm_app: Callable[..., FastAPI], keys: Keys
) -> None:
    with TestClient(make_lm_app(), raise_server_exceptions=False) as client:
        _check_auth_matrix(client, keys)


def _check_auth_matrix(client: TestClient, keys: Keys) -> None:
    routes = _routes(client.app)  # type: ignore[arg-type]
    assert len(routes) >= 15 and {p for _, p in routes} >= PUBLIC | ADMIN
    for method, template in routes:
        anonymous = _call(client, method, template, {})
        if template in PUBLIC:
            assert anonymous.status_code == 200, (method, template)
            continue
        assert anonymous.status_code == 401, (method, template, anonymous.text)
        assert anonymous.headers["www-authenticate"] == "Bearer"
        wrong = _call(client, method, template, {"Authorization": f"Bearer {keys.predict}x"})
        assert wrong.status_code == 401, (method, template)
        as_predict = _call(client, method, template, keys.headers("predict"))
        as_admin = _call(client, method, template, keys.headers("admin"))
        assert as_admin.status_code < 400, (method, template, as_admin.text)
        expected_predict = 403 if template in ADMIN else as_admin.status_code
        assert as_predict.status_code == expected_predict, (method, template)


def test_unknown_paths_and_methods_also_need_a_key(client: TestClient, keys: Keys) -> None:
    assert client.get("/nothing/here").status_code == 401
    assert client.delete("/v1/predict").status_code == 401
    assert client.get("/nothing/here", headers=keys.headers()).status_code == 404
    assert client.delete("/v1/predict", headers=keys.headers()).status_code == 405


def test_x_api_key_header_works_too(client: TestClient, keys: Keys) -> None:
    assert (
        client.post("/v1/predict", json=PREDICT, headers={"X-API-Key": keys.predict}).status_code
        == 200
    )


def test_predict_answers_labels_probabilities_and_truncation(
    client: TestClient, keys: Keys, tiny_runs: list[Path]
) -> None:
    texts = ["my parcel is late", " ".join(["refund"] * 40)]
    answer = client.post("/v1/predict", json={"texts": texts}, headers=keys.headers()).json()
    assert answer["model"] == "tiny" and answer["version"] == "1"
    probs, cut = load_backend(tiny_runs[0]).predict_proba(texts)
    for item, row, flag in zip(answer["predictions"], probs, cut, strict=True):
        assert item["label"] == LABELS[int(row.argmax())] and item["truncated"] == flag
        np.testing.assert_allclose([item["probabilities"][name] for name in LABELS], row, atol=1e-5)
    assert [p["truncated"] for p in answer["predictions"]] == [False, True]


def test_predict_top_k_sorts_and_cuts_the_probabilities(client: TestClient, keys: Keys) -> None:
    body = {"texts": ["my parcel is late"], "top_k": 1}
    [item] = client.post("/v1/predict", json=body, headers=keys.headers()).json()["predictions"]
    assert list(item["probabilities"]) == [item["predicted_label"]] == [item["label"]]
    assert item["predicted_score"] == item["score"] == item["probabilities"][item["label"]]
    bad = client.post("/v1/predict", json={**body, "top_k": 0}, headers=keys.headers())
    assert bad.status_code == 422


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"texts": ["x"] * 5}, 422, "at most 4 texts per request, got 5"),
        ({"texts": ["x" * 101]}, 422, "text 0 has 101 characters; at most 100"),
        ({"texts": []}, 422, "no texts"),
        ({"text": "x"}, 422, "body.texts: Field required"),
    ],
)
def test_text_limits_answer_422_with_the_reason(
    make_app: Callable[..., FastAPI], keys: Keys, body: dict[str, object], status: int, message: str
) -> None:
    with TestClient(make_app(max_texts=4, max_chars=100)) as client:
        answer = client.post("/v1/predict", json=body, headers=keys.headers())
    assert answer.status_code == status and message in answer.json()["error"]


def test_v2_infer_applies_the_same_limits(make_app: Callable[..., FastAPI], keys: Keys) -> None:
    body = {"inputs": [{"name": "text", "shape": [5], "datatype": "BYTES", "data": ["x"] * 5}]}
    with TestClient(make_app(max_texts=4)) as client:
        answer = client.post("/v2/models/tiny/infer", json=body, headers=keys.headers())
    assert answer.status_code == 422 and "at most 4 texts" in answer.json()["error"]


def test_a_large_body_answers_413_before_it_is_read(
    make_app: Callable[..., FastAPI], keys: Keys
) -> None:
    big = json.dumps({"texts": ["y" * 3000]}).encode()

    def chunks() -> Iterator[bytes]:
        yield from (big[i : i + 500] for i in range(0, len(big), 500))

    with TestClient(make_app(max_body_bytes=2048)) as client:
        declared = client.post(
            "/v1/predict",
            content=big,
            headers={**keys.headers(), "Content-Type": "application/json"},
        )
        streamed = client.post(
            "/v1/predict",
            content=chunks(),
            headers={**keys.headers(), "Content-Type": "application/json"},
        )
    for answer in (declared, streamed):
        assert answer.status_code == 413 and "at most 2048 are accepted" in answer.json()["error"]


def test_compressed_bodies_are_refused(client: TestClient, keys: Keys) -> None:
    answer = client.post(
        "/v1/predict", content=b"x", headers={**keys.headers(), "Content-Encoding": "gzip"}
    )
    assert answer.status_code == 415


def test_rate_limit_answers_429_with_retry_after_per_key(
    make_app: Callable[..., FastAPI], keys: Keys
) -> None:
    with TestClient(make_app(rate_limit=0.5, rate_burst=2)) as client:
        codes = [
            client.post("/v1/predict", json=PREDICT, headers=keys.headers()).status_code
            for _ in range(3)
        ]
        limited = client.post("/v1/predict", json=PREDICT, headers=keys.headers())
        other_key = client.post("/v1/predict", json=PREDICT, headers=keys.headers("admin"))
    assert codes == [200, 200, 429] and limited.headers["retry-after"] == "2"
    assert "rate limit of 0.5 requests/s" in limited.json()["error"]
    assert other_key.status_code == 200


def test_several_models_at_once(store: ModelStore, keys: Keys, tiny_runs: list[Path]) -> None:
    store.push(tiny_runs[1], "other")
    app = create_app(
        ServeSettings(models=["tiny:1", "other"], watch_aliases_s=None),
        store=store,
        keys=keys.store,
    )
    with TestClient(app) as client:
        unnamed = client.post("/v1/predict", json=PREDICT, headers=keys.headers())
        named = client.post(
            "/v1/predict", json={**PREDICT, "model": "other"}, headers=keys.headers()
        ).json()
        listed = client.get("/v1/models", headers=keys.headers()).json()["models"]
        missing = client.get("/v2/models/nope", headers=keys.headers())
    assert unnamed.status_code == 404 and "name one of: other, tiny" in unnamed.json()["error"]
    expected = load_backend(tiny_runs[1]).predict_proba(PREDICT["texts"])[0][0]
    np.testing.assert_allclose(
        [named["predictions"][0]["probabilities"][n] for n in LABELS], expected, atol=1e-5
    )
    assert {(m["name"], m["version"], m["reference"]) for m in listed} == {
        ("tiny", "1", "tiny:1"),
        ("other", "1", "other:latest"),
    }
    assert missing.status_code == 404 and "served: other, tiny" in missing.json()["error"]


def test_v2_metadata_and_versioned_routes(client: TestClient, keys: Keys) -> None:
    meta = client.get("/v2/models/tiny", headers=keys.headers()).json()
    assert (
        meta["versions"] == ["1"]
        and meta["platform"] == "modelyard-torch"
        and meta["labels"] == LABELS
    )
    assert client.get("/v2/models/tiny/versions/1/ready", headers=keys.headers()).status_code == 200
    wrong = client.get("/v2/models/tiny/versions/2", headers=keys.headers())
    assert wrong.status_code == 404 and "version 1 is" in wrong.json()["error"]


def test_admin_reload_swaps_versions(client: TestClient, keys: Keys) -> None:
    swapped = client.post(
        "/v1/admin/models/tiny/reload", json={"version": "2"}, headers=keys.headers("admin")
    ).json()
    assert swapped == {"name": "tiny", "previous_version": "1", "version": "2", "changed": True}
    assert client.post("/v1/predict", json=PREDICT, headers=keys.headers()).json()["version"] == "2"
    back = client.post("/v1/admin/models/tiny/reload", headers=keys.headers("admin")).json()
    assert back["version"] == "1"  # no version: back to what tiny:production names
    unknown = client.post(
        "/v1/admin/models/tiny/reload", json={"version": "9"}, headers=keys.headers("admin")
    )
    assert (
        unknown.status_code == 404
        and "versions: 1, 2; aliases: production" in unknown.json()["error"]
    )


def _assert_clean(answer: httpx.Response, *secrets: str) -> None:
    text = answer.text
    assert set(answer.json()) == {"error", "code"}
    assert not re.search(r"/(tmp|home|root|usr|work)/|Traceback|File \"", text), text
    assert all(s not in text for s in secrets)


def test_error_bodies_carry_no_paths_traces_or_keys(
    client: TestClient, keys: Keys, store: ModelStore, tiny_runs: list[Path]
) -> None:
    corrupt = store.push(tiny_runs[1], "tiny")
    (corrupt.path / "labels.json").write_text('["changed"]', encoding="utf-8")
    answers = [
        client.post(
            "/v1/admin/models/tiny/reload",
            json={"version": str(corrupt.version)},
            headers=keys.headers("admin"),
        ),
        client.post(
            "/v1/predict", json=PREDICT, headers={"Authorization": f"Bearer {keys.predict}z"}
        ),
        client.post("/v1/admin/models/tiny/reload", headers=keys.headers("predict")),
        client.post(
            "/v1/predict",
            content=b"{not json",
            headers={**keys.headers(), "Content-Type": "application/json"},
        ),
        client.post("/v2/models/tiny/infer", content=b"\x00\x01", headers=keys.headers()),
    ]
    assert [a.status_code for a in answers] == [409, 401, 403, 422, 422]
    assert "version 2 keeps serving" not in answers[0].json()["error"]
    for answer in answers:
        _assert_clean(answer, keys.predict, keys.admin)


def test_an_unexpected_failure_is_a_bare_500(store: ModelStore, keys: Keys) -> None:
    class Exploding:
        name, labels, max_length, path = "torch", LABELS, 16, Path("/")

        def __init__(self, _: Path) -> None:
            self.calls = 0

        def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
            self.calls += 1
            if self.calls > 1:  # the warm-up passes; the first request does not
                raise RuntimeError("cannot open /root/secret/weights.bin")
            return np.full((len(texts), 3), 1 / 3, dtype=np.float32), [False] * len(texts)

    settings = ServeSettings(models=["tiny:1"], watch_aliases_s=None)
    app = create_app(settings, store=store, keys=keys.store, loader=Exploding)  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.post("/v1/predict", json=PREDICT, headers=keys.headers())
    assert answer.status_code == 500 and answer.json() == {
        "error": "internal server error",
        "code": "internal",
    }


def test_metrics_report_requests_batches_queue_and_errors(client: TestClient, keys: Keys) -> None:
    client.post("/v1/predict", json={"texts": ["a", "b", "c"]}, headers=keys.headers())
    client.post("/v1/predict", json=PREDICT)
    text = client.get("/metrics", headers=keys.headers()).text
    assert 'modelyard_requests_total{code="200",method="POST",route="/v1/predict"} 1.0' in text
    assert 'modelyard_requests_total{code="401",method="POST",route="/v1/predict"} 1.0' in text
    assert 'modelyard_errors_total{code="401"} 1.0' in text
    assert 'modelyard_batch_size_sum{model="tiny"} 3.0' in text
    assert 'modelyard_queue_depth{model="tiny"} 0.0' in text
    assert 'modelyard_model_version{model="tiny"} 1.0' in text
    assert 'modelyard_request_seconds_count{route="/v1/predict"} 2.0' in text


def test_readiness_goes_false_while_draining(client: TestClient, keys: Keys) -> None:
    assert client.get("/v2/health/ready").json() == {"ready": True}
    client.app.state.serve.begin_drain()  # type: ignore[attr-defined]
    assert client.get("/v2/health/ready").status_code == 503
    assert client.get("/v2/models/tiny/ready", headers=keys.headers()).status_code == 503
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.post("/v1/predict", json=PREDICT, headers=keys.headers()).status_code == 200


def test_openapi_declares_security_and_the_infer_body(client: TestClient, keys: Keys) -> None:
    schema = client.get("/openapi.json", headers=keys.headers()).json()
    assert schema["security"] == [{"bearer": []}, {"apiKey": []}]
    assert schema["paths"]["/v2/health/live"]["get"]["security"] == []
    body = schema["paths"]["/v2/models/{name}/infer"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/InferRequest"
    }
    assert "InferInputTensor" in schema["components"]["schemas"]


def test_public_bind_needs_auth() -> None:
    with pytest.raises(ServeSettingsError, match="refusing to bind 0.0.0.0 with auth off"):
        check_bind(ServeSettings(models=["m"], host="0.0.0.0", auth=False))
    check_bind(ServeSettings(models=["m"], host="0.0.0.0", auth=True))
    check_bind(ServeSettings(models=["m"], host="::1", auth=False))


def test_failed_keys_are_throttled_per_client_but_verified_ones_are_not(
    make_app: Callable[..., FastAPI], keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no refill while the test runs: each failed key is hashed (slow on purpose), so on a
    # loaded machine 25 of them can take long enough to earn new tokens at the real rate
    monkeypatch.setattr(serve_app, "_UNVERIFIED_RATE", 1e-9)
    with TestClient(make_app(), raise_server_exceptions=False) as client:
        _failed_keys_are_throttled(client, keys)


def _failed_keys_are_throttled(client: TestClient, keys: Keys) -> None:
    assert (
        client.get("/v1/models", headers=keys.headers()).status_code == 200
    )  # verified once, then cached
    codes = [
        client.get("/v1/models", headers={"X-API-Key": f"myd_bad.{i}"}).status_code
        for i in range(25)
    ]
    assert codes[:20] == [401] * 20 and codes[-1] == 429
    assert (
        "rate limit" in client.get("/v1/models", headers={"X-API-Key": "myd_bad.x"}).json()["error"]
    )
    assert client.get("/v1/models", headers=keys.headers()).status_code == 200
