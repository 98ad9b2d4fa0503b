"""Request heads are capped while they arrive: too many bytes or headers answer 431."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from modelyard.serve.protocol import MAX_HEAD_BYTES, MAX_HEADERS, uvicorn_limits
from tests.serve.conftest import wait_until


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, bool]:
        return {"ok": True}

    return app


@pytest.fixture(params=["httptools", "h11"])
def port(request: pytest.FixtureRequest) -> Iterator[int]:
    options: dict[str, Any] = uvicorn_limits()
    if request.param == "h11":
        options["http"] = "h11"
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(_app(), log_level="error", **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started, what="the server to start")
    yield sock.getsockname()[1]
    server.should_exit = True
    thread.join(20)


def _send(port: int, head: bytes, chunk: int = 1 << 16) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as conn:
        try:
            for start in range(0, len(head), chunk):
                conn.sendall(head[start : start + chunk])
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused mid-way: the answer is already waiting
        answer = b""
        try:
            while chunk_ := conn.recv(65536):
                answer += chunk_
        except ConnectionResetError:
            # closed with our unread bytes pending: the kernel resets instead of a clean close
            return answer or b"RESET"
        return answer


def test_a_normal_request_passes(port: int) -> None:
    answer = _send(port, b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200")


def test_a_huge_header_is_refused_before_it_is_buffered(port: int) -> None:
    head = b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (8 * MAX_HEAD_BYTES) + b"\r\n\r\n"
    answer = _send(port, head)
    assert answer.split(b"\r\n")[0] in (
        b"HTTP/1.1 431 Request Header Fields Too Large",
        b"HTTP/1.1 400 Bad Request",  # h11 answers its own cap with a 400
        b"RESET",  # refused and closed while the client was still sending
    )


def test_too_many_headers_are_refused(port: int) -> None:
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS + 5))
    answer = _send(
        port, b"GET /hello HTTP/1.1\r\nHost: x\r\n" + many + b"Connection: close\r\n\r\n"
    )
    # h11 counts bytes, not headers: 105 small ones fit its byte cap
    assert answer.startswith((b"HTTP/1.1 431", b"HTTP/1.1 200"))
