"""`POST /v1/explain` in process: behind the API key and the request limits like `/v1/predict`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modelyard.registry.store import ModelStore
from modelyard.serve.app import create_app
from modelyard.serve.auth import KeyStore
from modelyard.serve.explain_routes import MAX_EXPLAIN_TEXTS
from modelyard.serve.settings import ServeSettings
from tests.explainability.conftest import KEY, key_run_dir  # noqa: F401  (a fixture)

TEXT = f"my card {KEY} is late"


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
    key_run_dir: Path,  # noqa: F811  (the imported fixture)
) -> tuple[ModelStore, KeyStore, str]:
    root = tmp_path_factory.mktemp("serve-explain")
    store = ModelStore(root / "registry")
    store.push(key_run_dir, "key")
    keys = KeyStore(root / "keys.json")
    _, plain = keys.create("predict", "tests")
    return store, keys, plain


@pytest.fixture()
def connect(served: tuple[ModelStore, KeyStore, str]) -> Iterator[Callable[..., TestClient]]:
    store, keys, _ = served
    clients: list[TestClient] = []

    def build(**overrides: object) -> TestClient:
        options: dict[str, object] = {"models": ["key"], "watch_aliases_s": None, **overrides}
        app = create_app(ServeSettings.model_validate(options), store=store, keys=keys)
        clients.append(TestClient(app, raise_server_exceptions=False).__enter__())
        return clients[-1]

    yield build
    for client in clients:
        client.__exit__(None, None, None)


def _auth(served: tuple[ModelStore, KeyStore, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {served[2]}"}


def test_explain_answers_word_scores_and_probabilities(
    connect: Callable[..., TestClient], served: tuple[ModelStore, KeyStore, str]
) -> None:
    body = {"texts": [TEXT, "the parcel is late"], "method": "ig", "steps": 30}
    answer = connect().post("/v1/explain", json=body, headers=_auth(served))
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["model"] == "key" and data["version"] == "1" and len(data["explanations"]) == 2
    first = data["explanations"][0]
    assert first["label"] == "yes" and first["method"] == "ig" and first["delta"] is not None
    assert max(first["words"], key=lambda w: w["score"])["word"] == KEY
    assert set(first["probabilities"]) == {"no", "yes"} and first["units"] == "log-odds"


def test_explain_needs_a_key(connect: Callable[..., TestClient]) -> None:
    answer = connect().post("/v1/explain", json={"texts": [TEXT]})
    assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"texts": ["a"] * (MAX_EXPLAIN_TEXTS + 1)}, 422, f"at most {MAX_EXPLAIN_TEXTS} texts"),
        ({"texts": ["a" * 101]}, 422, "text 0 has 101 characters; at most 100"),
        ({"texts": []}, 422, "no texts"),
        ({"texts": [TEXT], "method": "lime"}, 422, "unknown explanation method 'lime'"),
        ({"texts": [TEXT], "steps": 1}, 422, "body.steps"),
        ({"texts": [TEXT], "target": "maybe"}, 422, "'maybe' is not one of the model's labels"),
        ({"texts": [TEXT], "model": "other"}, 404, "other"),
    ],
)
def test_limits_and_bad_requests_answer_with_the_reason(
    connect: Callable[..., TestClient],
    served: tuple[ModelStore, KeyStore, str],
    body: dict[str, object],
    status: int,
    message: str,
) -> None:
    answer = connect(max_chars=100).post("/v1/explain", json=body, headers=_auth(served))
    assert answer.status_code == status and message in answer.json()["error"], answer.text


def test_the_server_text_limit_applies_when_lower(
    connect: Callable[..., TestClient], served: tuple[ModelStore, KeyStore, str]
) -> None:
    answer = connect(max_texts=1).post(
        "/v1/explain", json={"texts": [TEXT] * 2}, headers=_auth(served)
    )
    assert answer.status_code == 422 and "at most 1 texts" in answer.json()["error"]


def test_a_slow_explanation_answers_504(
    connect: Callable[..., TestClient], served: tuple[ModelStore, KeyStore, str]
) -> None:
    body = {"texts": [TEXT, TEXT], "method": "shapley", "samples": 50}
    answer = connect(request_timeout_s=0.001).post("/v1/explain", json=body, headers=_auth(served))
    assert answer.status_code == 504 and answer.json()["code"] == "deadline_exceeded"


def test_a_10000_character_occlusion_is_cut_to_the_model_window(
    connect: Callable[..., TestClient], served: tuple[ModelStore, KeyStore, str]
) -> None:
    text = (TEXT + " ") * (10_000 // (len(TEXT) + 1))
    body = {"texts": [text], "method": "occlusion"}
    answer = connect(max_chars=10_000).post("/v1/explain", json=body, headers=_auth(served))
    assert answer.status_code == 200, answer.text
    (result,) = answer.json()["explanations"]
    assert result["truncated"] and result["words_cut"] > 1000
    assert len(result["words"]) <= 32  # the run's max_length
