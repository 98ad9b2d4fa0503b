"""Contract checks for plug-in authors, in the spirit of scikit-learn's estimator checks.

Every extension point has one check that takes the plug-in (or its registered name) and what
it needs (a tiny run, an artifact, examples) and raises AssertionError naming the contract
clause it breaks::

    from modelyard.testing import check_strategy, parametrize_with_checks

    check_strategy(my_strategy)                 # a plug-in, before it is registered

    @parametrize_with_checks("query-strategy")  # every registered entry
    def test_strategies(entry, check):
        check()

See docs/plugins.md for each extension point and what its check needs.
"""

from __future__ import annotations

from modelyard.testing.backend_checks import check_artifact_kind, check_backend, check_run_loader
from modelyard.testing.compression import check_compression_method
from modelyard.testing.curation import check_strategy, query_context
from modelyard.testing.data import check_pii_detector
from modelyard.testing.explainers import check_explainer
from modelyard.testing.methods import check_method, check_method_spec
from modelyard.testing.models import check_backbone
from modelyard.testing.parametrize import (
    EXTENSION_POINTS,
    BoundCheck,
    ExtensionPoint,
    checks_for,
    parametrize_with_checks,
)
from modelyard.testing.privacy import check_random_source
from modelyard.testing.robustness import check_noise

__all__ = [
    "EXTENSION_POINTS",
    "BoundCheck",
    "ExtensionPoint",
    "check_artifact_kind",
    "check_backbone",
    "check_backend",
    "check_compression_method",
    "check_explainer",
    "check_method",
    "check_method_spec",
    "check_noise",
    "check_pii_detector",
    "check_random_source",
    "check_run_loader",
    "check_strategy",
    "checks_for",
    "parametrize_with_checks",
    "query_context",
]
