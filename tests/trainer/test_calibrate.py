"""Temperature scaling after training: fitted on dev, saved in the artifact, applied on load."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import modelyard
from modelyard.backends import load_backend
from modelyard.errors import ArtifactError
from modelyard.evaluation.calibration import scaled_probabilities
from modelyard.inference import predict_proba
from modelyard.models.encoding import Encoded, encode_texts
from modelyard.models.predict import predict_logits
from modelyard.recipe import build_recipe
from modelyard.registry.calibration import CALIBRATION
from modelyard.registry.manifest import MANIFEST, read_manifest, write_manifest
from modelyard.registry.run import load_run
from tests.conftest import make_rows, write_csv

TEXTS = [t for t, _ in make_rows(24, seed=5)]
_MANIFEST_OWN = {"format_version", "kind", "created", "modelyard_version", "parent", "files"}


def rewrite_manifest(root: Path) -> None:
    """Re-hash `root` after a test changed its files, keeping kind, parent and lineage."""
    old = read_manifest(root)
    extra = {k: v for k, v in old.items() if k not in _MANIFEST_OWN}
    write_manifest(root, kind=old.get("kind", "classifier"), parent=old.get("parent"), extra=extra)


def with_temperature(run: Path, out: Path, temperature: Any) -> Path:
    """Return a copy of `run` at `out` whose calibration record says `temperature`."""
    shutil.copytree(run, out)
    (out / CALIBRATION).write_text(json.dumps({"temperature": temperature}), encoding="utf-8")
    rewrite_manifest(out)
    return out


def _train(tmp: Path, backbone: Path, calibrate: bool) -> Path:
    data = write_csv(tmp / "data.csv", make_rows(200))
    recipe = build_recipe(
        {
            "run": {"name": f"cal-{calibrate}", "output_dir": str(tmp / "runs"), "seed": 7},
            "data": {"path": str(data), "split": {"dev": 0.15, "test": 0.15}},
            "model": {"backbone": str(backbone), "max_length": 32},
            "train": {
                "epochs": 2,
                "batch_size": 8,
                "lr": 5e-3,
                "precision": "fp32",
                "num_threads": 1,
                "checkpoint_every": None,
                "calibrate": calibrate,
            },
            "evaluate": {"speed": False},
        }
    )
    return modelyard.train(recipe, progress=False).run_dir


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    return _train(tmp_path_factory.mktemp("calibrated"), tiny_backbone, True)


@pytest.fixture(scope="module")
def uncalibrated(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    return _train(tmp_path_factory.mktemp("uncalibrated"), tiny_backbone, False)


def _logits(run_dir: Path) -> np.ndarray:
    run = load_run(run_dir)
    ids, types, _ = encode_texts(run.tokenizer, TEXTS, None, run.max_length)
    encoded = Encoded(ids, types, [0] * len(ids), 0)
    return predict_logits(run.model, encoded, 0, torch.device("cpu"), None)


def test_training_fits_saves_and_reports_a_temperature(calibrated: Path) -> None:
    record = json.loads((calibrated / CALIBRATION).read_text())
    assert CALIBRATION in read_manifest(calibrated)["files"]  # the hash covers it
    assert record["method"] == "temperature" and record["fitted_on"] == "dev"
    assert record["dev_rows"] == 30
    assert record["dev_nll_after"] <= record["dev_nll_before"] + 1e-9
    t = record["temperature"]
    assert t != 1.0 and load_run(calibrated).temperature == t
    saved = json.loads((calibrated / "metrics.json").read_text())
    assert saved["test"]["temperature"] == t
    assert saved["test"]["ece"] == pytest.approx(saved["training"]["calibration"]["ece_after"])
    assert "ece_uncalibrated" in saved["test"]
    assert "ece_before" in saved["training"]["calibration"]
    assert f"T = {t:.3g}" in (calibrated / "MODEL_CARD.md").read_text()
    assert "**Calibration:**" in (calibrated / "report.md").read_text()


def test_temperature_changes_probabilities_not_predictions(calibrated: Path) -> None:
    run = load_run(calibrated)
    scaled = predict_proba(run, TEXTS)
    plain = predict_proba(replace(run, temperature=1.0), TEXTS)
    assert scaled.labels == plain.labels
    assert not np.allclose(scaled.probs, plain.probs)
    expected = scaled_probabilities(_logits(calibrated), run.temperature)
    assert np.allclose(scaled.probs, expected, atol=1e-5)
    backend_probs, _ = load_backend(calibrated).predict_proba(TEXTS)
    assert np.allclose(backend_probs, scaled.probs, atol=1e-6)


def test_calibrate_off_gives_temperature_one(uncalibrated: Path, calibrated: Path) -> None:
    assert not (uncalibrated / CALIBRATION).exists()
    assert load_run(uncalibrated).temperature == 1.0
    training = json.loads((uncalibrated / "metrics.json").read_text())["training"]
    assert training["calibration"]["method"] == "none"
    assert "train.calibrate is false" in training["calibration"]["reason"]
    # the same seed trains the same weights: off is the plain softmax of the calibrated run
    plain = predict_proba(replace(load_run(calibrated), temperature=1.0), TEXTS).probs
    assert np.allclose(predict_proba(load_run(uncalibrated), TEXTS).probs, plain, atol=1e-5)


def test_artifact_without_a_record_loads_as_temperature_one(
    calibrated: Path, tmp_path: Path
) -> None:
    old = Path(shutil.copytree(calibrated, tmp_path / "old"))
    (old / CALIBRATION).unlink()
    rewrite_manifest(old)
    run = load_run(old)
    assert run.temperature == 1.0
    expected = scaled_probabilities(_logits(old))
    assert np.allclose(predict_proba(run, TEXTS).probs, expected, atol=1e-5)


@pytest.mark.parametrize(
    "temperature", [-3, 0, 1e6, "hot", None, [1.5], True], ids=lambda v: repr(v)
)
def test_out_of_range_or_corrupt_temperature_is_refused(
    calibrated: Path, tmp_path: Path, temperature: Any
) -> None:
    bad = with_temperature(calibrated, tmp_path / "bad", temperature)
    with pytest.raises(ArtifactError, match=CALIBRATION):
        load_run(bad)
    with pytest.raises(ArtifactError, match=CALIBRATION):
        load_backend(bad)


@pytest.mark.parametrize("content", [b"{not json", b"[1.5]", b"{}", b"\xff\xfe"])
def test_unreadable_calibration_record_is_refused(
    calibrated: Path, tmp_path: Path, content: bytes
) -> None:
    bad = Path(shutil.copytree(calibrated, tmp_path / "bad"))
    (bad / CALIBRATION).write_bytes(content)
    rewrite_manifest(bad)
    with pytest.raises(ArtifactError, match="refusing to load"):
        load_run(bad)


def test_edited_temperature_fails_the_manifest(calibrated: Path, tmp_path: Path) -> None:
    edited = Path(shutil.copytree(calibrated, tmp_path / "edited"))
    (edited / CALIBRATION).write_text('{"temperature": 3.0}', encoding="utf-8")
    with pytest.raises(ArtifactError, match="changed"):
        load_run(edited)
    assert (edited / MANIFEST).is_file()
