"""The Open Inference Protocol codec: JSON and binary tensors in, both out."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from modelyard.serve.engine import Prediction
from modelyard.serve.errors import BadRequestError, InvalidRequestError
from modelyard.serve.oip import encode_response, parse_request


def _bytes_tensor(texts: list[str]) -> bytes:
    return b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)


def _binary_body(texts: list[str], shape: list[int] | None = None) -> tuple[bytes, str]:
    blob = _bytes_tensor(texts)
    header = {
        "inputs": [
            {
                "name": "text",
                "shape": shape or [len(texts)],
                "datatype": "BYTES",
                "parameters": {"binary_data_size": len(blob)},
            }
        ],
        "parameters": {"binary_data_output": True},
    }
    head = json.dumps(header).encode()
    return head + blob, str(len(head))


def test_json_and_binary_inputs_give_the_same_texts() -> None:
    texts = ["héllo wörld", "", "two words"]
    body = json.dumps(
        {
            "inputs": [
                {"name": "text", "shape": [3, 1], "datatype": "BYTES", "data": [[t] for t in texts]}
            ]
        }
    )
    _, from_json = parse_request(body.encode(), None, max_texts=8)
    raw, length = _binary_body(texts)
    _, from_binary = parse_request(raw, length, max_texts=8)
    assert from_json == from_binary == texts


@pytest.mark.parametrize(
    ("body", "length", "error", "match"),
    [
        (b"{", None, InvalidRequestError, "invalid inference request"),
        (b'{"inputs": []}', None, InvalidRequestError, "inputs"),
        (
            b'{"inputs": [{"name": "t", "shape": [1], "datatype": "FP32", "data": [1.0]}]}',
            None,
            InvalidRequestError,
            "BYTES",
        ),
        (
            b'{"inputs": [{"name": "t", "shape": [2], "datatype": "BYTES", "data": ["a"]}]}',
            None,
            InvalidRequestError,
            "holds 2 texts but 1",
        ),
        (
            b'{"inputs": [{"name": "t", "shape": [2, 2], "datatype": "BYTES", "data": ["a"]}]}',
            None,
            InvalidRequestError,
            r"\[n\] or \[n, 1\]",
        ),
        (
            b'{"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": [3]}]}',
            None,
            InvalidRequestError,
            "strings",
        ),
        (
            b'{"inputs": [{"name": "t", "shape": [99], "datatype": "BYTES", "data": []}]}',
            None,
            InvalidRequestError,
            "at most 8 texts",
        ),
        (
            b'{"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES"}]}',
            None,
            InvalidRequestError,
            "neither data",
        ),
        (b'{"inputs": []}', "999", BadRequestError, "Inference-Header-Content-Length"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(
    body: bytes, length: str | None, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        parse_request(body, length, max_texts=8)


def test_truncated_or_non_utf8_binary_is_refused() -> None:
    raw, length = _binary_body(["abc"])
    with pytest.raises(BadRequestError, match="binary_data_size says"):
        parse_request(raw[:-1], length, max_texts=8)
    head = raw[: int(length)]
    bad = struct.pack("<I", 2) + b"\xff\xfe"
    fixed = head.replace(b'"binary_data_size": 7', b'"binary_data_size": 6')
    with pytest.raises(InvalidRequestError, match="UTF-8"):
        parse_request(fixed + bad, str(len(fixed)), max_texts=8)


def _prediction() -> Prediction:
    probs = np.array([[0.2, 0.8], [0.6, 0.4]], dtype=np.float32)
    return Prediction(probs, [False, True], ["neg", "pos"], "3")


def test_json_response_carries_labels_probabilities_and_truncation() -> None:
    request, _ = parse_request(
        b'{"id": "r1", "inputs": [{"name": "t", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}]}',
        None,
        8,
    )
    body, length = encode_response("m", "3", request, _prediction())
    assert length is None
    out = json.loads(body)
    assert out["id"] == "r1" and out["model_version"] == "3"
    tensors = {o["name"]: o for o in out["outputs"]}
    assert tensors["label"]["data"] == ["pos", "neg"]
    assert tensors["probabilities"]["shape"] == [2, 2]
    np.testing.assert_allclose(tensors["probabilities"]["data"], [0.2, 0.8, 0.6, 0.4], rtol=1e-6)
    assert tensors["truncated"]["data"] == [False, True]


def test_binary_response_and_requested_outputs() -> None:
    raw, length = _binary_body(["a", "b"])
    request, _ = parse_request(raw, length, 8)
    body, head_len = encode_response("m", "3", request, _prediction())
    assert head_len is not None
    header = json.loads(body[:head_len])
    sizes = [o["parameters"]["binary_data_size"] for o in header["outputs"]]
    assert sizes == [len(_bytes_tensor(["pos", "neg"])), 2 * 2 * 4, 2] and len(
        body
    ) == head_len + sum(sizes)
    wanted = json.dumps(
        {
            "inputs": [{"name": "t", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}],
            "outputs": [{"name": "nope"}],
        }
    )
    request, _ = parse_request(wanted.encode(), None, 8)
    with pytest.raises(
        InvalidRequestError, match="unknown output 'nope'; outputs: label, probabilities, truncated"
    ):
        encode_response("m", "3", request, _prediction())
