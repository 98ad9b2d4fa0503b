"""Caps on a request's head (request line and headers), enforced while it is still arriving.

uvicorn's httptools protocol buffers a request head of any size before the app (and its
API-key check) sees it: two 256 MiB headers cost 700 MiB. `CappedHttpTools` counts the
bytes of a head that is not complete yet and answers 431 once they pass MAX_HEAD_BYTES,
or once it holds more than MAX_HEADERS headers; with the h11 protocol uvicorn's own
`h11_max_incomplete_event_size` gives the same byte cap.
"""

from __future__ import annotations

import json
from typing import Any

MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 100


def _431(message: str) -> bytes:
    body = json.dumps({"error": message, "code": "headers_too_large"}).encode("ascii")
    return (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        b"content-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode("ascii") + b"\r\n"
        b"connection: close\r\n\r\n" + body
    )


try:  # httptools is optional (uvicorn[standard]); without it uvicorn speaks h11
    import httptools
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - the dev environment has it
    httptools = None  # type: ignore[assignment]
    HttpToolsProtocol = object  # type: ignore[assignment,misc]


class CappedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing heads above MAX_HEAD_BYTES or MAX_HEADERS."""

    _in_head = False
    _head_bytes = 0
    _header_count = 0
    _refusal: str | None = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes, self._header_count = True, 0, 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > MAX_HEADERS:
            self._refusal = f"more than {MAX_HEADERS} headers; send fewer"
            raise ValueError(self._refusal)  # stops the parser; answered in data_received
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._refuse(self._refusal)
            else:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        if self._in_head:
            # the head is still arriving, and the parser buffers what it holds so far
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(
                    f"the request line and headers exceed {MAX_HEAD_BYTES} bytes; send less"
                )

    def _refuse(self, message: str) -> None:
        self.logger.warning("refused a request head: %s", message)
        self.transport.write(_431(message))
        self.transport.close()


def uvicorn_limits() -> dict[str, Any]:
    """Return uvicorn.Config options capping request heads (httptools if installed, else h11)."""
    return {
        "http": CappedHttpTools if httptools is not None else "h11",
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
    }
