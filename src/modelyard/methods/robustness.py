"""Robustness evaluation: accuracy under seeded character- and word-level noise, next to clean.

Each noise is a function (text, rng, rate) -> text; the same seed gives the same noisy
texts, so runs can be compared on identical inputs.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.data import Split
from modelyard.fsutil import atomic_write_text
from modelyard.registry.run import LoadedRun

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


def _accuracy(run: LoadedRun, texts: list[str], split: Split) -> float:
    from modelyard.inference import predict_proba

    probs = predict_proba(run, texts, split.pairs).probs
    return float((probs.argmax(axis=1) == np.asarray(split.labels)).mean())


def robustness_metrics(
    run: LoadedRun, split: Split, seed: int = 0, rate: float = 0.1
) -> dict[str, Any]:
    """Return clean accuracy and, per noise, accuracy and its drop from clean, on `split`.

    Raises ValueError when `rate` is not in (0, 1].
    """
    if not 0 < rate <= 1:
        raise ValueError(f"noise rate must be in (0, 1], got {rate}")
    clean = _accuracy(run, split.texts, split)
    result: dict[str, Any] = {"seed": seed, "rate": rate, "clean_accuracy": clean, "noise": {}}
    for name in NOISES:
        acc = _accuracy(run, perturb(split.texts, name, rate, seed), split)
        result["noise"][name] = {"accuracy": acc, "drop": clean - acc}
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


def add_robustness(metrics: dict[str, Any], run: LoadedRun, split: Split, out: Path) -> None:
    """Put the robustness figures of `run` on `split` into `metrics` and write `out/robustness.md`."""
    report = robustness_metrics(run, split)
    metrics["robustness"] = report
    atomic_write_text(out / "robustness.md", robustness_markdown(report, run.path.name))
