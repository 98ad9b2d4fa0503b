"""Compressed artifacts (from `modelyard compress`): ONNX and int8 models are explained
through their forward pass only, since they have no gradients to follow."""

from __future__ import annotations

from pathlib import Path

import pytest

import modelyard
from modelyard.explainability import ExplainError, as_subject
from tests.compress.conftest import FAST
from tests.conftest import write_csv
from tests.explainability.conftest import KEY, key_rows

pytest.importorskip("onnxruntime")
TEXT = f"my card {KEY} is late"


@pytest.fixture(scope="module")
def variants(key_run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from modelyard.compress import compress

    tmp = tmp_path_factory.mktemp("compressed")
    data = write_csv(tmp / "test.csv", key_rows(12, seed=7))
    methods = ["onnx", "int8-dynamic"]
    # FAST: the measurement settings of the compress tests; only the variants matter here
    result = compress(
        key_run_dir, methods=methods, data=data, output=tmp / "out", threads=1, overrides=FAST
    )
    assert set(result.variants) == set(methods), result.report.get("failed")
    return result.variants


@pytest.mark.parametrize("variant", ["onnx", "int8-dynamic"])
def test_forward_only_variants_get_occlusion_by_default_and_shapley(
    variants: dict[str, Path], variant: str
) -> None:
    subject = as_subject(variants[variant])
    assert subject.run is None
    [exp] = modelyard.explain(subject, TEXT)
    assert exp.method == "occlusion" and exp.top_words(1)[0].word == KEY
    [exp] = modelyard.explain(subject, TEXT, method="shapley", samples=4)
    assert exp.top_words(1)[0].word == KEY and not exp.tokens


@pytest.mark.parametrize("variant", ["onnx", "int8-dynamic"])
def test_gradient_methods_say_what_to_use_instead(variants: dict[str, Path], variant: str) -> None:
    with pytest.raises(ExplainError, match="needs gradients.*use one of: occlusion, shapley"):
        modelyard.explain(variants[variant], TEXT, method="ig")
