"""The OpenAI-compatible routes on a tiny generation run served beside a tiny classifier."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.serve.conftest import Keys

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "what colour is the dog?"}]}


@pytest.fixture()
def client(make_lm_app: Callable[..., FastAPI]) -> Iterator[TestClient]:
    with TestClient(make_lm_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def chat(client: TestClient, keys: Keys, **fields: Any) -> Any:
    """Return the response of a chat completion with `fields` added to CHAT."""
    return client.post("/v1/chat/completions", json={**CHAT, **fields}, headers=keys.headers())


def events(client: TestClient, keys: Keys, path: str, body: dict[str, Any]) -> list[Any]:
    """Return the parsed server-sent events of a streamed request ('[DONE]' kept as a string)."""
    out: list[Any] = []
    with client.stream("POST", path, json={**body, "stream": True}, headers=keys.headers()) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                data = line[len("data: ") :]
                out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_chat_completion_answers_in_openai_shape(client: TestClient, keys: Keys) -> None:
    answer = chat(client, keys, max_tokens=6, temperature=0).json()
    assert answer["object"] == "chat.completion" and answer["id"].startswith("chatcmpl-")
    assert answer["model"] == "chat"
    [choice] = answer["choices"]
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "length"
    usage = answer["usage"]
    assert usage["completion_tokens"] == 6
    assert usage["prompt_tokens"] > 5
    assert usage["total_tokens"] == usage["prompt_tokens"] + 6


def test_streamed_chunks_add_up_to_the_whole_answer(client: TestClient, keys: Keys) -> None:
    whole = chat(client, keys, max_tokens=10, temperature=0).json()
    body = {**CHAT, "max_tokens": 10, "temperature": 0, "stream_options": {"include_usage": True}}
    chunks = events(client, keys, "/v1/chat/completions", body)
    assert chunks[-1] == "[DONE]"
    first, *middle, last_choice, usage_chunk, _ = chunks
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks[:-1])
    assert len({c["id"] for c in chunks[:-1]}) == 1
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in [*middle, last_choice])
    assert text == whole["choices"][0]["message"]["content"]
    assert all(c["choices"][0]["finish_reason"] is None for c in middle)
    assert last_choice["choices"][0]["finish_reason"] == "length"
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] == whole["usage"]


def test_completions_continue_plain_text(client: TestClient, keys: Keys) -> None:
    body = {"model": "chat", "prompt": ["the red cat", "the"], "max_tokens": 4, "temperature": 0}
    answer = client.post("/v1/completions", json=body, headers=keys.headers()).json()
    assert answer["object"] == "text_completion"
    assert [c["index"] for c in answer["choices"]] == [0, 1]
    assert answer["usage"]["completion_tokens"] == 8
    streamed = events(client, keys, "/v1/completions", body)
    for index in (0, 1):
        text = "".join(
            c["choices"][0]["text"] for c in streamed[:-1] if c["choices"][0]["index"] == index
        )
        assert text == answer["choices"][index]["text"]


def test_stop_sequences_cut_the_answer(client: TestClient, keys: Keys) -> None:
    full = chat(client, keys, max_tokens=30, temperature=0).json()["choices"][0]["message"][
        "content"
    ]
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    cut = chat(client, keys, max_tokens=30, temperature=0, stop=[stop]).json()["choices"][0]
    assert cut["finish_reason"] == "stop"
    assert cut["message"]["content"] == full[: full.index(stop)]
    chunks = events(
        client,
        keys,
        "/v1/chat/completions",
        {**CHAT, "max_tokens": 30, "temperature": 0, "stop": stop},
    )
    streamed = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    assert streamed == cut["message"]["content"]


def test_a_seed_repeats_a_sample_and_n_gives_several(client: TestClient, keys: Keys) -> None:
    def sample(seed: int, n: int = 1) -> list[str]:
        answer = chat(client, keys, max_tokens=8, temperature=1.0, top_p=0.95, seed=seed, n=n)
        return [c["message"]["content"] for c in answer.json()["choices"]]

    assert sample(5) == sample(5)
    assert sample(5) != sample(6)
    several = sample(5, n=3)
    assert len(several) == 3 and several[0] == sample(5)[0]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_tokens": 65}, "at most 64 tokens"),
        ({"n": 9}, "less than or equal to 8"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "at most 4 stop sequences"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "role"),
        ({"temperature": 3}, "temperature"),
    ],
)
def test_bad_requests_get_400_in_openai_shape(
    client: TestClient, keys: Keys, fields: dict[str, Any], message: str
) -> None:
    answer = chat(client, keys, **fields)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert message in error["message"]


def test_a_prompt_longer_than_the_context_is_refused(client: TestClient, keys: Keys) -> None:
    long = " ".join(["the red cat sees the dog."] * 60)
    answer = chat(client, keys, messages=[{"role": "user", "content": long}])
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert "context holds 256" in error["message"]


def test_unknown_models_and_classifiers_are_404(client: TestClient, keys: Keys) -> None:
    for name, hint in (("nope", "generation models: chat"), ("tiny", "generation models: chat")):
        answer = chat(client, keys, model=name)
        assert answer.status_code == 404
        assert hint in answer.json()["error"]["message"]
        assert answer.json()["error"]["type"] == "not_found_error"


def test_keys_are_required_and_errors_use_openai_shape(client: TestClient) -> None:
    answer = client.post("/v1/chat/completions", json=CHAT)
    assert answer.status_code == 401
    assert answer.json()["error"]["type"] == "authentication_error"
    bad = client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401


def test_a_classifier_and_a_generator_are_served_side_by_side(
    client: TestClient, keys: Keys
) -> None:
    listed = client.get("/v1/models", headers=keys.headers()).json()
    assert listed["object"] == "list"
    assert {m["id"] for m in listed["data"]} == {"chat", "tiny"}
    kinds = {m["name"]: m["kind"] for m in listed["models"]}
    assert kinds == {"chat": "generation", "tiny": "classifier"}
    predicted = client.post(
        "/v1/predict", json={"texts": ["my parcel is late"]}, headers=keys.headers()
    )
    assert predicted.status_code == 200 and predicted.json()["model"] == "tiny"
    wrong = client.post(
        "/v1/predict", json={"texts": ["x"], "model": "chat"}, headers=keys.headers()
    )
    assert wrong.status_code == 404 and "/v1/chat/completions" in wrong.json()["error"]
    assert chat(client, keys, max_tokens=2).status_code == 200


def test_token_rate_limit_counts_prompt_and_completion_tokens(
    make_lm_app: Callable[..., FastAPI], keys: Keys
) -> None:
    app = make_lm_app(token_rate_limit=0.001, token_burst=100)
    with TestClient(app, raise_server_exceptions=False) as client:
        first = chat(client, keys, max_tokens=60)
        assert first.status_code == 200
        # 60 tokens are reserved; what was not generated is given back
        assert first.json()["usage"]["total_tokens"] < 100
        # a request is admitted while the bucket is positive (its reservation may overdraw it)
        assert chat(client, keys, max_tokens=60).status_code == 200
        second = chat(client, keys, max_tokens=60)
        assert second.status_code == 429
        assert second.json()["error"]["type"] == "rate_limit_error"
        assert "tokens/s" in second.json()["error"]["message"]
        assert int(second.headers["retry-after"]) >= 1


def test_a_timeout_stops_generation_and_answers_504(
    make_lm_app: Callable[..., FastAPI], keys: Keys
) -> None:
    app = make_lm_app(generation_timeout_s=0.001, max_new_tokens=200)
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = chat(client, keys, max_tokens=200)
        assert answer.status_code == 504
        assert answer.json()["error"]["code"] == "deadline_exceeded"
        engine = client.app.state.serve.models.generators["chat"].engine  # type: ignore[attr-defined]
        assert engine.active == 0


def test_metrics_report_tokens_ttft_and_sequences(client: TestClient, keys: Keys) -> None:
    chat(client, keys, max_tokens=5)
    text = client.get("/metrics", headers=keys.headers()).text
    assert 'modelyard_generated_tokens_total{model="chat"}' in text
    assert 'modelyard_time_to_first_token_seconds_count{model="chat"} 1.0' in text
    assert 'modelyard_active_sequences{model="chat"} 0.0' in text
    assert 'modelyard_generation_queue_depth{model="chat"} 0.0' in text
    assert 'modelyard_sequences_finished_total{model="chat",reason="length"} 1.0' in text
    assert "modelyard_generation_tokens_per_second" in text


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_generation_precision_sets_the_served_weights(
    make_lm_app: Callable[..., FastAPI], keys: Keys, precision: str
) -> None:
    app = make_lm_app(generation_precision=precision)
    with TestClient(app) as client:
        engine = client.app.state.serve.models.generators["chat"].engine  # type: ignore[attr-defined]
        expected = torch.bfloat16 if precision == "bf16" else torch.float32
        assert next(engine.model.parameters()).dtype == expected
        assert chat(client, keys, max_tokens=3).status_code == 200
