"""OpenVINO sessions for ONNX graphs, with the small part of ONNX Runtime's session interface
that the classifiers use (`get_inputs()` and `run(outputs, feed)`).

OpenVINO reads an ONNX graph directly and compiles it for the CPU it runs on: with AMX or
AVX-512 it multiplies int8 (QDQ graphs) and bf16 natively. Its CPU plug-in picks bf16 by
itself on a CPU with AMX; the precision is therefore always set explicitly here, so that an
`fp32` variant really runs in fp32 and its parity check means what it says.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from modelyard.plugins import require

Precision = Literal["f32", "bf16"]
PRECISIONS: tuple[Precision, ...] = ("f32", "bf16")


@dataclass(frozen=True)
class _Input:
    name: str


class OpenVinoSession:
    """A compiled OpenVINO model called like an ONNX Runtime session."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self._inputs = [_Input(port.get_any_name()) for port in compiled.inputs]

    def get_inputs(self) -> list[_Input]:
        """Return the graph's inputs, each with its `name`."""
        return list(self._inputs)

    def run(self, outputs: list[str] | None, feed: dict[str, Any]) -> list[Any]:
        """Return the named outputs (all with None) of one call on the numpy arrays `feed`."""
        result = self.request.infer(feed)
        if outputs is None:
            return [result[port] for port in self.compiled.outputs]
        return [result[self.compiled.output(name)] for name in outputs]


def make_openvino_session(
    model: Path | bytes, threads: int | None = None, precision: Precision = "f32"
) -> OpenVinoSession:
    """Return an OpenVINO CPU session over the ONNX graph `model` (a path or its bytes), with
    `threads` inference threads and activations in `precision` where not quantized.

    Raises MissingExtraError when openvino is not installed, ValueError for an unknown
    precision.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"OpenVINO precision is one of {', '.join(PRECISIONS)}; got {precision!r}")
    ov: Any = require("openvino", extra="openvino")
    from modelyard.models.onnx_runtime import default_threads

    core = ov.Core()
    graph = core.read_model(model, b"") if isinstance(model, bytes) else core.read_model(model)
    config = {
        "INFERENCE_NUM_THREADS": threads or default_threads(),
        "INFERENCE_PRECISION_HINT": precision,
        # calls come one at a time from one thread: one stream gets every core
        "PERFORMANCE_HINT": "LATENCY",
        # PyTorch shares the process (tokenizing, the parent model in compress): pinned
        # OpenVINO threads would fight its pool for the same cores
        "ENABLE_CPU_PINNING": False,
    }
    return OpenVinoSession(core.compile_model(graph, "CPU", config))
