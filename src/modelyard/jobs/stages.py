"""The stages a job can run, each as a `modelyard` command in a process of its own.

A job never imports a stage: it runs `python -m modelyard <command> TARGET ARGS...`, so a
crash, a leak or a hang stays inside the job's process group. On a rerun after an
interrupted attempt, `train` continues from its last complete checkpoint (`--resume`) and
`compress` replaces its own half-written output; the other stages simply run again.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from modelyard.errors import RecipeError
from modelyard.jobs.errors import JobsError
from modelyard.jobs.spec import JobSpec
from modelyard.plugins import Registry

TargetKind = Literal["recipe", "run", "program"]
RerunFlags = Callable[[JobSpec], list[str]]


@dataclass(frozen=True)
class Stage:
    """How to run one stage: its CLI words, what its target is, and its flags on a rerun."""

    command: tuple[str, ...]
    target: TargetKind
    flags: tuple[str, ...] = ()
    rerun: RerunFlags | None = None
    description: str = ""


STAGES: Registry[Stage] = Registry("job stage")


# options whose value holds an `=` of its own (`--param train.lr=loguniform:1e-5:1e-3`)
_VALUE_OPTIONS = ("--param",)


def _overrides(args: tuple[str, ...]) -> list[str]:
    return [
        a
        for i, a in enumerate(args)
        if "=" in a and not a.startswith("-") and (i == 0 or args[i - 1] not in _VALUE_OPTIONS)
    ]


def _run_dir(spec: JobSpec) -> Path | None:
    from modelyard.recipe import load_recipe

    try:
        recipe = load_recipe(Path(spec.cwd) / spec.target, _overrides(spec.args))
    except RecipeError:
        return None  # the rerun fails with the recipe's own message
    run_dir = recipe.run_dir()
    return run_dir if run_dir.is_absolute() else Path(spec.cwd) / run_dir


def _train_rerun(spec: JobSpec) -> list[str]:
    """`--resume` when the interrupted attempt left a complete checkpoint, else start over."""
    run_dir = _run_dir(spec)
    if run_dir is None or not run_dir.exists():
        return []
    # the trainer renames checkpoints/.tmp-step-N/ to step-N/ once its COMPLETE marker is
    # written, and resumes only from step-N/ (trainer.checkpoint)
    if any((run_dir / "checkpoints").glob("step-*/COMPLETE")):
        return ["--resume"]
    return ["--overwrite"]  # the folder holds only what our own interrupted attempt wrote


STAGES.add(
    "train",
    Stage(
        ("train",),
        "recipe",
        ("--no-progress",),
        _train_rerun,
        "modelyard train RECIPE [OVERRIDES]; a rerun resumes from the last checkpoint",
    ),
)
STAGES.add(
    "tune",
    Stage(
        ("tune",),
        "recipe",
        ("--no-progress",),
        description="modelyard tune RECIPE --param KEY=DIST:ARGS ... [OVERRIDES]; jobs of the "
        "same search share its study, and a rerun resumes it",
    ),
)
STAGES.add(
    "compress",
    Stage(
        ("compress",),
        "run",
        rerun=lambda spec: ["--overwrite"],
        description="modelyard compress RUN [OPTIONS]; a rerun replaces its own partial output",
    ),
)
STAGES.add(
    "audit",
    Stage(("data", "audit"), "recipe", description="modelyard data audit RECIPE [OVERRIDES]"),
)
STAGES.add(
    "evaluate",
    Stage(("evaluate",), "run", description="modelyard evaluate RUN --data FILE [OPTIONS]"),
)
STAGES.add(
    "command",
    Stage((), "program", description="any program: PROGRAM [ARGS] (runs in the submit folder)"),
)


def job_argv(spec: JobSpec, rerun: bool, python: str) -> list[str]:
    """Return the command line of `spec`; `rerun` adds the stage's flags for a rerun.

    Raises UnknownPluginError for an unknown stage.
    """
    stage = STAGES.get(spec.stage)
    if stage.target == "program":
        return [spec.target, *spec.args]
    extra = stage.rerun(spec) if rerun and stage.rerun is not None else []
    return [
        python,
        "-m",
        "modelyard",
        *stage.command,
        spec.target,
        *spec.args,
        *stage.flags,
        *extra,
    ]


def check_target(spec: JobSpec) -> None:
    """Raise a clear error when the target of `spec` cannot be what its stage needs.

    Raises UnknownPluginError for an unknown stage, RecipeError for a bad recipe or
    override, and JobsError for a missing run folder or program.
    """
    stage = STAGES.get(spec.stage)
    path = Path(spec.cwd) / spec.target
    if stage.target == "recipe":
        from modelyard.recipe import load_recipe

        load_recipe(path, _overrides(spec.args))
    elif stage.target == "run" and not path.is_dir():
        raise JobsError(
            f"the {spec.stage} stage takes a run folder (written by `modelyard train`); "
            f"{path} is not a folder"
        )
    elif stage.target == "program" and shutil.which(spec.target) is None and not path.is_file():
        raise JobsError(
            f"program '{spec.target}' is not on PATH nor a file in {spec.cwd}; give its full path"
        )
