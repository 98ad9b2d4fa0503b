"""ONNX export: parity with PyTorch, dynamic axes, the ONNX Runtime backend and the API on it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

import modelyard
from modelyard.backends import load_backend
from modelyard.cli import app
from modelyard.compress import CompressContext
from modelyard.compress.export import ParityError, check_parity, torch_logits
from modelyard.compress.onnx_backend import OnnxBackend, make_session
from modelyard.errors import ArtifactError
from tests.compress.conftest import texts
from tests.conftest import make_rows, write_csv


def test_onnx_logits_match_pytorch_at_any_batch_and_length(
    onnx_artifact: Path, ctx: CompressContext
) -> None:
    backend = load_backend(onnx_artifact)
    assert isinstance(backend, OnnxBackend)
    sample = [*texts(20), "refund", "my parcel is late " * 6]
    reference = torch_logits(ctx.run.model, ctx.run.tokenizer, sample, ctx.run.max_length)
    for size in (1, 3, len(sample)):
        logits, _ = backend.classifier.predict_logits(sample[:size])
        assert np.abs(logits - reference[:size]).max() < 1e-4


def test_cutting_a_batch_by_length_changes_no_logit(
    onnx_artifact: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    classifier = load_backend(onnx_artifact).classifier  # type: ignore[attr-defined]
    sample = [*texts(12), "refund", "my parcel is late " * 6, "a b"]
    calls: list[int] = []
    run = classifier.session.run

    def counted(names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        calls.append(len(feed["input_ids"]))
        return run(names, feed)

    monkeypatch.setattr(classifier.session, "run", counted)
    classifier.call_tokens = 10**6  # one padded call
    whole, _ = classifier.predict_logits(sample)
    assert calls == [len(sample)]
    calls.clear()
    classifier.call_tokens = 0  # a call per length: no padding at all
    cut, _ = classifier.predict_logits(sample)
    assert len(calls) > 1 and sum(calls) == len(sample)
    assert np.abs(cut - whole).max() < 1e-4


def test_parity_is_reported_and_within_tolerance(onnx_artifact: Path, ctx: CompressContext) -> None:
    info = json.loads((onnx_artifact / "compression.json").read_text())
    assert 0 <= info["parity_max_abs_diff"] <= ctx.cfg.quantize.parity_tolerance
    assert info["opset"] >= 17


def test_graph_has_dynamic_batch_and_sequence_axes(onnx_artifact: Path) -> None:
    graph = onnx.load(str(onnx_artifact / "model.onnx")).graph
    ids = next(i for i in graph.input if i.name == "input_ids")
    dims = [d.dim_param for d in ids.type.tensor_type.shape.dim]
    assert dims == ["batch", "sequence"]


def test_parity_error_says_what_to_do() -> None:
    ref = np.zeros((2, 3), dtype=np.float32)
    assert check_parity(ref, ref + 1e-5, 1e-3, "x") == pytest.approx(1e-5)
    with pytest.raises(ParityError, match=r"up to 0\.5.*parity_tolerance"):
        check_parity(ref, ref + 0.5, 1e-3, "ONNX export")


def test_session_uses_the_threads_it_is_given(onnx_artifact: Path) -> None:
    session = make_session(onnx_artifact / "model.onnx", threads=1)
    options = session.get_session_options()
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    assert options.graph_optimization_level.name == "ORT_ENABLE_ALL"


def test_tampered_graph_is_refused(onnx_artifact: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(onnx_artifact, tmp_path / "copy")
    blob = bytearray((copy / "model.onnx").read_bytes())
    blob[-1] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(blob))
    with pytest.raises(ArtifactError, match="changed content: model.onnx"):
        load_backend(copy)


def test_evaluate_and_predict_work_on_onnx(
    onnx_artifact: Path, trained_run: Path, tmp_path: Path
) -> None:
    test = write_csv(tmp_path / "test.csv", make_rows(30, seed=5))
    onnx_metrics = modelyard.evaluate(onnx_artifact, test, output=tmp_path / "eval")
    torch_metrics = modelyard.evaluate(trained_run, test, output=tmp_path / "eval-torch")
    assert onnx_metrics["n"] == 30 and onnx_metrics["accuracy"] == torch_metrics["accuracy"]
    assert (tmp_path / "eval" / "report.md").is_file() and (
        tmp_path / "eval" / "confusion.png"
    ).is_file()
    [ours] = modelyard.predict(onnx_artifact, "refund my invoice payment please")
    [theirs] = modelyard.predict(trained_run, "refund my invoice payment please")
    assert ours["label"] == theirs["label"] and ours["score"] == pytest.approx(
        theirs["score"], abs=1e-4
    )
    out = modelyard.predict_file(onnx_artifact, test, tmp_path / "preds.csv")
    assert len(out.read_text().splitlines()) == 31


def test_cli_predicts_with_onnx(onnx_artifact: Path) -> None:
    result = CliRunner().invoke(
        app, ["predict", str(onnx_artifact), "parcel delivery tracking late", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["predicted_label"] == "shipping"


def test_missing_onnxruntime_names_the_extra(
    onnx_artifact: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from modelyard.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'modelyard\[compress\]'"):
        make_session(onnx_artifact / "model.onnx")


@pytest.mark.slow  # a process of its own
def test_memory_is_measured_in_a_fresh_process(onnx_artifact: Path) -> None:
    from modelyard.compress.measure import isolated_memory

    figures = isolated_memory(onnx_artifact, 1, texts(8))
    assert figures["memory_mb"] is not None and figures["peak_rss_mb"] is not None
    assert 0 < figures["memory_mb"] < figures["peak_rss_mb"]


def test_robustness_evaluates_an_onnx_artifact(
    onnx_artifact: Path, trained_run: Path, tmp_path: Path
) -> None:
    # one evaluation for every artifact kind: the noise sweep runs through the ONNX backend
    test = write_csv(tmp_path / "test.csv", make_rows(30, seed=5))
    onnx = modelyard.evaluate(onnx_artifact, test, output=tmp_path / "onnx", robustness=True)
    torch = modelyard.evaluate(trained_run, test, output=tmp_path / "torch", robustness=True)
    assert onnx["robustness"]["clean_accuracy"] == pytest.approx(onnx["accuracy"])
    for name, value in onnx["robustness"]["noise"].items():
        assert value["accuracy"] == pytest.approx(
            torch["robustness"]["noise"][name]["accuracy"], abs=0.07
        )
    assert (tmp_path / "onnx" / "robustness.md").is_file()
