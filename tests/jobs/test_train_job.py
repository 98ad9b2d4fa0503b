"""A real `modelyard train` job on the tiny backbone: killed with its worker, resumed, finished."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelyard.jobs.local import LocalJobs
from modelyard.jobs.queue import JobQueue
from modelyard.jobs.spec import JobSpec, Resources
from tests.jobs.conftest import run_until_idle, wait_until

Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.mark.slow  # a process of its own
def test_a_killed_training_job_resumes_from_its_checkpoint(
    queue: JobQueue, tmp_path: Path, tiny_recipe: dict[str, Any], spawn_worker: Spawn
) -> None:
    tiny_recipe["train"].update(epochs=20, checkpoint_every=10, keep_checkpoints=True)
    tiny_recipe["evaluate"] = {"speed": False}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe), encoding="utf-8")
    spec = JobSpec("train", recipe.name, (), str(tmp_path), Resources(1, 1024**3, 0), max_crashes=2)
    job = LocalJobs(queue.path).submit(spec)
    run_dir = tmp_path / "runs" / "tiny"
    worker = spawn_worker()
    wait_until(lambda: any(run_dir.glob("checkpoints/step-*/COMPLETE")), 240, "a first checkpoint")
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    assert not (run_dir / "manifest.json").exists()  # killed before the run finished
    run_until_idle(queue, max_seconds=300)
    done = queue.get(job.id)
    assert done.state == "succeeded", LocalJobs(queue.path).logs(job.id, tail=30)
    assert done.attempts == 2 and done.crashes == 1
    log = LocalJobs(queue.path).logs(job.id)
    assert "=== attempt 2" in log and "--resume" in log.split("=== attempt 2", 1)[1].splitlines()[0]
    training = json.loads((run_dir / "metrics.json").read_text())["training"]
    assert training["resumed_from_step"] is not None and training["resumed_from_step"] >= 10
    assert (run_dir / "manifest.json").is_file()
