"""Every command of README's stage table, run as a user would (`python -m modelyard ...` in a
fresh folder, a terminal 80 columns wide), on the tiny model; the output is checked for
what a person needs to read, and for lines that fit 80 columns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import make_rows, write_csv

# every test runs the command line in processes of its own (minutes in all)
pytestmark = pytest.mark.slow

WIDTH = 80


@dataclass
class Done:
    code: int
    out: str
    err: str


@dataclass
class Workspace:
    root: Path
    backbone: Path
    recipe: Path
    run: str  # relative to root, as a user types it


def cli(ws_root: Path, *args: str, fits: bool = True) -> Done:
    """Run `modelyard ARGS` in `ws_root` at 80 columns; with `fits`, every line fits them."""
    env = {
        **os.environ,
        "COLUMNS": str(WIDTH),
        "LINES": "50",
        "MODELYARD_HOME": str(ws_root / "home"),
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    env.pop("FORCE_COLOR", None)
    done = subprocess.run(
        [sys.executable, "-m", "modelyard", *args],
        cwd=ws_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if fits:
        long = [line for line in done.stdout.splitlines() if len(line) > WIDTH]
        assert not long, f"lines wider than {WIDTH} columns in `modelyard {' '.join(args)}`: {long}"
    return Done(done.returncode, done.stdout, done.stderr)


def ok(ws_root: Path, *args: str, fits: bool = True) -> str:
    done = cli(ws_root, *args, fits=fits)
    assert done.code == 0, f"modelyard {' '.join(args)}\n{done.out}\n{done.err}"
    return done.out


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Workspace:
    """`modelyard init project` and `modelyard train` on it, with the tiny backbone."""
    root = tmp_path_factory.mktemp("readme")
    out = ok(root, "init", "project")
    assert "next: modelyard train project/recipe.yaml" in out
    recipe = root / "project" / "recipe.yaml"
    raw = yaml.safe_load(recipe.read_text())
    raw["model"] = {"backbone": str(tiny_backbone), "max_length": 32}
    raw["run"]["name"] = "tiny"
    raw["train"].update(epochs=2, batch_size=32, lr=5e-3, precision="fp32", num_threads=1)
    raw["evaluate"] = {"speed": False}
    recipe.write_text(yaml.safe_dump(raw))
    return Workspace(root, tiny_backbone, recipe, "project/runs/tiny")


@pytest.fixture(scope="module")
def trained(ws: Workspace) -> str:
    out = ok(ws.root, "train", "project/recipe.yaml", "--no-progress")
    return out


def test_train_says_what_it_read_and_what_to_try(trained: str) -> None:
    assert "data: " in trained and " rows, 4 classes (train " in trained
    assert "dev split: 10% of data.csv" in trained and "test split: 15% of data.csv" in trained
    assert "texts cut to max_length: " in trained
    assert "trained " in trained and " samples/s (fp32 on cpu)" in trained
    assert "run saved to project/runs/tiny" in trained
    assert 'try: modelyard predict project/runs/tiny "' in trained


def test_version_and_every_group_help_fit(ws: Workspace) -> None:
    assert ok(ws.root, "--version").startswith("modelyard ")
    for group in ("--help", "compress --help", "serve --help", "ui --help", "jobs --help"):
        out = ok(ws.root, *group.split())
        assert "Usage:" in out
    assert "--max-accuracy-drop" in ok(ws.root, "compress", "--help")
    assert "--price-per-cpu-hour" in ok(ws.root, "compress", "--help")


def test_predict_prints_the_top_labels_sorted(ws: Workspace, trained: str) -> None:
    out = ok(ws.root, "predict", ws.run, "I was charged twice for my order", "--top-k", "2")
    assert "probability" in out and "the 2 most probable labels; --top-k 0" in out
    record = json.loads(ok(ws.root, "predict", ws.run, "I was charged twice", "--json", fits=False))
    assert set(record) == {"predicted_label", "predicted_score", "truncated", "probabilities"}
    probs = list(record["probabilities"].values())
    assert probs == sorted(probs, reverse=True) and len(probs) == 4
    write_csv(ws.root / "in.csv", make_rows(6))
    assert "predictions written to preds.csv" in ok(
        ws.root, "predict", ws.run, "--input", "in.csv", "--output", "preds.csv"
    )
    header = (ws.root / "preds.csv").read_text().splitlines()[0]
    assert header.startswith("text,label,predicted_label,predicted_score,truncated,prob_")


def test_evaluate_with_robustness(ws: Workspace, trained: str) -> None:
    out = ok(ws.root, "evaluate", ws.run, "--data", "project/data.csv", "--robustness")
    assert "accuracy" in out and "report written to project/runs/tiny/evaluations/data" in out


def test_runs_list(ws: Workspace, trained: str) -> None:
    out = ok(ws.root, "runs", "list", "--runs", "project/runs")
    assert "tiny" in out and "classification" in out and "accuracy 0." in out
    for column in ("name", "task", "method", "metric", "date"):
        assert column in out


def test_explain_one_text_and_a_small_file(ws: Workspace, trained: str) -> None:
    out = ok(ws.root, "explain", ws.run, "I was charged twice", "--method", "occlusion")
    assert "occlusion ->" in out and "probabilities:" in out
    write_csv(ws.root / "few.csv", make_rows(2))
    out = ok(
        ws.root, "explain", ws.run, "--input", "few.csv", "--output", "explained",
        "--method", "occlusion",
    )  # fmt: skip
    said = " ".join(out.split())  # the note wraps at 80 columns
    assert "note: no top words" in said and "at least 2 texts per class" in said


def test_methods_and_data_tools(ws: Workspace) -> None:
    assert "lora" in ok(ws.root, "methods")
    (ws.root / "pii.csv").write_text("text,label\nmail me at ann@example.com,a\nfine,b\n")
    out = ok(ws.root, "data", "scan-pii", "pii.csv")
    assert "email" in out.lower()


def test_labelling_loop(ws: Workspace, trained: str) -> None:
    pool = ws.root / "pool.csv"
    pool.write_text("text,label\n" + "".join(f"please refund my card {i},\n" for i in range(12)))
    out = ok(
        ws.root, "label", "next", ws.run, "--pool", "pool.csv", "--output", "batch.csv",
        "--k", "3", "--strategy", "random",
    )  # fmt: skip
    assert "batch.csv" in out
    batch = (ws.root / "batch.csv").read_text().splitlines()
    head = batch[0].split(",")
    assert "predicted_label" in head and "predicted_score" in head


def test_registry_signing_and_api_keys(ws: Workspace, trained: str) -> None:
    assert "tiny" in ok(ws.root, "registry", "push", ws.run, "--name", "tiny")
    ok(ws.root, "registry", "alias", "tiny:1", "prod")
    assert "prod" in ok(ws.root, "registry", "list")
    assert "signing key" in ok(ws.root, "signing-keys", "create", "signing.key")
    assert "signed" in ok(ws.root, "registry", "sign", ws.run, "--key", "signing.key")
    assert "files match" in ok(
        ws.root, "registry", "verify", ws.run, "--trusted-key", "signing.pub"
    )
    assert "encryption key" in ok(ws.root, "encryption-keys", "create", "aes.key")
    out = ok(ws.root, "registry", "encrypt", ws.run, "--output", "enc", "--key-file", "aes.key")
    assert "encrypted" in out
    out = ok(ws.root, "registry", "decrypt", "enc", "--output", "dec", "--key-file", "aes.key")
    assert "decrypted" in out
    assert "shown only now" in ok(ws.root, "keys", "create", "--name", "ci")
    assert "API keys" in ok(ws.root, "keys", "list")


@pytest.mark.slow
def test_compress_table_keeps_variant_names(ws: Workspace, trained: str) -> None:
    out = ok(ws.root, "compress", ws.run, "--methods", "onnx,int8-dynamic", "--threads", "1")
    for name in ("parent", "onnx", "int8-dynamic"):
        assert any(line.split()[:1] == [name] for line in out.splitlines()), out
    assert "Pareto-optimal" in out and "report written to" in out


def test_federate_without_its_extra_prints_the_pip_command(ws: Workspace) -> None:
    try:
        import flwr  # noqa: F401

        pytest.skip("flwr is installed here")
    except ImportError:
        pass
    done = cli(ws.root, "federate", "project/recipe.yaml", "--clients", "2", fits=False)
    assert done.code == 2 and "pip install 'modelyard[federated]'" in done.err
