"""The Python API of the data-centric tools; `modelyard data ...` and `modelyard label ...`
only wrap these functions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelyard.curation.labeling import ImportResult, LabelBatch
from modelyard.data.pii_scan import PiiScan
from modelyard.errors import RecipeError
from modelyard.recipe import (
    DEFAULT_BACKBONE,
    DEFAULT_MAX_LENGTH,
    PiiConfig,
    Recipe,
    build_recipe,
    load_recipe,
)
from modelyard.registry.run import LoadedRun, load_run

DEFAULT_STRATEGIES = ("random", "least-confidence", "margin", "entropy", "kcenter", "badge")


def _recipe(recipe: Recipe | str | Path, overrides: list[str] | None) -> Recipe:
    if isinstance(recipe, Recipe):
        loaded = (
            build_recipe(recipe.model_dump(mode="json"), "recipe", overrides)
            if overrides
            else recipe
        )
    else:
        loaded = load_recipe(recipe, overrides)
    if loaded.task != "classification":
        # the audit and labelling read one label per text; other tasks' data has another shape
        raise RecipeError(
            f"the data tools (audit, labelling) work on classification recipes; this recipe's "
            f"task is '{loaded.task}' (see docs/tasks.md)"
        )
    return loaded


def audit(
    recipe: Recipe | str | Path,
    overrides: list[str] | None = None,
    output: str | Path | None = None,
    progress: bool = False,
) -> Any:
    """Audit the recipe's data (label errors, near-duplicates, leakage, outliers) and write
    CSV, JSON and markdown reports; return the AuditReport (its `files` name them).

    Raises RecipeError, DataError or BackboneError for a user's mistake.
    """
    from modelyard.curation.audit_run import run_audit

    return run_audit(_recipe(recipe, overrides), Path(output) if output else None, progress)


def label_next(
    run: LoadedRun | str | Path,
    pool: str | Path,
    output: str | Path,
    k: int = 50,
    strategy: str = "margin",
    text_column: str = "text",
    label_column: str = "label",
    labelled: list[str | Path] | None = None,
    seed: int = 0,
    min_words: int = 0,
) -> LabelBatch:
    """Write the k rows of `pool` most worth labelling next (by `strategy`) to `output`;
    return what was written and what was skipped.

    Rows with a label, whose text is in `labelled` (default: the run's data files), or of
    fewer than `min_words` words are never picked. Raises DataError, ArtifactError or
    UnknownPluginError.
    """
    from modelyard.curation.labeling import next_batch

    loaded = run if isinstance(run, LoadedRun) else load_run(run)
    known = [Path(p) for p in labelled] if labelled is not None else None
    return next_batch(
        loaded,
        Path(pool),
        k,
        strategy,
        Path(output),
        text_column,
        label_column,
        known,
        seed,
        min_words,
    )


def label_import(
    labelled: str | Path,
    into: str | Path,
    output: str | Path | None = None,
    text_column: str = "text",
    label_column: str = "label",
    allow_new_labels: bool = False,
) -> ImportResult:
    """Merge the labelled rows of `labelled` into the training file `into` (or a new `output`).

    Raises DataError for missing columns or labels the training file has never seen.
    """
    from modelyard.curation.labeling import import_labels

    return import_labels(
        Path(labelled),
        Path(into),
        Path(output) if output else None,
        text_column,
        label_column,
        allow_new_labels,
    )


def scan_pii(
    path: str | Path,
    columns: list[str] | None = None,
    patterns: dict[str, str] | None = None,
    region: str = "US",
    redact_to: str | Path | None = None,
) -> PiiScan:
    """Return the personal data found in a file; with `redact_to`, also write a redacted copy.

    Raises RecipeError for an invalid custom pattern or region, DataError for a bad file.
    """
    from modelyard.data.pii_scan import scan_file

    cfg = _pii_config(patterns or {}, region)
    return scan_file(Path(path), columns, cfg, Path(redact_to) if redact_to else None)


def _pii_config(patterns: dict[str, str], region: str) -> PiiConfig:
    from pydantic import ValidationError

    try:
        return PiiConfig(patterns=patterns, region=region)
    except ValidationError as exc:
        problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise RecipeError(f"invalid PII options: {problems}") from None


def simulate_al(
    data: str | Path,
    test: str | Path,
    output: str | Path,
    strategies: list[str] | None = None,
    seeds: int = 3,
    start: int = 50,
    step: int = 50,
    max_labels: int = 2000,
    backbone: str = DEFAULT_BACKBONE,
    text_column: str = "text",
    label_column: str = "label",
    max_length: int = DEFAULT_MAX_LENGTH,
    min_words: int = 0,
) -> dict[str, Any]:
    """Simulate active learning with `data` as the oracle; write curves.csv, curves.png and
    summary.json to `output`; return the summary (accuracy per strategy, labels to match random).

    `min_words` keeps only pool rows of at least that many words, for every strategy (as
    `label next --min-words` would); run once without it to compare against the whole pool.

    Raises DataError or UnknownPluginError for a user's mistake.
    """
    from modelyard.curation.active import STRATEGIES
    from modelyard.curation.simulate import label_schedule, simulate_files

    chosen = list(strategies or DEFAULT_STRATEGIES)
    for name in chosen:
        STRATEGIES.get(name)  # fail before embedding anything
    return simulate_files(
        Path(data),
        Path(test),
        Path(output),
        chosen,
        label_schedule(start, step, max_labels),
        list(range(seeds)),
        backbone,
        text_column,
        label_column,
        max_length,
        min_words,
    )
