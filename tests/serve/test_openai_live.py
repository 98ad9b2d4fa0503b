"""The official `openai` client, sync, async and streaming, against a live server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI

from tests.serve.conftest import Keys, LiveServer, stop_server, wait_until

MESSAGES: list[Any] = [{"role": "user", "content": "what colour is the dog?"}]


@pytest.fixture()
def live(
    make_lm_app: Callable[..., FastAPI], live_server: Callable[[FastAPI], LiveServer]
) -> LiveServer:
    return live_server(make_lm_app(max_new_tokens=200))


def client(live: LiveServer, key: str) -> openai.OpenAI:
    """Return a sync client of `live` that never retries."""
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=key, max_retries=0, timeout=60)


def engine_of(live: LiveServer) -> Any:
    """Return the generation engine serving `chat`."""
    return live.app.state.serve.models.generators["chat"].engine


def test_sync_client_chat_completions_and_models(live: LiveServer, keys: Keys) -> None:
    sync = client(live, keys.predict)
    answer = sync.chat.completions.create(
        model="chat", messages=MESSAGES, max_tokens=5, temperature=0
    )
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None and answer.usage.completion_tokens == 5
    text = sync.completions.create(model="chat", prompt="the red cat", max_tokens=3, temperature=0)
    assert text.choices[0].finish_reason == "length" and text.usage.completion_tokens == 3  # type: ignore[union-attr]
    assert {m.id for m in sync.models.list()} == {"chat", "tiny"}


def test_sync_client_streams_in_order(live: LiveServer, keys: Keys) -> None:
    sync = client(live, keys.predict)
    whole = sync.chat.completions.create(
        model="chat", messages=MESSAGES, max_tokens=12, temperature=0
    )
    stream = sync.chat.completions.create(
        model="chat",
        messages=MESSAGES,
        max_tokens=12,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12


def test_async_client_runs_requests_concurrently(live: LiveServer, keys: Keys) -> None:
    prompts = ["the red cat", "the blue bird", "what colour is the horse?", "the"]

    async def main() -> tuple[list[str], list[str]]:
        async_client = openai.AsyncOpenAI(
            base_url=f"{live.url}/v1", api_key=keys.predict, max_retries=0, timeout=60
        )
        async with async_client:

            async def one(prompt: str) -> str:
                answer = await async_client.completions.create(
                    model="chat", prompt=prompt, max_tokens=8, temperature=0
                )
                return answer.choices[0].text

            async def streamed(prompt: str) -> str:
                stream = await async_client.completions.create(
                    model="chat", prompt=prompt, max_tokens=8, temperature=0, stream=True
                )
                return "".join([chunk.choices[0].text async for chunk in stream])

            together = await asyncio.gather(*(one(p) for p in prompts))
            streams = await asyncio.gather(*(streamed(p) for p in prompts))
            return list(together), list(streams)

    together, streams = asyncio.run(main())
    alone = [
        client(live, keys.predict)
        .completions.create(model="chat", prompt=p, max_tokens=8, temperature=0)
        .choices[0]
        .text
        for p in prompts
    ]
    assert together == alone == streams


def test_client_errors_map_to_openai_exceptions(live: LiveServer, keys: Keys) -> None:
    with pytest.raises(openai.AuthenticationError):
        client(live, "myd_nope.nope").chat.completions.create(model="chat", messages=MESSAGES)
    with pytest.raises(openai.BadRequestError, match="at most 200 tokens"):
        client(live, keys.predict).chat.completions.create(
            model="chat", messages=MESSAGES, max_tokens=201
        )
    with pytest.raises(openai.NotFoundError, match="generation models: chat"):
        client(live, keys.predict).chat.completions.create(model="tiny", messages=MESSAGES)


def test_a_client_that_disconnects_mid_stream_frees_its_slot(live: LiveServer, keys: Keys) -> None:
    engine = engine_of(live)
    body = {"model": "chat", "prompt": "the red cat", "max_tokens": 200, "stream": True}
    headers = keys.headers()
    url = f"{live.url}/v1/completions"
    with (
        httpx.Client(timeout=30) as http,
        http.stream("POST", url, json=body, headers=headers) as r,
    ):
        lines = r.iter_lines()
        assert next(line for line in lines if line.startswith("data: "))
        assert engine.active == 1
    wait_until(lambda: engine.active == 0, what="the slot to be freed")
    metrics = httpx.get(f"{live.url}/metrics", headers=headers).text
    assert 'modelyard_sequences_finished_total{model="chat",reason="cancelled"} 1.0' in metrics


def test_shutdown_lets_a_running_generation_finish(live: LiveServer, keys: Keys) -> None:
    results: list[Any] = []

    def call() -> None:
        answer = client(live, keys.predict).chat.completions.create(
            model="chat", messages=MESSAGES, max_tokens=150, temperature=0
        )
        results.append(answer)

    worker = threading.Thread(target=call)
    worker.start()
    wait_until(lambda: engine_of(live).active == 1, what="the generation to start")
    stop_server(live)
    worker.join(30)
    assert results and results[0].choices[0].finish_reason == "length"
    assert results[0].usage.completion_tokens == 150
