"""The causal objective's training loss: every labelled token weighs the same whichever batch
it lands in (a per-batch mean would weigh the tokens of a sparse batch more)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from modelyard.generation.objective import CausalObjective, causal_nll
from modelyard.generation.packing import IGNORE, Example, LMData, collate_rows


def _row(length: int, labelled: int, seed: int) -> list[Example]:
    ids = [(seed * 7 + i) % 50 + 3 for i in range(length)]
    labels = [IGNORE] * (length - labelled) + ids[length - labelled :]
    return [Example(ids, labels)]


@pytest.fixture(scope="module")
def model(tiny_llama: Path) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(tiny_llama), use_safetensors=True).eval()


def test_each_labelled_token_weighs_the_same_in_any_batch(model: torch.nn.Module) -> None:
    # a row with 2 labelled tokens and one with 12: as a per-batch mean, a token of the first
    # row alone would weigh 6 times one of the second alone
    data = LMData([_row(16, 2, 0), _row(16, 12, 1)])
    objective = CausalObjective(pad_id=0, batch_size=2)
    cpu = torch.device("cpu")
    with torch.no_grad():
        alone = [objective.loss(model, data, np.array([i]), cpu, None) for i in (0, 1)]
        together = objective.loss(model, data, np.array([0, 1]), cpu, None)
        nll = [causal_nll(model, collate_rows(data.rows[i : i + 1], 0))[0] for i in (0, 1)]
    assert data.loss_tokens_per_row() == pytest.approx(7.0)  # (2 + 12) / 2
    assert torch.allclose(alone[0] + alone[1], 2 * together, rtol=1e-4)
    assert torch.allclose(alone[0], nll[0] / 7.0, rtol=1e-4)


def test_a_batch_without_labelled_tokens_gives_zero(model: torch.nn.Module) -> None:
    data = LMData([_row(8, 0, 0), _row(8, 4, 1)])
    loss = CausalObjective(0, 2).loss(model, data, np.array([0]), torch.device("cpu"), None)
    assert float(loss) == 0.0
