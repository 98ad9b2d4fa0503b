"""A corpus of hostile requests and artifacts: what an attacker sends, and what must happen.

Tests (and `bench/security.py`) iterate over `BAD_INPUTS`: every case must be answered
with a 4xx whose status is the one expected, never a 5xx, and never fail anyone else's
request; and over `HOSTILE_ARTIFACTS`: every damaged run must be refused with a
ModelyardError naming the problem, never a traceback. Paths name the served model `{name}` and its version `{version}`; `scope` says
which key a case is sent with (the checks it probes sit behind the key).
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

SURROGATE = "hi \ud800"  # a lone surrogate: valid JSON (`"\ud800"`), not valid Unicode


@dataclass(frozen=True)
class BadInput:
    """One hostile request and the status it must get (and a fragment of its error message)."""

    name: str
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 422
    message: str = ""
    scope: Literal["predict", "admin"] = "predict"

    def header_bytes(self) -> dict[str, bytes]:
        """Return the case's headers with UTF-8 values (a non-ASCII digit travels as its bytes)."""
        return {name: value.encode("utf-8") for name, value in self.headers.items()}

    def url(self, model: str, version: str) -> str:
        """Return the request path for the served `model` at `version`."""
        return self.path.replace("{name}", model).replace("{version}", version)


def _json(value: Any) -> bytes:
    # ensure_ascii writes a lone surrogate as the escape `\ud800`, as an attacker's client would
    return json.dumps(value, ensure_ascii=True).encode("ascii")


def _infer(data: list[Any], shape: Any = None, **extra: Any) -> bytes:
    tensor = {"name": "text", "datatype": "BYTES", "shape": shape or [len(data)], "data": data}
    return _json({"inputs": [{**tensor, **extra}]})


def _binary_infer(raw: bytes) -> tuple[bytes, dict[str, str]]:
    element = struct.pack("<I", len(raw)) + raw
    head = _json(
        {
            "inputs": [
                {
                    "name": "text",
                    "datatype": "BYTES",
                    "shape": [1],
                    "parameters": {"binary_data_size": len(element)},
                }
            ]
        }
    )
    return head + element, {"Inference-Header-Content-Length": str(len(head))}


def _nested(depth: int) -> bytes:
    return b'{"texts": ' + b"[" * depth + b'"x"' + b"]" * depth + b"}"


_BINARY_BAD_UTF8, _BINARY_HEADERS = _binary_infer(b"\xff\xfe bad")
_V1 = "/v1/predict"
_V2 = "/v2/models/{name}/infer"
_EXPLAIN = "/v1/explain"
_RELOAD = "/v1/admin/models/{name}/reload"
_DIGITS = ("²", "٣", "１", "-1", "1e3", " 7", "0x10", "9" * 40)

BAD_INPUTS: tuple[BadInput, ...] = (
    BadInput(
        "lone surrogate in /v1/predict",
        "POST",
        _V1,
        _json({"texts": ["fine", SURROGATE]}),
        message="texts.1",
    ),
    BadInput(
        "lone low surrogate in /v1/predict",
        "POST",
        _V1,
        _json({"texts": ["\udc80 tail"]}),
        message="lone surrogate",
    ),
    BadInput(
        "lone surrogate in /v2 infer",
        "POST",
        _V2,
        _infer(["ok", SURROGATE]),
        message="Invalid JSON",
    ),
    BadInput(
        "lone surrogate in /v1/explain",
        "POST",
        _EXPLAIN,
        _json({"texts": [SURROGATE]}),
        message="texts.0",
    ),
    BadInput(
        "invalid UTF-8 in binary tensor data",
        "POST",
        _V2,
        _BINARY_BAD_UTF8,
        _BINARY_HEADERS,
        message="UTF-8",
    ),
    *(
        BadInput(
            f"Inference-Header-Content-Length {value!r}",
            "POST",
            _V2,
            _infer(["hello"]),
            {"Inference-Header-Content-Length": value},
            status=400,
            message="Inference-Header-Content-Length",
        )
        for value in _DIGITS
    ),
    *(
        BadInput(
            f"reload to version {value!r}",
            "POST",
            _RELOAD,
            _json({"version": value}),
            status=404,
            scope="admin",
        )
        for value in ("²", "٣", "１")
    ),
    *(
        BadInput(
            f"path version {value!r}",
            "GET",
            f"/v2/models/{{name}}/versions/{value}",
            None,
            status=404,
        )
        for value in ("²", "٣", "0", "99999999999999999999")
    ),
    BadInput("deeply nested /v1 body", "POST", _V1, _nested(100_000), status=400),
    BadInput(
        "deeply nested /v2 body",
        "POST",
        _V2,
        b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ),
    BadInput("texts not a list", "POST", _V1, _json({"texts": "hello"})),
    BadInput("texts of numbers", "POST", _V1, _json({"texts": [1, 2]})),
    BadInput("texts null", "POST", _V1, _json({"texts": None})),
    BadInput("not JSON", "POST", _V1, b"\xff\x00 not json", status=400),
    BadInput("empty body", "POST", _V1, b""),
    BadInput("huge shape", "POST", _V2, _infer(["x"], shape=[10**30])),
    BadInput("float shape", "POST", _V2, _infer(["x"], shape=[1.5])),
    BadInput("negative shape", "POST", _V2, _infer(["x"], shape=[-1])),
    BadInput(
        "NaN binary size",
        "POST",
        _V2,
        b'{"inputs": [{"name": "text", "datatype": "BYTES", '
        b'"shape": [1], "parameters": {"binary_data_size": NaN}}]}',
    ),
    BadInput(
        "explain steps out of range", "POST", _EXPLAIN, _json({"texts": ["x"], "steps": 10**12})
    ),
    BadInput("explain unknown method", "POST", _EXPLAIN, _json({"texts": ["x"], "method": "²"})),
    BadInput(
        "unknown model", "POST", _V1, _json({"texts": ["x"], "model": "n\u0000pe"}), status=404
    ),
)


# ---------------------------------------------------------------------------------------------
# hostile artifacts: each takes a copy of a clean run folder and damages it; loading it
# (predict, serve, push) must raise a ModelyardError whose message contains `message`


@dataclass(frozen=True)
class HostileArtifact:
    """One way to damage a clean run folder, and a fragment of the refusal it must get."""

    name: str
    damage: Callable[[Path], None]
    message: str
    rehash: bool = True  # rewrite the manifest after the damage (a forger would)


def _write(name: str, content: bytes | str) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        data = content.encode("utf-8") if isinstance(content, str) else content
        (root / name).write_bytes(data)

    return damage


def _recipe(text: str) -> Callable[[Path], None]:
    return _write("recipe.yaml", text)


def _nested_manifest(root: Path) -> None:
    depth = 200_000
    (root / "manifest.json").write_bytes(b'{"files": ' + b"[" * depth + b"]" * depth + b"}")


HOSTILE_ARTIFACTS: tuple[HostileArtifact, ...] = (
    HostileArtifact("deeply nested manifest.json", _nested_manifest, "nested too deeply", False),
    HostileArtifact(
        "deeply nested labels.json", _write("labels.json", "[" * 200_000 + "]" * 200_000), "labels"
    ),
    HostileArtifact("labels.json not a list", _write("labels.json", '{"a": 1}'), "labels"),
    HostileArtifact("recipe max_length abc", _recipe("model:\n  max_length: abc\n"), "recipe"),
    HostileArtifact("recipe model is a list", _recipe("model: [1, 2]\n"), "recipe"),
    HostileArtifact(
        "recipe with a python tag",
        _recipe("model: !!python/object/apply:os.system ['echo pwned']\n"),
        "recipe",
    ),
    HostileArtifact("recipe not YAML", _recipe("model: {max_length: [\n"), "recipe"),
    HostileArtifact(
        "recipe nested too deeply", _recipe("a: " + "[" * 5000 + "]" * 5000 + "\n"), "recipe"
    ),
    HostileArtifact(
        "recipe max_length beyond the positions",
        _recipe("model:\n  max_length: 4096\n"),
        "positions",
    ),
    HostileArtifact("config.json not JSON", _write("config.json", "{not json"), "config"),
    HostileArtifact(
        "weights replaced unhashed", _write("model.safetensors", b"\x00" * 64), "manifest", False
    ),
)


def damaged_copy(clean: Path, case: HostileArtifact, target: Path) -> Path:
    """Return `target`: a copy of the clean run `clean` with `case`'s damage done to it."""
    from modelyard.registry.manifest import write_manifest

    shutil.copytree(clean, target)
    case.damage(target)
    if case.rehash:
        write_manifest(target)
    return target
