"""Zero-shot: label descriptions, cosine similarity, a servable embedding-classifier artifact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModel

import modelyard
from modelyard.api import zeroshot
from modelyard.backends import load_backend
from modelyard.errors import ArtifactError, DataError
from modelyard.methods import build_zeroshot
from modelyard.methods.zeroshot import read_label_descriptions
from modelyard.models import load_tokenizer
from tests.conftest import make_rows, write_csv

DESCRIPTIONS = {
    "billing": ["invoice refund payment", "charged twice on my card"],
    "shipping": "parcel delivery courier tracking",
    "account": ["password login email"],
}


@pytest.fixture()
def labels_file(tmp_path: Path) -> Path:
    path = tmp_path / "labels.yaml"
    path.write_text(yaml.safe_dump(DESCRIPTIONS, sort_keys=False))
    return path


def _reference(backbone: Path, texts: list[str]) -> list[str]:
    """Predict with a plain BertModel: mean-pooled unit embeddings, nearest label centroid."""
    tok, enc = load_tokenizer(backbone), AutoModel.from_pretrained(str(backbone)).eval()

    def embed(items: list[str]) -> torch.Tensor:
        batch = tok(items, padding=True, return_tensors="pt")
        with torch.no_grad():
            hidden = enc(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)

    centroids = []
    for value in DESCRIPTIONS.values():
        centroids.append(embed([value] if isinstance(value, str) else value).mean(0))
    scores = embed(texts) @ torch.nn.functional.normalize(torch.stack(centroids), dim=-1).T
    return [list(DESCRIPTIONS)[i] for i in scores.argmax(1).tolist()]


def test_zeroshot_predicts_the_nearest_description(
    labels_file: Path, tiny_backbone: Path, tmp_path: Path
) -> None:
    run = build_zeroshot(labels_file, tmp_path / "zs", backbone=str(tiny_backbone), max_length=32)
    texts = [text for text, _ in make_rows(12, seed=4)]
    predicted = [p["label"] for p in modelyard.predict(run, texts)]
    assert predicted == _reference(tiny_backbone, texts)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["kind"] == "embedding-classifier" and manifest["method"] == "zeroshot"
    backend = load_backend(run)
    probs, _ = backend.predict_proba(texts[:3])
    assert probs.shape == (3, 3) and backend.labels == list(DESCRIPTIONS)


def test_zeroshot_writes_the_evaluation_report(
    labels_file: Path, tiny_backbone: Path, tmp_path: Path
) -> None:
    data = write_csv(tmp_path / "test.csv", make_rows(30, seed=2))
    metrics = zeroshot(labels_file, data, tmp_path / "zs", backbone=str(tiny_backbone))
    report = Path(metrics["report_dir"])
    assert metrics["n"] == 30 and 0 <= metrics["accuracy"] <= 1
    assert {"metrics.json", "report.md", "confusion.png"} <= {p.name for p in report.iterdir()}
    with pytest.raises(ArtifactError, match="already exists"):
        zeroshot(labels_file, data, tmp_path / "zs", backbone=str(tiny_backbone))


def test_data_labels_missing_from_the_descriptions_are_named(
    tiny_backbone: Path, tmp_path: Path
) -> None:
    labels = tmp_path / "two.yaml"
    labels.write_text(yaml.safe_dump({"billing": "invoice", "shipping": "parcel"}))
    data = write_csv(tmp_path / "test.csv", make_rows(9))
    with pytest.raises(DataError, match="account"):
        zeroshot(labels, data, tmp_path / "zs", backbone=str(tiny_backbone))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("- a\n- b\n", "mapping of at least 2 labels"),
        ("only: one label\n", "mapping of at least 2 labels"),
        ("a: []\nb: fine\n", "label 'a' needs a description"),
        ("a: '  '\nb: fine\n", "label 'a' needs a description"),
        ("a: [1, 2]\nb: fine\n", "label 'a' needs a description"),
        ("a: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_label_files_are_clear_errors(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "labels.yaml"
    path.write_text(content)
    with pytest.raises(DataError, match=expected):
        read_label_descriptions(path)


def test_missing_label_file_and_bad_temperature(tmp_path: Path, labels_file: Path) -> None:
    with pytest.raises(DataError, match="label file not found"):
        read_label_descriptions(tmp_path / "nope.yaml")
    with pytest.raises(DataError, match="temperature must be above 0"):
        build_zeroshot(labels_file, tmp_path / "zs", temperature=0)
