"""Registers the inference backends of compressed artifacts in `modelyard.backends.BACKENDS`."""

from __future__ import annotations

from pathlib import Path

from modelyard.backends import BACKENDS, Backend
from modelyard.compress.onnx_backend import ONNX_KIND, OnnxBackend
from modelyard.compress.torch_variant import TORCH_KIND, TorchVariantBackend


def _onnx(path: Path) -> Backend:
    return OnnxBackend(path)


def _torch_variant(path: Path) -> Backend:
    return TorchVariantBackend(path)


BACKENDS.add(ONNX_KIND, _onnx)
BACKENDS.add(TORCH_KIND, _torch_variant)
