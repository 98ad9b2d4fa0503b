"""One contract over every registered training method (`modelyard.testing.check_method`):
train, save the kind its spec declares, reload, predict the same, serve."""

from __future__ import annotations

import pytest

from modelyard.testing import BoundCheck, parametrize_with_checks

# setfit's own procedure makes pairs of every example: few pairs keep it quick
OPTIONS = {"setfit": {"setfit": {"pairs_per_example": 2, "batch_size": 8}}}


pytestmark = pytest.mark.usefixtures("one_thread")


@parametrize_with_checks("training-method")
def test_method_keeps_its_contract(entry: str, check: BoundCheck, method_recipe: dict) -> None:
    check(method_recipe, options=OPTIONS.get(entry))
