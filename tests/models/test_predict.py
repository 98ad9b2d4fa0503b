"""Torch forward passes in the caller's order, cut where padding costs more than a call."""

from __future__ import annotations

import numpy as np
import torch
from transformers import BertConfig, BertForSequenceClassification

from modelyard.models.encoding import Encoded
from modelyard.models.predict import predict_logits


def _model() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
    )
    return BertForSequenceClassification(config).eval()


def _data(lengths: list[int]) -> Encoded:
    rng = np.random.default_rng(0)
    ids = [[1, *rng.integers(5, 50, size=n - 2).tolist(), 2] for n in lengths]
    return Encoded(ids, None, [0] * len(ids), 0)


def test_mixed_lengths_run_as_several_calls_with_each_text_alone_logits() -> None:
    model, data = _model(), _data([4, 60, 5, 58, 3, 61, 6, 59])
    widths: list[int] = []
    hook = model.bert.embeddings.word_embeddings.register_forward_hook(
        lambda _m, inputs, _o: widths.append(int(inputs[0].shape[1]))
    )
    logits = predict_logits(model, data, 0, torch.device("cpu"), None, batch_size=8)
    hook.remove()
    # the four long texts and the four short ones go in separate calls, not one of width 61
    assert sorted(widths) == [6, 61]
    with torch.inference_mode():
        for i, row in enumerate(data.input_ids):
            alone = model(input_ids=torch.tensor([row])).logits[0].numpy()
            np.testing.assert_allclose(logits[i], alone, atol=1e-5)


def test_similar_lengths_stay_one_call() -> None:
    model, data = _model(), _data([20, 21, 22, 20, 19])
    calls: list[int] = []
    hook = model.bert.embeddings.word_embeddings.register_forward_hook(lambda *_: calls.append(1))
    predict_logits(model, data, 0, torch.device("cpu"), None, batch_size=8)
    hook.remove()
    assert len(calls) == 1
