"""A tiny classifier whose decision depends on one known word, trained once per session.

The model is trained by a short loop here rather than `modelyard.train`, so these tests
exercise explanations only; the run directory is a real, manifest-verified artifact.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
import yaml

from modelyard.models import build_classifier, load_tokenizer
from modelyard.registry import LoadedRun, load_run
from modelyard.registry.manifest import write_manifest
from modelyard.registry.run import save_model_files
from tests.conftest import FILLER, WORDS, write_csv

KEY = "refund"
LABELS = ["no", "yes"]
OTHERS = sorted(({w for ws in WORDS.values() for w in ws} - {KEY}) | set(FILLER))


def key_rows(n: int, seed: int) -> list[tuple[str, str]]:
    """Return n texts of random words; the label is 'yes' exactly when KEY is among them."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words = rng.sample(OTHERS, rng.randint(4, 9))
        if i % 2 == 0:
            words.insert(rng.randint(0, len(words)), KEY)
        rows.append((" ".join(words), LABELS[1] if i % 2 == 0 else LABELS[0]))
    return rows


def _train(model: torch.nn.Module, tokenizer: object, rows: list[tuple[str, str]]) -> None:
    # a slow embedding table keeps word and position vectors of similar size, as in a
    # pretrained BERT; a word vector that outgrows the rest makes IG's path step-like
    table = model.get_input_embeddings().weight
    rest = [p for p in model.parameters() if p is not table]
    optimizer = torch.optim.AdamW([{"params": [table], "lr": 3e-4}, {"params": rest}], lr=3e-3)
    model.train()
    for epoch in range(6):
        random.Random(epoch).shuffle(rows)
        for start in range(0, len(rows), 16):
            chunk = rows[start : start + 16]
            batch = tokenizer([t for t, _ in chunk], padding=True, return_tensors="pt")  # type: ignore[operator]
            labels = torch.tensor([LABELS.index(y) for _, y in chunk])
            loss = model(**batch, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()


@pytest.fixture(scope="session")
def key_run_dir(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    """A verified run directory of the tiny backbone trained to decide by the presence of KEY."""
    run_dir = tmp_path_factory.mktemp("key-run")
    rows = key_rows(240, seed=1)
    data = write_csv(run_dir.parent / "key-data.csv", rows)
    torch.manual_seed(3)
    with torch.random.fork_rng(devices=[]):
        torch.set_num_threads(1)
        tokenizer = load_tokenizer(tiny_backbone)
        model = build_classifier(tiny_backbone, LABELS)
        _train(model, tokenizer, list(rows))
    save_model_files(run_dir, model, tokenizer, LABELS)
    recipe = {"data": {"path": str(data)}, "model": {"max_length": 32}}
    (run_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    write_manifest(run_dir)
    return run_dir


@pytest.fixture(scope="session")
def key_run(key_run_dir: Path) -> LoadedRun:
    """The key-word run, loaded once; the tests check first that it learned the rule."""
    return load_run(key_run_dir)
