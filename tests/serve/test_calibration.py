"""The server answers with a calibrated model's temperature-scaled probabilities."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from modelyard.inference import predict_proba
from modelyard.registry.run import load_run
from modelyard.registry.store import ModelStore
from modelyard.serve.app import create_app
from modelyard.serve.settings import ServeSettings
from tests.serve.conftest import LABELS, Keys
from tests.trainer.test_calibrate import with_temperature

TEXTS = ["my parcel is late", "refund my invoice"]


def test_served_probabilities_use_the_temperature(
    tiny_runs: list[Path], tmp_path: Path, keys: Keys
) -> None:
    hot = with_temperature(tiny_runs[0], tmp_path / "hot", 0.2)  # sharpens the random head
    store = ModelStore(tmp_path / "registry")
    store.push(hot, "hot")
    settings = ServeSettings.model_validate({"models": ["hot:1"], "watch_aliases_s": None})
    with TestClient(create_app(settings, store=store, keys=keys.store)) as client:
        answer = client.post("/v1/predict", json={"texts": TEXTS}, headers=keys.headers()).json()
    run = load_run(hot)
    scaled = predict_proba(run, TEXTS).probs
    plain = predict_proba(replace(run, temperature=1.0), TEXTS).probs
    served = np.array([[p["probabilities"][n] for n in LABELS] for p in answer["predictions"]])
    np.testing.assert_allclose(served, scaled, atol=1e-5)
    assert not np.allclose(served, plain, atol=1e-3)
    assert (served.argmax(1) == plain.argmax(1)).all()
