"""Shared fixtures: a tiny BERT backbone built in code, and small labelled files."""

from __future__ import annotations

import csv
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

WORDS = {
    "billing": ["invoice", "charged", "refund", "payment", "card", "price", "bill", "twice"],
    "shipping": [
        "parcel",
        "delivery",
        "courier",
        "tracking",
        "arrived",
        "package",
        "shipped",
        "late",
    ],
    "account": ["password", "login", "email", "profile", "username", "locked", "reset", "sign"],
}
FILLER = [
    "my",
    "the",
    "is",
    "not",
    "please",
    "help",
    "with",
    "a",
    "i",
    "need",
    "why",
    "again",
    "today",
]


def make_rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Return n (text, label) rows whose label is given away by topic words, plus filler."""
    rng = random.Random(seed)
    labels = sorted(WORDS)
    rows = []
    for i in range(n):
        label = labels[i % len(labels)]
        words = rng.sample(WORDS[label], 2) + rng.sample(FILLER, rng.randint(1, 6))
        rng.shuffle(words)
        rows.append((" ".join(words) + f" {i}", label))
    return rows


def write_csv(
    path: Path, rows: list[tuple[str, str]], header: tuple[str, str] = ("text", "label")
) -> Path:
    """Write rows to a CSV file with a header; return the path."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def pytest_configure(config: pytest.Config) -> None:
    """Share the cores among pytest-xdist workers: torch's default of one thread per core in
    every worker would oversubscribe them, and tiny models gain nothing from a second thread."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if os.environ.get("PYTEST_XDIST_WORKER") and workers > 1:
        threads = max(1, torch.get_num_threads() // workers)
        torch.set_num_threads(threads)
        # the servers and CLIs the tests start inherit it: their OpenMP threads would
        # otherwise spin on the core the other worker is using
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Run torch on one thread in a module: tiny models on two shared cores only wait for a
    second thread (inference outside a recipe's `train.num_threads` uses every core)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT with hidden size 32 and a word-level vocabulary, saved as a model folder."""
    return build_tiny_backbone(tmp_path_factory.mktemp("tiny-bert"))


def build_tiny_backbone(folder: Path) -> Path:
    """Save the tiny BERT (and its tokenizer) of the `tiny_backbone` fixture into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += sorted({w for ws in WORDS.values() for w in ws} | set(FILLER))
    vocab += [str(i) for i in range(10)] + ["##" + str(i) for i in range(10)]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(
        vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True
    )
    tokenizer.save_pretrained(str(folder))
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(folder), safe_serialization=True)
    return folder


@pytest.fixture()
def labelled_csv(tmp_path: Path) -> Path:
    """A 120-row, 3-class CSV that a tiny model can learn."""
    return write_csv(tmp_path / "data.csv", make_rows(120))


@pytest.fixture()
def tiny_recipe(tmp_path: Path, tiny_backbone: Path, labelled_csv: Path) -> dict:
    """A recipe dict that trains the tiny backbone quickly, fp32, on one thread."""
    return {
        "run": {"name": "tiny", "output_dir": str(tmp_path / "runs"), "seed": 7},
        "data": {"path": str(labelled_csv)},
        "model": {"backbone": str(tiny_backbone), "max_length": 32},
        "train": {
            "epochs": 3,
            "batch_size": 8,
            "lr": 5e-3,
            "precision": "fp32",
            "checkpoint_every": 10,
            "num_threads": 1,
        },
        "evaluate": {"speed": True, "speed_samples": 8},
    }
