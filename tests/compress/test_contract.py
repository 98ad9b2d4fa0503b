"""One contract over every registered compression method (`modelyard.testing
.check_compression_method`), on the tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.compress import COMPRESSION_METHODS, CompressContext
from modelyard.testing import BoundCheck, parametrize_with_checks
from tests.compress.conftest import texts

# the argument each method gets here; the tiny model has 2 layers of 2 heads
ARGS = {"distill": "1", "prune-heads": "0.5", "prune-ffn": "0.3", "prune": "0.5"}
# half precision rounds the probabilities a little; everything else reloads exactly
TOLERANCE = {"fp16": 1e-2, "bf16": 1e-2}
# the tiny parent is confident: every variant stays within a few thousandths of it here
# dynamic int8 scales activations by the whole batch: a text's answer moves a little with it
BATCH_TOLERANCE = {"int8-dynamic": 5e-3, "torch-int8": 5e-3}


pytestmark = pytest.mark.usefixtures("one_thread")


def test_every_method_is_covered() -> None:
    methods = set(COMPRESSION_METHODS.names())
    assert methods >= {"onnx", "int8-dynamic", "int8-static", "torch-int8", "fp16", "bf16"}
    assert methods >= {"prune", "prune-heads", "prune-ffn", "distill"}


@parametrize_with_checks("compression-method")
def test_method_keeps_its_contract(
    entry: str, check: BoundCheck, ctx: CompressContext, tmp_path: Path
) -> None:
    check(
        ctx,
        ARGS.get(entry),
        out=tmp_path / entry,
        texts=texts(),
        atol=TOLERANCE.get(entry, 1e-5),
        batch_atol=BATCH_TOLERANCE.get(entry),
        parent_atol=0.05,
    )
