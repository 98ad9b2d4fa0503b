"""Contracts of inference backends, run loaders and artifact kinds (`modelyard.registry.kinds`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelyard.backends import Backend, load_backend
from modelyard.errors import ArtifactError
from modelyard.inference import predict_proba
from modelyard.registry.kinds import ArtifactKind, artifact_kind, artifact_kinds, resolve
from modelyard.registry.manifest import read_manifest, verify_manifest
from modelyard.registry.run import LoadedRun, load_run
from modelyard.testing.contract import Contract

# short, everyday texts: none comes near any sensible max_length
TEXTS = (
    "the parcel arrived late again",
    "I was charged twice for one order",
    "please reset my password",
    "ok",
)
# a text that is cut at max_length only when the backend has at least this many positions
_SHORT_ENOUGH = 8


def check_backend(
    backend: Any,
    texts: Sequence[str] | None = None,
    *,
    atol: float = 1e-5,
    sum_atol: float = 1e-3,
    batch_atol: float | None = None,
) -> None:
    """Check that `backend` keeps the `modelyard.backends.Backend` contract.

    It has a name, distinct string labels, a positive max_length and a path; `predict_proba`
    returns an (n, len(labels)) array of probabilities whose rows sum to 1 (within
    `sum_atol`) and n boolean truncation flags, leaves its input list alone, is
    deterministic (within `atol`), gives a text the same probabilities alone as in a batch
    (within `batch_atol`, default `atol`: dynamic int8 quantization scales activations
    by the whole batch, so its answers move a little with the batch), handles an empty list, and flags a text longer than max_length as truncated
    (and a short one not). Returns None; raises AssertionError naming the broken clause.
    """
    c = Contract("backend", str(getattr(backend, "name", type(backend).__name__)))
    labels = _check_attributes(c, backend)
    batch = list(texts or TEXTS)
    sent = list(batch)
    probs, _ = c.probabilities(backend.predict_proba(batch), len(batch), labels, sum_atol)
    c.require(batch == sent, "predict_proba leaves the list it is given unchanged")
    again, _ = c.probabilities(backend.predict_proba(list(batch)), len(batch), labels, sum_atol)
    c.require(
        np.allclose(again, probs, atol=atol),
        "predictions are deterministic",
        f"largest difference between two calls {np.abs(again - probs).max():.3g}",
    )
    batch_atol = atol if batch_atol is None else batch_atol
    _check_batch_independence(c, backend, batch, probs, labels, batch_atol, sum_atol)
    _check_edges(c, backend, labels, sum_atol)


def _check_attributes(c: Contract, backend: Any) -> list[str]:
    for attribute in ("name", "labels", "max_length", "path", "predict_proba"):
        c.require(hasattr(backend, attribute), f"has the attribute '{attribute}'")
    c.require(isinstance(backend.name, str) and backend.name, "name is a non-empty string")
    labels = list(backend.labels)
    c.require(
        labels and all(isinstance(x, str) for x in labels) and len(set(labels)) == len(labels),
        "labels are distinct strings",
        f"got {labels!r}",
    )
    c.require(
        isinstance(backend.max_length, int) and backend.max_length > 0,
        "max_length is a positive int",
        f"got {backend.max_length!r}",
    )
    c.require(isinstance(backend.path, str | Path), "path is the artifact's path")
    return labels


def _check_batch_independence(
    c: Contract,
    backend: Any,
    batch: list[str],
    probs: np.ndarray,
    labels: list[str],
    atol: float,
    sum_atol: float,
) -> None:
    # the server batches requests of different clients: a text's answer must not depend on them
    for i, text in enumerate(batch):
        alone, _ = c.probabilities(backend.predict_proba([text]), 1, labels, sum_atol)
        c.require(
            np.allclose(alone[0], probs[i], atol=atol),
            "a text's probabilities do not depend on the batch it is in",
            f"{text!r}: alone {np.round(alone[0], 6).tolist()}, "
            f"in a batch {np.round(probs[i], 6).tolist()} (atol {atol})",
        )


def _check_edges(c: Contract, backend: Any, labels: list[str], sum_atol: float) -> None:
    empty, flags = c.probabilities(backend.predict_proba([]), 0, labels, sum_atol)
    c.require(empty.shape == (0, len(labels)) and not flags, "an empty list gives empty results")
    long_text = " ".join(["word"] * (4 * backend.max_length + 8))
    _, cut = c.probabilities(backend.predict_proba([long_text]), 1, labels, sum_atol)
    c.require(
        cut == [True],
        "a text longer than max_length is flagged as truncated",
        f"{4 * backend.max_length + 8} words, max_length {backend.max_length}, flags {cut}",
    )
    if backend.max_length >= _SHORT_ENOUGH:
        _, cut = c.probabilities(backend.predict_proba(["ok"]), 1, labels, sum_atol)
        c.require(cut == [False], "a text shorter than max_length is not flagged as truncated")


def check_run_loader(
    loader: Callable[[Path, dict[str, Any], str], LoadedRun] | str,
    artifact: str | Path,
    texts: Sequence[str] | None = None,
) -> LoadedRun:
    """Check that `loader` (a callable, or a "module:function" reference) loads `artifact`
    as a PyTorch run: a LoadedRun at that path whose model is a torch module in eval mode,
    with the artifact's labels, a positive max_length, and predictions that are
    probabilities. Returns the LoadedRun; raises AssertionError naming the broken clause.
    """
    name = loader if isinstance(loader, str) else getattr(loader, "__name__", repr(loader))
    c = Contract("run loader", name)
    function = resolve(loader) if isinstance(loader, str) else loader
    c.require(callable(function), "is callable", f"got {type(function).__name__}")
    root = Path(artifact)
    run = function(root, verify_manifest(root), "cpu")
    c.require(isinstance(run, LoadedRun), "returns a LoadedRun", f"got {type(run).__name__}")
    c.require(Path(run.path) == root, "the run's path is the artifact", f"got {run.path}")
    c.require(isinstance(run.model, torch.nn.Module), "the model is a torch.nn.Module")
    c.require(not run.model.training, "the model is in eval mode")
    labels_file = root / "labels.json"
    if labels_file.is_file():
        expected = json.loads(labels_file.read_text(encoding="utf-8"))
        c.require(run.labels == expected, "labels are those of labels.json", f"got {run.labels}")
    c.require(
        isinstance(run.max_length, int) and run.max_length > 0, "max_length is a positive int"
    )
    batch = list(texts or TEXTS)
    preds = predict_proba(run, batch)
    c.probabilities((preds.probs, preds.truncated), len(batch), run.labels)
    return run


def check_artifact_kind(
    kind: ArtifactKind | str,
    artifact: str | Path | None = None,
    texts: Sequence[str] | None = None,
    *,
    atol: float = 1e-5,
    batch_atol: float | None = None,
) -> Backend | None:
    """Check an artifact kind: its summary, and that its backend and loader references
    resolve to callables.

    Given an `artifact` of the kind, also: the kind is in the table `load_backend` reads
    (built in, or added by an entry point), the artifact's manifest names it, `load_backend`
    serves it under the backend contract (`check_backend` with `atol` and `batch_atol`), and
    `load_run` loads it as a PyTorch run predicting what the backend does (within `atol`)
    when the kind loads as one, and refuses it with ArtifactError when it does not.
    Returns the artifact's backend (None without an artifact); raises AssertionError naming
    the broken clause.
    """
    spec = artifact_kind(kind) if isinstance(kind, str) else kind
    c = Contract("artifact kind", spec.name)
    c.require(spec.name and spec.summary, "has a name and a one-line summary")
    for column, reference in (("backend", spec.backend), ("loader", spec.loader)):
        if reference is not None:
            _check_reference(c, column, reference)
    if artifact is None:
        return None
    c.require(
        artifact_kinds().get(spec.name) == spec,
        "load_backend finds it in the table of kinds (built in, or by entry point)",
        f"the table holds {artifact_kinds().get(spec.name)}",
    )
    root = Path(artifact)
    found = read_manifest(root).get("kind", "classifier")
    c.require(found == spec.name, "the artifact's manifest names this kind", f"it names {found}")
    backend = load_backend(root)
    check_backend(backend, texts, atol=atol, batch_atol=batch_atol)
    batch = list(texts or TEXTS)
    if not spec.loads_as_torch_run:
        try:
            load_run(root)
        except ArtifactError:
            return backend
        raise c.fail("load_run refuses a kind that is not a PyTorch run, with ArtifactError")
    run = check_run_loader(spec.loader, root, batch) if spec.loader else load_run(root)
    direct = predict_proba(run, batch).probs
    served, _ = backend.predict_proba(batch)
    c.require(
        np.allclose(direct, served, atol=atol),
        "load_run and load_backend predict the same",
        f"largest difference {np.abs(direct - served).max():.3g}",
    )
    return backend


def _check_reference(c: Contract, column: str, reference: str) -> None:
    c.require(
        reference.count(":") == 1,
        f"its {column} is a 'module:attribute' reference",
        f"got {reference!r}",
    )
    try:
        target = resolve(reference)
    except (ImportError, AttributeError) as exc:
        raise c.fail(f"its {column} reference resolves", f"{reference}: {exc}") from None
    c.require(callable(target), f"its {column} reference names a callable", reference)
