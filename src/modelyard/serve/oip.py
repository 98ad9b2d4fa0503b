"""The Open Inference Protocol v2 (KServe v2 / Triton) for text classifiers.

A model takes one BYTES input tensor of texts (shape [n] or [n, 1]) and answers with
`label` (BYTES [n]), `probabilities` (FP32 [n, classes]) and `truncated` (BOOL [n]).
Tensors travel as JSON or with the binary tensor data extension, which is what
`tritonclient.http` sends and asks for by default: the body starts with a JSON header of
`Inference-Header-Content-Length` bytes, followed by the raw tensors.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelyard.registry.store import is_number
from modelyard.serve.engine import Prediction
from modelyard.serve.errors import BadRequestError, InvalidRequestError
from modelyard.serve.limits import clean_texts

HEADER_LENGTH = "Inference-Header-Content-Length"
OUTPUTS = ("label", "probabilities", "truncated")
_MAX_NESTING = 4


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InferInputTensor(_Closed):
    """One input tensor of an inference request."""

    name: str = Field(description="Input name; this server's models take one input, `text`.")
    shape: list[int] = Field(description="Tensor shape: [n] or [n, 1] for n texts.")
    datatype: str = Field(description="Must be BYTES (UTF-8 texts).")
    parameters: dict[str, Any] | None = Field(
        None, description="`binary_data_size` when the tensor travels as binary data."
    )
    data: list[Any] | None = Field(None, description="The texts, when sent as JSON.")


class RequestedOutput(_Closed):
    """An output the client asks for."""

    name: str = Field(description="One of: label, probabilities, truncated.")
    parameters: dict[str, Any] | None = Field(
        None, description="`binary_data: true` to receive it as binary data."
    )


class InferRequest(_Closed):
    """An Open Inference Protocol v2 inference request."""

    id: str | None = Field(None, description="Echoed in the response.")
    parameters: dict[str, Any] | None = Field(
        None, description="`binary_data_output: true` to receive every output as binary data."
    )
    inputs: list[InferInputTensor] = Field(min_length=1, description="Exactly one BYTES tensor.")
    outputs: list[RequestedOutput] | None = Field(
        None, description="Outputs to return; all of them when absent."
    )


def parse_request(
    body: bytes, header_length: str | None, max_texts: int
) -> tuple[InferRequest, list[str]]:
    """Return the parsed request and its texts.

    Raises BadRequestError for broken framing or JSON and InvalidRequestError for a request
    that breaks the schema, names a wrong tensor, or holds more than `max_texts` texts.
    """
    json_part, binary = _split(body, header_length)
    try:
        request = InferRequest.model_validate_json(json_part)
    except ValidationError as exc:
        raise InvalidRequestError(f"invalid inference request: {_summarise(exc)}") from None
    if len(request.inputs) != 1:
        raise InvalidRequestError(f"expected one input tensor 'text', got {len(request.inputs)}")
    tensor = request.inputs[0]
    if tensor.datatype != "BYTES":
        raise InvalidRequestError(
            f"input '{tensor.name}' must have datatype BYTES, got {tensor.datatype}"
        )
    count = _element_count(tensor.shape, max_texts)
    texts = (
        _binary_texts(tensor, binary) if _binary_size(tensor) is not None else _json_texts(tensor)
    )
    if len(texts) != count:
        raise InvalidRequestError(
            f"input shape {tensor.shape} holds {count} texts but {len(texts)} were sent"
        )
    return request, clean_texts(texts)


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    if not is_number(header_length) or int(header_length) > len(body):
        raise BadRequestError(
            f"{HEADER_LENGTH} must be a byte count within the body, got '{header_length[:20]}'"
        )
    size = int(header_length)
    return body[:size], body[size:]


def _summarise(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
    )


def _element_count(shape: list[int], max_texts: int) -> int:
    if not shape or len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
        raise InvalidRequestError(f"input shape must be [n] or [n, 1], got {shape}")
    if any(d < 0 for d in shape):
        raise InvalidRequestError(f"input shape dimensions must not be negative, got {shape}")
    count = math.prod(shape)
    if count > max_texts:
        raise InvalidRequestError(
            f"at most {max_texts} texts per request, got {count}; split the request"
        )
    return count


def _binary_size(tensor: InferInputTensor) -> int | None:
    size = (tensor.parameters or {}).get("binary_data_size")
    if size is None:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidRequestError("binary_data_size must be a non-negative integer")
    return size


def _json_texts(tensor: InferInputTensor) -> list[str]:
    if tensor.data is None:
        raise InvalidRequestError(f"input '{tensor.name}' has neither data nor binary_data_size")
    flat: list[Any] = list(tensor.data)
    for _ in range(_MAX_NESTING):
        if not any(isinstance(x, list) for x in flat):
            break
        flat = [y for x in flat for y in (x if isinstance(x, list) else [x])]
    if not all(isinstance(x, str) for x in flat):
        raise InvalidRequestError(f"input '{tensor.name}' must hold strings (BYTES as UTF-8 text)")
    return flat


def _binary_texts(tensor: InferInputTensor, binary: bytes) -> list[str]:
    size = _binary_size(tensor) or 0
    if size != len(binary):
        raise BadRequestError(
            f"binary_data_size says {size} bytes but {len(binary)} follow the JSON header"
        )
    texts, offset = [], 0
    while offset < size:
        if offset + 4 > size:
            raise BadRequestError("truncated BYTES element: a 4-byte length prefix is cut off")
        (length,) = struct.unpack_from("<I", binary, offset)
        offset += 4
        if offset + length > size:
            raise BadRequestError(
                "truncated BYTES element: fewer bytes than its length prefix says"
            )
        try:
            texts.append(binary[offset : offset + length].decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidRequestError("input texts must be valid UTF-8") from None
        offset += length
    return texts


def _tensors(prediction: Prediction) -> dict[str, tuple[str, list[int], Any]]:
    n, k = prediction.probs.shape
    labels = [prediction.labels[i] for i in prediction.probs.argmax(axis=1)] if n else []
    probs = np.ascontiguousarray(prediction.probs, dtype="<f4")
    cut = np.asarray(prediction.truncated, dtype=bool)
    return {
        "label": ("BYTES", [n], labels),
        "probabilities": ("FP32", [n, k], probs),
        "truncated": ("BOOL", [n], cut),
    }


def _raw(datatype: str, value: Any) -> bytes:
    if datatype == "BYTES":
        return b"".join(struct.pack("<I", len(b)) + b for b in (s.encode("utf-8") for s in value))
    return bytes(np.asarray(value).tobytes())


def _as_json(datatype: str, value: Any) -> list[Any]:
    return list(value) if datatype == "BYTES" else np.asarray(value).ravel().tolist()


def encode_response(
    model: str, version: str, request: InferRequest, prediction: Prediction
) -> tuple[bytes, int | None]:
    """Return the response body and, when any output travels as binary data, its JSON header length.

    Raises InvalidRequestError when the request asks for an output the model does not have.
    """
    tensors = _tensors(prediction)
    binary_default = bool((request.parameters or {}).get("binary_data_output", False))
    wanted = request.outputs or [RequestedOutput(name=name) for name in OUTPUTS]
    outputs, blobs = [], []
    for out in wanted:
        if out.name not in tensors:
            raise InvalidRequestError(f"unknown output '{out.name}'; outputs: {', '.join(OUTPUTS)}")
        datatype, shape, value = tensors[out.name]
        entry: dict[str, Any] = {"name": out.name, "datatype": datatype, "shape": shape}
        if (out.parameters or {}).get("binary_data", binary_default):
            blobs.append(_raw(datatype, value))
            entry["parameters"] = {"binary_data_size": len(blobs[-1])}
        else:
            entry["data"] = _as_json(datatype, value)
        outputs.append(entry)
    header: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": outputs}
    if request.id is not None:
        header["id"] = request.id
    head = json.dumps(header).encode("utf-8")
    return (head + b"".join(blobs), len(head)) if blobs else (head, None)


def model_metadata(name: str, version: str, platform: str, labels: list[str]) -> dict[str, Any]:
    """Return the v2 model metadata: name, versions, platform, input and output tensors, labels."""
    return {
        "name": name,
        "versions": [version],
        "platform": platform,
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
        "outputs": [
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(labels)]},
            {"name": "truncated", "datatype": "BOOL", "shape": [-1]},
        ],
        "labels": labels,
    }
