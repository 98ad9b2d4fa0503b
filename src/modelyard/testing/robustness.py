"""The contract of robustness noises (`modelyard.evaluation.NOISES`)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from modelyard.evaluation.robustness import NOISES, Noise
from modelyard.testing.contract import Contract

TEXTS = (
    "The parcel arrived late, again!",
    "I was charged twice for one order.",
    "please reset my password",
)


def check_noise(noise: Noise | str, texts: Sequence[str] = TEXTS) -> None:
    """Check a noise function `(text, rng, rate) -> text` on `texts`.

    It returns strings; the same seed gives the same noisy texts, and its randomness comes
    only from the generator it is given; at a vanishing rate texts stay as they are; at
    rate 1 some text changes. Returns None; raises AssertionError naming the broken clause.
    """
    name = noise if isinstance(noise, str) else getattr(noise, "__name__", "noise")
    fn = NOISES[noise] if isinstance(noise, str) else noise
    c = Contract("robustness noise", name)
    for rate in (1e-12, 0.3, 1.0):
        random.seed(1)
        first = [fn(t, random.Random(7), rate) for t in texts]
        random.seed(2)  # a noise drawing from the global generator now differs
        second = [fn(t, random.Random(7), rate) for t in texts]
        c.require(all(isinstance(t, str) for t in first), "returns a string")
        c.require(
            first == second,
            "the same seed gives the same text (randomness only from the given rng)",
            f"rate {rate}: {first} then {second}",
        )
        if rate < 1e-9:
            c.require(first == list(texts), "a vanishing rate leaves texts alone", str(first))
        if rate == 1.0:
            c.require(first != list(texts), "rate 1 changes the texts", str(first))
