"""The artifact-kind sweep, and the backend, run-loader and artifact-kind checks failing on
deliberately broken plug-ins."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from modelyard.registry import LoadedRun, load_run
from modelyard.registry.kinds import ARTIFACT_KINDS, ArtifactKind, artifact_kind
from modelyard.testing import (
    BoundCheck,
    check_artifact_kind,
    check_backend,
    check_run_loader,
    parametrize_with_checks,
)


@parametrize_with_checks("artifact-kind")
def test_artifact_kind_keeps_its_contract(
    entry: str, check: BoundCheck, artifacts: dict[str, Path]
) -> None:
    assert entry in artifacts, f"tests/testing/conftest.py makes no artifact of kind '{entry}'"
    check(artifacts[entry])


class HashBackend:
    """A backend without a model: fixed probabilities from a hash of each text's first words."""

    name = "hash"

    def __init__(self) -> None:
        self.labels, self.max_length, self.path = ["a", "b", "c"], 16, Path(".")

    def scores(self, text: str) -> np.ndarray:
        words = text.split()[: self.max_length]
        digest = hashlib.sha256(" ".join(words).encode()).digest()
        return np.frombuffer(digest[:3], dtype=np.uint8).astype(np.float64) + 1.0

    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        raw = np.array([self.scores(t) for t in texts]).reshape(len(texts), 3)
        return raw / raw.sum(axis=1, keepdims=True), [len(t.split()) > 14 for t in texts]


class Unnormalised(HashBackend):
    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        probs, cut = super().predict_proba(texts)
        return probs * 0.9, cut


class MissingFlag(HashBackend):
    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        probs, cut = super().predict_proba(texts)
        return probs, cut[1:]


class OneColumnShort(HashBackend):
    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        probs, cut = super().predict_proba(texts)
        return probs[:, :2] / probs[:, :2].sum(axis=1, keepdims=True), cut


class Noisy(HashBackend):
    """Dropout left on at inference: a different answer on every call."""

    def __init__(self) -> None:
        super().__init__()
        self.rng = np.random.default_rng(0)

    def scores(self, text: str) -> np.ndarray:
        return super().scores(text) * self.rng.uniform(0.5, 1.5, size=3)


class BatchDependent(HashBackend):
    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        probs, cut = super().predict_proba(texts)
        shifted = probs + 0.01 * len(texts) * np.array([1.0, 0.0, 0.0])
        return shifted / shifted.sum(axis=1, keepdims=True), cut


class FailsOnEmpty(HashBackend):
    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        probs, cut = super().predict_proba(texts)
        return (probs if texts else np.zeros((0,))), cut


class NeverTruncates(HashBackend):
    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        probs, cut = super().predict_proba(texts)
        return probs, [False] * len(cut)


class EatsItsInput(HashBackend):
    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        probs, cut = super().predict_proba(texts)
        texts.reverse()
        return probs, cut


class RepeatedLabel(HashBackend):
    def __init__(self) -> None:
        super().__init__()
        self.labels = ["a", "b", "a"]


def test_a_sound_backend_passes() -> None:
    check_backend(HashBackend())


@pytest.mark.parametrize(
    ("broken", "clause"),
    [
        (Unnormalised, "each row of probabilities sums to 1"),
        (MissingFlag, "one truncation flag per text"),
        (OneColumnShort, r"probabilities have shape \(n texts, n labels\)"),
        (Noisy, "predictions are deterministic"),
        (BatchDependent, "do not depend on the batch"),
        (FailsOnEmpty, "have shape"),
        (NeverTruncates, "longer than max_length is flagged as truncated"),
        (EatsItsInput, "leaves the list it is given unchanged"),
        (RepeatedLabel, "labels are distinct strings"),
    ],
)
def test_a_broken_backend_fails_naming_the_clause(broken: type, clause: str) -> None:
    with pytest.raises(AssertionError, match=rf"backend 'hash' breaks .*{clause}"):
        check_backend(broken())


def test_a_loader_leaving_the_model_in_train_mode_fails(artifacts: dict[str, Path]) -> None:
    adapter = artifacts["adapter-classifier"]
    kind = artifact_kind("adapter-classifier")
    assert kind.loader is not None
    check_run_loader(kind.loader, adapter)

    def training_loader(path: Path, manifest: dict, device: str) -> LoadedRun:
        run = load_run(path, device)
        run.model.train()
        return run

    with pytest.raises(AssertionError, match="run loader 'training_loader' .*eval mode"):
        check_run_loader(training_loader, adapter)


@pytest.mark.parametrize(
    ("kind", "clause"),
    [
        (
            ArtifactKind("ghost", "a backend that is not there", "modelyard.backends:NoSuch"),
            "its backend reference resolves",
        ),
        (
            ArtifactKind("dotted", "a reference without a colon", "modelyard.backends.load"),
            "its backend is a 'module:attribute' reference",
        ),
        (
            ArtifactKind(
                "labels",
                "a loader that is no function",
                "modelyard.backends:TorchBackend",
                "modelyard.registry.run:LABELS",
            ),
            "its loader reference names a callable",
        ),
        (ArtifactKind("mute", "", "modelyard.backends:TorchBackend"), "a one-line summary"),
    ],
)
def test_a_broken_artifact_kind_fails_naming_the_clause(kind: ArtifactKind, clause: str) -> None:
    with pytest.raises(AssertionError, match=rf"artifact kind '{kind.name}' breaks .*{clause}"):
        check_artifact_kind(kind)


def test_an_artifact_of_a_kind_missing_from_the_table_fails(artifacts: dict[str, Path]) -> None:
    kind = ArtifactKind("unlisted", "never added to the table", "modelyard.backends:TorchBackend")
    with pytest.raises(AssertionError, match="'unlisted' breaks .*in the table of kinds"):
        check_artifact_kind(kind, artifacts["classifier"])


def test_an_artifact_of_another_kind_fails(artifacts: dict[str, Path]) -> None:
    with pytest.raises(AssertionError, match="manifest names this kind.*onnx-classifier"):
        check_artifact_kind("classifier", artifacts["onnx-classifier"])


def test_a_kind_whose_backend_breaks_its_contract_fails(
    artifacts: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind = ArtifactKind(
        "hash-classifier", "served without a model", "tests.testing.test_backend_checks:serve_hash"
    )
    monkeypatch.setitem(ARTIFACT_KINDS, kind.name, kind)
    copy = shutil.copytree(artifacts["onnx-classifier"], tmp_path / "hash")
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    (copy / "manifest.json").write_text(json.dumps({**manifest, "kind": kind.name}))
    with pytest.raises(AssertionError, match="backend 'hash' breaks .*truncated"):
        check_artifact_kind(kind, copy)


def serve_hash(path: Path) -> NeverTruncates:
    """Return the backend of the test kind `hash-classifier`: it never flags truncation."""
    return NeverTruncates()
