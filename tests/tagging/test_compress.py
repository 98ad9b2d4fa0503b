"""Compressing a token-classification run: ONNX fp32 and int8 variants checked against the
parent, loaded by predict, evaluate and serve like the run itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modelyard import api
from modelyard.compress.sweep import CompressResult
from modelyard.errors import RecipeError
from modelyard.registry.manifest import read_manifest
from modelyard.registry.store import ModelStore
from modelyard.serve.app import create_app
from modelyard.serve.settings import ServeSettings
from modelyard.tagging import load_tagger
from tests.tagging.conftest import tagged_rows, write_jsonl

TEXTS = [
    "please help with password login at the parcel 42 today",
    "my email profile is not the courier 17",
    "i need a package",
]
# measuring briefly: the figures are not under test, only that they are there
# exporting, quantizing and scoring three models: about 30 s under load, paid once per package
SLOW = pytest.mark.slow
QUICK = ["compress.rounds=1", "compress.latency_runs=2", "compress.speed_samples=8"]


@pytest.fixture(scope="package")
def compressed(full_run: Path, tmp_path_factory: pytest.TempPathFactory) -> CompressResult:
    """The tiny NER run compressed with onnx and int8-dynamic on one thread."""
    out = tmp_path_factory.mktemp("ner-compressed") / "out"
    return api.compress(
        full_run, methods=["onnx", "int8-dynamic"], output=out, threads=1, overrides=QUICK
    )


def _spans(answers: list[dict]) -> list[list[tuple[str, int, int]]]:
    return [[(e["label"], e["start"], e["end"]) for e in a["entities"]] for a in answers]


@SLOW
def test_both_variants_are_verified_token_artifacts(compressed: CompressResult) -> None:
    assert set(compressed.variants) == {"onnx", "int8-dynamic"}
    for path in compressed.variants.values():
        manifest = read_manifest(path)
        assert manifest["kind"] == "onnx-token-classifier"
        assert manifest["task"] == "token-classification"
        assert manifest["parent"]
        assert load_tagger(path).tags == manifest["tags"]


@SLOW
def test_the_onnx_export_matches_the_parent(compressed: CompressResult) -> None:
    details = json.loads((compressed.variants["onnx"] / "compression.json").read_text())
    assert details["max_abs_logit_diff"] <= 1e-3
    assert details["span_agreement"] == 1.0
    int8 = json.loads((compressed.variants["int8-dynamic"] / "compression.json").read_text())
    assert 0 <= int8["span_agreement"] <= 1 and int8["max_abs_logit_diff"] >= 0


@SLOW
def test_int8_smooths_the_products_before_quantizing(compressed: CompressResult) -> None:
    int8 = json.loads((compressed.variants["int8-dynamic"] / "compression.json").read_text())
    assert int8["smooth_alpha"] == 0.9 and int8["fp32_head"] is True
    # the tiny BERT's 2 layers: fused attention, its output, and the two feed-forward products
    assert int8["smoothed_products"] == 8
    assert int8["smoothing_parity_max_abs_diff"] <= 1e-3


@SLOW
def test_the_report_scores_entity_f1(compressed: CompressResult) -> None:
    report = compressed.report
    assert report["accuracy_metric"].startswith("entity-level F1")
    parent, onnx, int8 = report["variants"]
    assert abs(parent["accuracy"] - onnx["accuracy"]) < 1e-9
    assert 0 <= int8["accuracy"] <= 1 and int8["speedup_b32"] > 0
    assert "entity-level F1" in (compressed.output_dir / "report.md").read_text()


@SLOW
def test_predict_and_evaluate_load_the_variants(
    compressed: CompressResult, full_run: Path, tmp_path: Path
) -> None:
    expected = _spans(api.predict(full_run, TEXTS))
    assert _spans(api.predict(compressed.variants["onnx"], TEXTS)) == expected
    int8 = api.predict(compressed.variants["int8-dynamic"], TEXTS)
    assert [set(a) for a in int8] == [set(a) for a in api.predict(full_run, TEXTS)]
    data = write_jsonl(tmp_path / "more.jsonl", tagged_rows(20, seed=9))
    parent = api.evaluate(full_run, data, output=tmp_path / "parent")
    onnx = api.evaluate(compressed.variants["onnx"], data, output=tmp_path / "onnx")
    assert onnx["f1"] == pytest.approx(parent["f1"])


@SLOW
def test_a_variant_is_served_with_entity_spans(
    compressed: CompressResult, full_run: Path, tmp_path: Path
) -> None:
    store = ModelStore(tmp_path / "registry")
    api.push(compressed.variants["onnx"], "ner", registry=store.root)
    settings = ServeSettings.model_validate(
        {"models": ["ner"], "watch_aliases_s": None, "auth": False}
    )
    with TestClient(create_app(settings, store=store)) as client:
        response = client.post("/v1/predict", json={"texts": TEXTS})
    assert response.status_code == 200, response.text
    assert _spans(response.json()["predictions"]) == _spans(api.predict(full_run, TEXTS))


@pytest.mark.parametrize("method", ["distill:1", "prune-heads:0.3", "int8-static", "torch-int8"])
def test_methods_that_do_not_apply_are_refused(full_run: Path, tmp_path: Path, method: str) -> None:
    with pytest.raises(RecipeError, match=f"{method} does not apply to a token-classification"):
        api.compress(full_run, methods=["onnx", method], output=tmp_path / "out")
    assert not (tmp_path / "out").exists()
