"""A small but real dashboard workspace: a trained run with its history, compressed
variants, an explanation faithfulness report, a label audit, a pool to label and API keys.

Shared by the UI tests and bench/ui.py; everything is made by modelyard's own functions
on the tiny in-code backbone, so every file the pages show is a real artifact.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelyard.serve.auth import KeyStore
from tests.conftest import make_rows, write_csv

FLIPPED = (3, 10, 17, 24, 31, 38)  # data rows (1-based) whose label is made wrong for the audit


@dataclass
class Workspace:
    """Where everything is, and the plain API keys to log in with."""

    root: Path
    runs: Path
    data: Path
    keys_file: Path
    admin_key: str
    predict_key: str
    run: Path
    other: Path
    train_csv: Path
    jobs_queue: Path


def _noisy_rows(n: int) -> list[tuple[str, str]]:
    rows = make_rows(n)
    labels = sorted({label for _, label in rows})
    for r in FLIPPED:
        text, label = rows[r - 1]
        rows[r - 1] = (text, labels[(labels.index(label) + 1) % len(labels)])
    return rows


def recipe(root: Path, backbone: Path, train_csv: Path, name: str = "tiny") -> dict:
    """Return the recipe of the workspace's run: a few epochs that the tiny model learns."""
    return {
        "run": {"name": name, "output_dir": str(root / "runs"), "seed": 3},
        "data": {"path": str(train_csv), "split": {"dev": 0.15, "test": 0.15}},
        "model": {"backbone": str(backbone), "max_length": 32},
        "train": {
            "epochs": 6, "batch_size": 16, "lr": 3e-3, "precision": "fp32", "num_threads": 1,
            "eval_every": 3, "early_stopping": {"patience": None},
        },
        "evaluate": {"speed": True, "speed_samples": 8},
        "audit": {"learner": "embedding", "folds": 3},
        "compress": {
            "rounds": 1, "speed_samples": 16, "latency_runs": 3, "isolate_memory": False,
        },
    }  # fmt: skip


def make_jobs(queue: Path) -> Path:
    """Run a job that succeeds and one that fails through a real worker, then queue a third
    that waits (no worker is left running); return the queue file."""
    import sys

    from modelyard.jobs import api as jobs

    queue.parent.mkdir(parents=True, exist_ok=True)
    ok = "print('loading'); print('step 1 of 2'); print('done')"
    jobs.submit(sys.executable, ["-c", ok], stage="command", name="say done", queue=queue)
    bad = "import sys; print('about to fail'); sys.exit(3)"
    jobs.submit(sys.executable, ["-c", bad], stage="command", name="fail", queue=queue)
    jobs.run_worker(queue, cpus=1, exit_when_idle=True, max_seconds=120, poll_s=0.1)
    jobs.submit(sys.executable, ["-c", ok], stage="command", name="waiting", queue=queue)
    return queue


def build_workspace(root: Path, backbone: Path) -> Workspace:
    """Train, compress, explain and audit a tiny run under `root`; return where it all is."""
    from modelyard.api import evaluate_explanations, train
    from modelyard.compress import compress
    from modelyard.curation.api import audit
    from modelyard.recipe import build_recipe

    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    train_csv = write_csv(data / "train.csv", _noisy_rows(240))
    pool = [(text, "") for text, _ in make_rows(60, seed=11)]
    write_csv(data / "pool.csv", pool)
    test_csv = write_csv(data / "probe.csv", make_rows(12, seed=5))
    spec = build_recipe(recipe(root, backbone, train_csv))
    result = train(spec, progress=False)
    quick = recipe(root, backbone, train_csv, "tiny-quick")
    quick["train"].update(epochs=2, lr=1e-3)
    other = train(build_recipe(quick), progress=False)
    compress(result.run_dir, methods=["torch-int8", "fp16"])
    evaluate_explanations(result.run_dir, test_csv, methods=["occlusion"], max_rows=8)
    audit(spec)
    queue = make_jobs(root / "jobs" / "queue.db")
    keys = KeyStore(root / "keys.json")
    _, admin = keys.create("admin", "ana")
    _, predict = keys.create("predict", "bo")
    return Workspace(
        root, root / "runs", data, keys.path, admin, predict, result.run_dir, other.run_dir,
        train_csv, queue,
    )  # fmt: skip
