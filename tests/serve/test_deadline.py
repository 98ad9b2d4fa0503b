"""The whole-request deadline: past it, 504, and the handler's work is cancelled."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

import anyio
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient

from modelyard.serve.deadline import DeadlineMiddleware, deadline_of


def _app(pause: threading.Event, done: list[str]) -> FastAPI:
    app = FastAPI()

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        try:
            await anyio.sleep(30)
        except BaseException:
            done.append("cancelled")
            raise
        return {"ok": "late"}

    @app.get("/fast")
    async def fast() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            for i in range(4):
                await anyio.sleep(0.1)
                yield b"part%d " % i

        return StreamingResponse(parts())

    @app.get("/ui/page")
    async def page() -> dict[str, bool]:
        await anyio.sleep(0.3)
        return {"ok": True}

    app.add_middleware(DeadlineMiddleware, timeout_s=0.2, exempt=("/ui",))
    return app


def test_a_slow_request_gets_504_and_its_handler_is_cancelled() -> None:
    done: list[str] = []
    with TestClient(_app(threading.Event(), done)) as client:
        answer = client.get("/slow")
        assert answer.status_code == 504
        assert answer.json()["code"] == "deadline_exceeded"
        assert "0.2 s deadline" in answer.json()["error"]
        assert done == ["cancelled"]
        assert client.get("/fast").json() == {"ok": True}
        assert client.get("/ui/page").status_code == 200  # exempt prefixes run unbounded
        # the deadline covers the start of the answer: a stream, once begun, runs on
        assert client.get("/stream").text == "part0 part1 part2 part3 "


def test_the_deadline_is_recorded_in_the_request_scope() -> None:
    assert deadline_of({"state": {"deadline": 12.5}}) == 12.5
    assert deadline_of({}) is None
