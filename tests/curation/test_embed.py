"""Mean-pooled embeddings: unit length, input order kept whatever the batching, padding ignored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from modelyard.curation.embed import Embedder
from modelyard.errors import BackboneError
from modelyard.models.encoder import mean_pool
from tests.conftest import make_rows


def test_embeddings_are_unit_length_and_order_independent(tiny_backbone: Path) -> None:
    embedder = Embedder.from_backbone(tiny_backbone, max_length=32, precision="fp32")
    texts = [t for t, _ in make_rows(23)]
    one = embedder.encode(texts, batch_size=4)
    assert one.shape == (23, 32) and one.dtype == np.float32
    assert np.allclose(np.linalg.norm(one, axis=1), 1.0, atol=1e-5)
    alone = np.vstack([embedder.encode([t]) for t in texts[:5]])
    assert np.allclose(one[:5], alone, atol=1e-5)  # padding in a batch changes nothing
    assert embedder.encode([]).shape == (0, 32)


def test_mean_pool_ignores_padding() -> None:
    states = torch.tensor([[[1.0, 1.0], [3.0, 5.0], [100.0, 100.0]]])
    assert mean_pool(states, torch.tensor([[1, 1, 0]])).tolist() == [[2.0, 3.0]]


def test_unknown_backbone_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BackboneError, match="modelyard never downloads"):
        Embedder.from_backbone("someone/not-here")


@pytest.mark.integration
def test_real_backbone_embeddings_and_synonyms_make_sense() -> None:
    from modelyard.data.augment import SynonymSource
    from modelyard.models import resolve_backbone

    embedder = Embedder.from_backbone("minilm-l6", max_length=32)
    a, b, c = embedder.encode(
        ["I was charged twice", "refund the double payment", "where is my parcel"]
    )
    assert float(a @ b) > float(a @ c)
    source = SynonymSource.from_backbone(resolve_backbone("minilm-l6"))
    assert "horrible" in source("terrible") and "film" in source("movie")
