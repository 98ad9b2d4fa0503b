"""`modelyard train --nproc N`: launch the ranks of a data-parallel run and read back its result.

The launching process starts N copies of this module (`python -m modelyard.api.distributed`)
through torch's elastic launcher; each trains as one rank (`modelyard.pipeline.run_training`
sees the launcher's environment) and rank 0 writes the run folder, which the launching process
then reads. A process's user error comes back as the same ModelyardError.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from modelyard.errors import ModelyardError
from modelyard.fsutil import atomic_write_json
from modelyard.models.device import select_device
from modelyard.pipeline import RunResult, run_training
from modelyard.recipe import Recipe, build_recipe
from modelyard.trainer.distributed import usable_cores
from modelyard.trainer.launch import LaunchPlan, launch, record_error

RECIPE_FILE = "recipe.json"


def train_distributed(
    recipe: Recipe, plan: LaunchPlan, resume: bool, overwrite: bool, progress: bool
) -> RunResult:
    """Train `recipe` in the processes `plan` asks for; return the run rank 0 wrote.

    On a node that did not run rank 0 (several nodes), the result holds the run directory
    and no metrics. Raises LaunchError for a bad plan or a failed process, or the
    ModelyardError a process raised.
    """
    import torch

    cuda = select_device(recipe.train.device).type == "cuda"
    plan.check(usable_cores(), torch.cuda.device_count() if cuda else 0)
    threads = recipe.train.num_threads or max(1, usable_cores() // plan.nproc)
    with tempfile.TemporaryDirectory(prefix="modelyard-ddp-") as tmp:
        work = Path(tmp)
        # the resolved recipe travels as data: the processes rebuild exactly this Recipe
        atomic_write_json(work / RECIPE_FILE, recipe.model_dump(mode="json"))
        args = ["-m", __name__, str(work)]
        args += [flag for flag, on in (("--resume", resume), ("--overwrite", overwrite)) if on]
        args += [] if progress else ["--no-progress"]
        ranks = launch(plan, args, work, f"modelyard-{recipe.run.name}", threads)
    run_dir = recipe.run_dir()
    if 0 not in ranks:
        return RunResult(run_dir, {}, {}, {})
    saved = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    report = json.loads((run_dir / "data_report.json").read_text(encoding="utf-8"))
    report.pop("split_sizes", None)  # added by the report; not part of the reading's report
    return RunResult(run_dir, saved["test"], saved["training"], report)


def main(argv: list[str] | None = None) -> None:
    """Train as one rank of a launch: `python -m modelyard.api.distributed WORK_DIR [flags]`."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    raw = json.loads((args.work_dir / RECIPE_FILE).read_text(encoding="utf-8"))
    try:
        recipe = build_recipe(raw, "recipe", [])
        run_training(recipe, args.resume, args.overwrite, not args.no_progress)
    except ModelyardError as exc:
        record_error(args.work_dir, int(os.environ.get("RANK", "0")), exc)
        sys.exit(2)


if __name__ == "__main__":
    main()
