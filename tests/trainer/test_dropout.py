"""FastDropout draws inverted dropout from integer bits; fast_dropout swaps it in and out."""

from __future__ import annotations

import pytest
import torch

from modelyard.trainer.dropout import FastDropout, fast_dropout


def test_training_zeroes_about_p_and_scales_the_rest_to_keep_the_mean() -> None:
    torch.manual_seed(0)
    drop = FastDropout(0.1).train()
    x = torch.ones(400_000)
    y = drop(x)
    zeroed = float((y == 0).float().mean())
    # the binomial sd of the share at n=400,000 is 0.0005: 6 sd either side
    assert abs(zeroed - 0.1) < 0.003
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / (1 - drop.rate)))
    assert abs(drop.rate - 0.1) < 2**-15 and abs(float(y.mean()) - 1.0) < 0.005


def test_each_element_is_dropped_independently_of_its_neighbour() -> None:
    # two 15-bit draws share one 32-bit draw: their drops must still be independent
    torch.manual_seed(1)
    y = FastDropout(0.5).train()(torch.ones(200_000)).view(-1, 2) == 0
    both = float((y[:, 0] & y[:, 1]).float().mean())
    assert abs(both - 0.25) < 0.01


def test_gradient_is_the_same_mask_and_scale() -> None:
    torch.manual_seed(2)
    x = torch.randn(4, 7, 9, requires_grad=True)
    drop = FastDropout(0.3).train()
    y = drop(x)
    y.sum().backward()
    assert x.grad is not None
    expected = (y != 0).float() / (1 - drop.rate)
    assert torch.allclose(x.grad, expected)


def test_eval_mode_and_zero_p_return_the_input_and_one_zeroes_everything() -> None:
    x = torch.randn(3, 5)
    assert FastDropout(0.1).eval()(x) is x
    assert FastDropout(0.0).train()(x) is x
    assert torch.count_nonzero(FastDropout(1.0).train()(x)) == 0
    with pytest.raises(ValueError, match="dropout probability"):
        FastDropout(1.5)


def test_the_same_seed_draws_the_same_mask() -> None:
    drop = FastDropout(0.2).train()
    x = torch.ones(5, 33)  # an odd element count: half a draw is left over
    torch.manual_seed(7)
    a = drop(x)
    torch.manual_seed(7)
    assert torch.equal(a, drop(x))


def test_bf16_input_stays_bf16() -> None:
    y = FastDropout(0.1).train()(torch.ones(8, 16, dtype=torch.bfloat16))
    assert y.dtype == torch.bfloat16


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.25))
        self.head = torch.nn.Dropout(0.5)


def test_fast_dropout_swaps_every_dropout_and_puts_the_originals_back() -> None:
    net = _Net().train()
    originals = [net.body[1], net.head]
    with fast_dropout(net) as swapped:
        assert swapped == 2
        assert isinstance(net.body[1], FastDropout) and net.body[1].p == 0.25
        assert isinstance(net.head, FastDropout) and net.head.p == 0.5
        net.eval()  # a dev evaluation inside training switches modes
    assert [net.body[1], net.head] == originals
    assert not net.head.training  # the mode set inside carries over
    assert set(net.state_dict()) == {"body.0.weight", "body.0.bias"}


def test_fast_dropout_restores_the_originals_when_the_body_fails() -> None:
    net = _Net()
    with pytest.raises(RuntimeError), fast_dropout(net):
        raise RuntimeError("training failed")
    assert type(net.head) is torch.nn.Dropout and type(net.body[1]) is torch.nn.Dropout
