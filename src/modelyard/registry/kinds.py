"""The table of artifact kinds: how each kind loads, in one place.

A run's manifest names its `kind`. This table maps each kind to the code that loads it as a
PyTorch run (`loader`) and to its inference backend (`backend`), as "module:attribute"
references imported on first use. Nothing registers itself by being imported; a plug-in
package adds its kinds through the `modelyard.artifact_kinds` entry-point group, each entry
point naming an `ArtifactKind`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from modelyard.errors import ArtifactError

CLASSIFIER = "classifier"
ENTRY_POINT_GROUP = "modelyard.artifact_kinds"
_TORCH_BACKEND = "modelyard.backends:TorchBackend"


@dataclass(frozen=True)
class ArtifactKind:
    """One kind of artifact: its name, what it is, and references to the code that loads it.

    `loader` ("module:function", None for the plain classifier and kinds that are not PyTorch
    runs) returns a `LoadedRun` from (run_dir, manifest, device); `backend` ("module:attribute")
    is called with the artifact's path and returns an inference `Backend`.
    """

    name: str
    summary: str
    backend: str
    loader: str | None = None

    @property
    def loads_as_torch_run(self) -> bool:
        """Return True when `load_run` loads this kind as a PyTorch model."""
        return self.name == CLASSIFIER or self.loader is not None


_BUILTIN = (
    ArtifactKind(
        CLASSIFIER, "a Hugging Face sequence classifier (full fine-tuning)", _TORCH_BACKEND
    ),
    ArtifactKind(
        "adapter-classifier",
        "a PEFT adapter on a base backbone whose weights' hash it records",
        _TORCH_BACKEND,
        "modelyard.methods.adapters:load_adapter_run",
    ),
    ArtifactKind(
        "embedding-classifier",
        "a mean-pooled sentence encoder with a linear head",
        _TORCH_BACKEND,
        "modelyard.methods.embedding:load_embedding_run",
    ),
    ArtifactKind(
        "onnx-classifier",
        "an ONNX Runtime graph, fp32 or quantized",
        "modelyard.compress.onnx_backend:OnnxBackend",
    ),
    ArtifactKind(
        "torch-compressed-classifier",
        "a compressed PyTorch classifier (int8, pruned, fp16/bf16)",
        "modelyard.compress.torch_variant:TorchVariantBackend",
    ),
)

ARTIFACT_KINDS: dict[str, ArtifactKind] = {k.name: k for k in _BUILTIN}
_plugins_loaded = False


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        kind = ep.load()
        if not isinstance(kind, ArtifactKind):
            raise ArtifactError(
                f"entry point {ep.value} of {ENTRY_POINT_GROUP} is not an ArtifactKind"
            )
        ARTIFACT_KINDS.setdefault(kind.name, kind)


def artifact_kind(name: str) -> ArtifactKind:
    """Return the kind called `name`; raise ArtifactError listing the known kinds if unknown."""
    if name not in ARTIFACT_KINDS:
        _load_plugins()
    if name not in ARTIFACT_KINDS:
        raise ArtifactError(
            f"unknown artifact kind '{name}'; known kinds: {', '.join(sorted(ARTIFACT_KINDS))}"
        )
    return ARTIFACT_KINDS[name]


def artifact_kinds() -> dict[str, ArtifactKind]:
    """Return every artifact kind by name: the built-in ones and those of installed plug-ins."""
    _load_plugins()
    return dict(ARTIFACT_KINDS)


def task_refusal(manifest: dict[str, Any]) -> str | None:
    """Return why an artifact of another task (token classification, language models) cannot
    go where classifiers go, naming its task; None for a classification artifact."""
    task = manifest.get("task")
    if not task or task == "classification":
        return None
    return (
        f"it is a {task} run (artifact kind '{manifest.get('kind')}'), and this works on "
        "classification runs only; see docs/tasks.md for what each task supports"
    )


def resolve(reference: str) -> Any:
    """Return the object a "module:attribute" reference names, importing its module."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)
