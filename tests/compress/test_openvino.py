"""OpenVINO variants: fp32 matches PyTorch, bf16 and int8 keep its predictions, the artifact
loads through `load_backend`, and a bad record or a missing package is refused clearly."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from modelyard.backends import load_backend
from modelyard.compress import COMPRESSION_METHODS, CompressContext
from modelyard.compress.base import MethodSpec, save_variant
from modelyard.compress.openvino_backend import OPENVINO_FILE, OPENVINO_KIND, OpenVinoBackend
from modelyard.errors import ArtifactError, MissingExtraError
from modelyard.models.openvino_runtime import make_openvino_session
from modelyard.registry.manifest import read_manifest, write_manifest
from tests.compress.conftest import texts

pytest.importorskip("openvino")
METHODS = ("openvino", "openvino-bf16", "openvino-int8")


@pytest.fixture(scope="module")
def saved(ctx: CompressContext, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("openvino")
    return {
        name: save_variant(
            COMPRESSION_METHODS.get(name)(ctx, None), ctx, MethodSpec(name, None), root / name
        )
        for name in METHODS
    }


def _parent_probs(ctx: CompressContext, sample: list[str]) -> np.ndarray:
    probs, _ = COMPRESSION_METHODS.get("onnx")(ctx, None).predict_proba(sample)
    return probs


def test_fp32_matches_the_parent_and_the_others_keep_its_predictions(
    ctx: CompressContext, saved: dict[str, Path]
) -> None:
    sample = texts(40, seed=11)
    reference = _parent_probs(ctx, sample)
    for name, path in saved.items():
        backend = load_backend(path)
        assert isinstance(backend, OpenVinoBackend)
        probs, cut = backend.predict_proba(sample)
        assert probs.shape == reference.shape and len(cut) == len(sample)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        agreement = (probs.argmax(1) == reference.argmax(1)).mean()
        assert agreement >= 0.9, (name, agreement)
    fp32, _ = load_backend(saved["openvino"]).predict_proba(sample)
    np.testing.assert_allclose(fp32, reference, atol=1e-4)


def test_the_artifact_records_its_kind_precision_and_runtime(saved: dict[str, Path]) -> None:
    for name, precision in zip(METHODS, ("f32", "bf16", "f32"), strict=True):
        assert read_manifest(saved[name])["kind"] == OPENVINO_KIND
        record = json.loads((saved[name] / OPENVINO_FILE).read_text())
        assert record == {"precision": precision}
        details = json.loads((saved[name] / "compression.json").read_text())
        assert details["runtime"] == "openvino" and details["precision"] == precision
    details = json.loads((saved["openvino-int8"] / "compression.json").read_text())
    assert details["calibration_texts"] > 0


def test_the_int8_variant_runs_the_quantized_graph(saved: dict[str, Path]) -> None:
    import onnx

    ops = {n.op_type for n in onnx.load(str(saved["openvino-int8"] / "model.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_a_tampered_precision_record_is_refused(saved: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(saved["openvino"], copy)
    (copy / OPENVINO_FILE).write_text('{"precision": "f16"}', encoding="utf-8")
    with pytest.raises(ArtifactError):  # the hash no longer matches
        load_backend(copy)
    write_manifest(copy, kind=OPENVINO_KIND)  # re-signed by hand: the value itself is checked
    with pytest.raises(ArtifactError, match="does not name a precision"):
        load_backend(copy)


def test_a_missing_precision_record_is_refused(saved: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(saved["openvino"], copy)
    (copy / OPENVINO_FILE).unlink()
    write_manifest(copy, kind=OPENVINO_KIND)
    with pytest.raises(ArtifactError, match=f"lists no {OPENVINO_FILE}"):
        load_backend(copy)


def test_an_unknown_precision_is_refused(saved: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="precision"):
        make_openvino_session(saved["openvino"] / "model.onnx", 1, "f16")  # type: ignore[arg-type]


def test_without_openvino_the_error_names_the_extra(
    saved: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules makes the import fail as it does where the package is not installed
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(MissingExtraError, match="'openvino' extra"):
        make_openvino_session(saved["openvino"] / "model.onnx", 1)
