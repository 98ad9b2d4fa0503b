"""Tagged sentences a tiny model can learn, built in the test (no public data)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

import modelyard
from modelyard.recipe import build_recipe

# entity words of the tiny BERT's vocabulary (tests/conftest.py), tagged by type
PEOPLE = ["password", "login", "email", "profile"]
PLACES = ["parcel", "courier", "package", "delivery"]
OTHER = ["my", "the", "is", "not", "please", "help", "with", "a", "i", "need", "why", "today"]


def tagged_rows(n: int, seed: int = 0, scheme: str = "BIO") -> list[dict[str, Any]]:
    """Return n sentences: filler words (O), a two-word PER, a one-word LOC and a number
    (NUM: several word pieces, so the alignment to pieces is exercised)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        tokens = rng.sample(OTHER, 3)
        tags = ["O"] * 3
        person = rng.sample(PEOPLE, 2)
        place = rng.choice(PLACES)
        number = str(rng.randint(10, 99))
        parts = [
            (person, ["B-PER", "I-PER"] if scheme == "BIO" else ["B-PER", "E-PER"]),
            ([place], ["B-LOC"] if scheme == "BIO" else ["S-LOC"]),
            ([number], ["B-NUM"] if scheme == "BIO" else ["S-NUM"]),
        ]
        rng.shuffle(parts)
        for words, labels in parts:
            at = rng.randint(0, len(tokens))
            tokens[at:at] = words
            tags[at:at] = labels
        rows.append({"tokens": tokens, "tags": tags, "id": i})
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write one JSON object a line; return the path."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_conll(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write CoNLL: a DOCSTART line, then one `token POS tag` line a word, blank between sentences."""
    lines = ["-DOCSTART- -X- O", ""]
    for row in rows:
        lines += [f"{t} NN {g}" for t, g in zip(row["tokens"], row["tags"], strict=True)] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture()
def tagged_jsonl(tmp_path: Path) -> Path:
    """A 120-sentence BIO-tagged JSONL file."""
    return write_jsonl(tmp_path / "ner.jsonl", tagged_rows(120))


@pytest.fixture()
def tagging_recipe(tmp_path: Path, tiny_backbone: Path, tagged_jsonl: Path) -> dict[str, Any]:
    """A token-classification recipe that trains the tiny backbone quickly, fp32, one thread."""
    return {
        "task": "token-classification",
        "run": {"name": "ner", "output_dir": str(tmp_path / "runs"), "seed": 3},
        "data": {"path": str(tagged_jsonl), "split": {"dev": 0.15, "test": 0.15}},
        "model": {"backbone": str(tiny_backbone), "max_length": 32},
        "train": {
            "epochs": 6,
            "batch_size": 8,
            "lr": 5e-3,
            "precision": "fp32",
            "checkpoint_every": None,
            "num_threads": 1,
        },
    }


@pytest.fixture(scope="package")
def full_run(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    """A full fine-tune of the tiny BERT on 160 tagged sentences."""
    return train_ner_run(tmp_path_factory.mktemp("ner-full"), tiny_backbone)


def train_ner_run(root: Path, tiny_backbone: Path) -> Path:
    """Train the tiny BERT on 160 tagged sentences under `root`; return the run folder."""
    data = write_jsonl(root / "ner.jsonl", tagged_rows(160))
    recipe = build_recipe(
        {
            "task": "token-classification",
            "run": {"name": "full", "output_dir": str(root / "runs"), "seed": 3},
            "data": {"path": str(data), "split": {"dev": 0.15, "test": 0.15}},
            "model": {"backbone": str(tiny_backbone), "max_length": 32},
            "train": {
                "epochs": 8,
                "batch_size": 8,
                "lr": 5e-3,
                "precision": "fp32",
                "checkpoint_every": None,
                "num_threads": 1,
            },
        },
        "recipe",
        [],
    )
    return modelyard.train(recipe, progress=False).run_dir
