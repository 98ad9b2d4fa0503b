"""Robustness evaluation: accuracy under seeded character- and word-level noise, next to clean.

Each noise is a function (text, rng, rate) -> text; the same seed gives the same noisy
texts, so runs (and artifacts of any kind) can be compared on identical inputs.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from typing import Any

import numpy as np

from modelyard.evaluation.classifier import Classifier, predict_labelled
from modelyard.models.encoding import LabelledTexts

Noise = Callable[[str, random.Random, float], str]
_KEYBOARD = "qwertyuiopasdfghjklzxcvbnm"
_PUNCT = ".,!?;:'\""


def typos(text: str, rng: random.Random, rate: float) -> str:
    """Return `text` with each letter, at probability `rate`, swapped, dropped, doubled or replaced."""
    chars, out, i = list(text), [], 0
    while i < len(chars):
        c = chars[i]
        if not c.isalpha() or rng.random() >= rate:
            out.append(c)
        else:
            action = rng.randrange(4)
            if action == 0 and i + 1 < len(chars):
                out += [chars[i + 1], c]
                i += 1
            # action 1 drops the letter
            elif action == 2:
                out += [c, c]
            elif action == 3:
                out.append(rng.choice(_KEYBOARD))
        i += 1
    return "".join(out)


def case(text: str, rng: random.Random, rate: float) -> str:
    """Return `text` with each letter's case flipped at probability `rate`."""
    return "".join(c.swapcase() if c.isalpha() and rng.random() < rate else c for c in text)


def punctuation(text: str, rng: random.Random, rate: float) -> str:
    """Return `text` with punctuation marks dropped, and new ones put after words, at probability `rate`."""
    kept = "".join(c for c in text if c not in string.punctuation or rng.random() >= rate)
    words = kept.split(" ")
    return " ".join(w + rng.choice(_PUNCT) if w and rng.random() < rate else w for w in words)


def word_deletion(text: str, rng: random.Random, rate: float) -> str:
    """Return `text` with each word dropped at probability `rate` (one word always stays)."""
    words = text.split()
    kept = [w for w in words if rng.random() >= rate]
    return " ".join(kept or words[:1])


def word_swap(text: str, rng: random.Random, rate: float) -> str:
    """Return `text` with neighbouring words swapped, each position at probability `rate`."""
    words, i = text.split(), 0
    while i + 1 < len(words):
        if rng.random() < rate:
            words[i], words[i + 1] = words[i + 1], words[i]
            i += 1
        i += 1
    return " ".join(words)


NOISES: dict[str, Noise] = {
    "typos": typos,
    "case": case,
    "punctuation": punctuation,
    "word_deletion": word_deletion,
    "word_swap": word_swap,
}


def perturb(texts: list[str], noise: str, rate: float, seed: int) -> list[str]:
    """Return `texts` with `noise` applied at `rate`; the same seed gives the same result."""
    rng = random.Random(f"{seed}:{noise}")
    return [NOISES[noise](text, rng, rate) for text in texts]


def _accuracy(probs: np.ndarray, data: LabelledTexts) -> float:
    return float((probs.argmax(axis=1) == np.asarray(data.labels)).mean())


def robustness_metrics(
    classifier: Classifier,
    data: LabelledTexts,
    seed: int = 0,
    rate: float = 0.1,
    clean: np.ndarray | None = None,
) -> dict[str, Any]:
    """Return clean accuracy and, per noise, accuracy and its drop from clean, on `data`.

    `classifier` is any `Classifier` (an inference backend); noise changes the first texts
    only. `clean`, the probabilities on the unchanged texts when already predicted, saves a
    pass. Raises ValueError when `rate` is not in (0, 1].
    """
    if not 0 < rate <= 1:
        raise ValueError(f"noise rate must be in (0, 1], got {rate}")
    texts = list(data.texts)
    if clean is None:
        clean = predict_labelled(classifier, texts, data.pairs)[0]
    clean_accuracy = _accuracy(clean, data)
    result: dict[str, Any] = {
        "seed": seed,
        "rate": rate,
        "clean_accuracy": clean_accuracy,
        "noise": {},
    }
    for name in NOISES:
        noisy = predict_labelled(classifier, perturb(texts, name, rate, seed), data.pairs)[0]
        acc = _accuracy(noisy, data)
        result["noise"][name] = {"accuracy": acc, "drop": clean_accuracy - acc}
    result["mean_noisy_accuracy"] = float(
        np.mean([v["accuracy"] for v in result["noise"].values()])
    )
    return result


def robustness_markdown(report: dict[str, Any], title: str) -> str:
    """Return the robustness figures as a markdown table."""
    lines = [
        f"# Robustness: {title}",
        "",
        f"Seed {report['seed']}, noise rate {report['rate']} (per character or word).",
        "",
        "| input | accuracy | drop from clean |",
        "|---|---|---|",
        f"| clean | {report['clean_accuracy']:.4f} | |",
    ]
    for name, value in report["noise"].items():
        lines.append(f"| {name} | {value['accuracy']:.4f} | {value['drop']:+.4f} |")
    return "\n".join(lines) + "\n"
