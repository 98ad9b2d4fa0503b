"""Every extension point with its registered entries and its check, for sweeping in pytest."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelyard.compress import COMPRESSION_METHODS
from modelyard.curation.active import STRATEGIES
from modelyard.data.pii import DETECTORS
from modelyard.evaluation.robustness import NOISES
from modelyard.explainability.methods import EXPLAINERS
from modelyard.methods import TRAINING_METHODS
from modelyard.models.backbones import BACKBONES
from modelyard.plugins import Registry, require
from modelyard.recipe.methods import METHOD_SPECS
from modelyard.registry.kinds import artifact_kinds
from modelyard.testing.backend_checks import check_artifact_kind
from modelyard.testing.compression import check_compression_method
from modelyard.testing.curation import check_strategy
from modelyard.testing.data import check_pii_detector
from modelyard.testing.explainers import check_explainer
from modelyard.testing.methods import check_method, check_method_spec
from modelyard.testing.models import check_backbone
from modelyard.testing.robustness import check_noise


@dataclass(frozen=True)
class ExtensionPoint:
    """One extension point: where its plug-ins are registered, how to list them, their check.

    The check's first argument is an entry's registered name; the rest is what the check
    needs besides (see each check's docstring).
    """

    name: str
    table: str
    entries: Callable[[], list[str]]
    check: Callable[..., Any]


@dataclass(frozen=True)
class BoundCheck:
    """A check bound to one registered entry: call it with what the check needs besides."""

    point: str
    entry: str
    check: Callable[..., Any]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the check on the entry; return what it returns, raise AssertionError if broken."""
        return self.check(self.entry, *args, **kwargs)

    def __repr__(self) -> str:
        return f"{self.check.__name__}({self.entry!r})"


EXTENSION_POINTS: Registry[ExtensionPoint] = Registry("extension point")
for _point in (
    ExtensionPoint(
        "backbone", "modelyard.models.backbones.BACKBONES", BACKBONES.names, check_backbone
    ),
    ExtensionPoint(
        "artifact-kind",
        "modelyard.registry.kinds.ARTIFACT_KINDS (backends and run loaders)",
        lambda: sorted(artifact_kinds()),
        check_artifact_kind,
    ),
    ExtensionPoint(
        "training-method",
        "modelyard.methods.TRAINING_METHODS",
        TRAINING_METHODS.names,
        check_method,
    ),
    ExtensionPoint(
        "method-spec",
        "modelyard.recipe.methods.METHOD_SPECS",
        lambda: sorted(METHOD_SPECS),
        check_method_spec,
    ),
    ExtensionPoint(
        "compression-method",
        "modelyard.compress.COMPRESSION_METHODS",
        COMPRESSION_METHODS.names,
        check_compression_method,
    ),
    ExtensionPoint(
        "explainer", "modelyard.explainability.EXPLAINERS", EXPLAINERS.names, check_explainer
    ),
    ExtensionPoint(
        "query-strategy", "modelyard.curation.active.STRATEGIES", STRATEGIES.names, check_strategy
    ),
    ExtensionPoint(
        "pii-detector", "modelyard.data.pii.DETECTORS", DETECTORS.names, check_pii_detector
    ),
    ExtensionPoint(
        "robustness-noise",
        "modelyard.evaluation.NOISES",
        lambda: sorted(NOISES),
        check_noise,
    ),
):
    EXTENSION_POINTS.add(_point.name, _point)


def checks_for(point: str) -> list[tuple[str, BoundCheck]]:
    """Return (entry name, its bound check) for every entry registered at `point` now.

    Raises UnknownPluginError, listing the extension points, for an unknown `point`.
    """
    spec = EXTENSION_POINTS.get(point)
    return [(entry, BoundCheck(point, entry, spec.check)) for entry in spec.entries()]


def parametrize_with_checks(point: str) -> Any:
    """Return a pytest mark parametrizing a test over `(entry, check)`, one per registered entry.

    Use it on a test that takes `entry` and `check` and calls `check(...)` with what the
    extension point's check needs besides the entry; the test ids are the entry names.
    Raises UnknownPluginError for an unknown `point`, MissingExtraError without pytest.
    """
    pytest: Any = require("pytest", extra="dev")
    pairs = checks_for(point)
    return pytest.mark.parametrize(("entry", "check"), pairs, ids=[name for name, _ in pairs])
