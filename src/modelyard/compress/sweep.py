"""`compress`: run methods on a trained run, save each variant, measure them side by side,
and write the report (markdown, JSON, accuracy-vs-latency PNG)."""

from __future__ import annotations

import functools
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from pydantic import ValidationError

from modelyard.backends import load_backend
from modelyard.compress import distill, prune, quantize  # noqa: F401  (registration)
from modelyard.compress.base import (
    COMPRESSION_METHODS,
    CompressContext,
    MethodSpec,
    parse_methods,
    save_variant,
)
from modelyard.compress.measure import (
    SpeedRounds,
    baseline_memory,
    cost,
    isolated_memory,
    load_measured,
    quality,
    weights_size_mb,
)
from modelyard.compress.report import mark_pareto, markdown, pick_within_budget, plot
from modelyard.data import Split
from modelyard.data.labelled import labelled_split
from modelyard.errors import ArtifactError, DataError, ModelyardError, RecipeError
from modelyard.fsutil import atomic_write_json, atomic_write_text
from modelyard.models.device import torch_threads
from modelyard.recipe import (
    CompressConfig,
    Recipe,
    Section,
    deep_merge,
    format_validation_error,
    parse_overrides,
)
from modelyard.registry.manifest import read_manifest
from modelyard.registry.run import LoadedRun, load_run

if TYPE_CHECKING:
    from modelyard.compress.tokens import TokenParent

PARENT = "parent (fp32 PyTorch)"
Log = Callable[[str], None]


@dataclass
class CompressResult:
    """What `compress` made: the report folder, each variant's artifact and the pick."""

    output_dir: Path
    report: dict[str, Any]
    variants: dict[str, Path] = field(default_factory=dict)
    best: Path | None = None


class _CompressOnly(Section):
    compress: CompressConfig


def compress_config(
    recipe: Recipe | dict[str, Any], overrides: list[str] | None = None, **options: Any
) -> CompressConfig:
    """Return the run recipe's `compress` section with `compress.*` overrides and options applied.

    `recipe` is the run's Recipe (a recipe as a plain dict is read too). Options that are
    None are left out. Raises RecipeError listing every invalid field.
    """
    tree = parse_overrides(overrides or [])
    stray = sorted(set(tree) - {"compress"})
    if stray:
        raise RecipeError(f"only compress.* overrides apply to compress; got: {', '.join(stray)}")
    section: dict[str, Any] = {}
    if isinstance(recipe, Recipe):
        section = recipe.compress.model_dump(mode="json")
    elif isinstance(recipe.get("compress"), dict):
        section = recipe["compress"]
    merged = deep_merge(
        deep_merge(section, tree.get("compress", {})),
        {k: v for k, v in options.items() if v is not None},
    )
    try:
        return _CompressOnly.model_validate({"compress": merged}).compress
    except ValidationError as exc:
        raise RecipeError(format_validation_error(exc, "compress options")) from None


# what `modelyard train` writes: a Hugging Face classifier, or (model.pooling: mean) the
# mean-pooled embedding classifier
PARENT_KINDS = ("classifier", "embedding-classifier")


def _parent(run: str | Path) -> LoadedRun:
    kind = read_manifest(Path(run)).get("kind", "classifier")
    if kind not in PARENT_KINDS:
        raise ArtifactError(
            f"{run} is a '{kind}' artifact; compress starts from a PyTorch run (kind "
            f"{' or '.join(map(repr, PARENT_KINDS))}) such as `modelyard train` writes: pass "
            "that run, not one of its variants (a token-classification run compresses through "
            "`modelyard compress` or modelyard.api.compress, which load it)"
        )
    return load_run(run)


def output_dir(run: Path, output: str | Path | None, overwrite: bool) -> Path:
    """Return the emptied output folder of compressing `run` (default `RUN-compressed/`).

    Raises ArtifactError when it holds files and `overwrite` is not set.
    """
    out = Path(output) if output else run.parent / f"{run.name}-compressed"
    if out.is_dir() and all(p.name.startswith(".") for p in out.iterdir()):
        # only the scratch of an interrupted compress (.work, hidden temporary variants):
        # nothing finished is lost, so a plain rerun starts clean
        shutil.rmtree(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ArtifactError(f"{out} already holds files; pass --overwrite or --output NEW_DIR")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _test_split(ctx: CompressContext, data: str | Path | None) -> tuple[Split, str]:
    if data is not None:
        cfg = ctx.run.recipe.data
        split, _ = labelled_split(Path(data), cfg.text_column, cfg.label_column, ctx.run.labels)
        return split, str(data)
    split = ctx.data().test
    if len(split) == 0:
        raise DataError(f"the recipe of {ctx.run.path} holds no test split; pass --data FILE")
    return split, split.source or "the run's test split"


def _build(
    ctx: CompressContext, specs: list[MethodSpec], out: Path, log: Log
) -> tuple[dict[str, Path], dict[str, str]]:
    made: dict[str, Path] = {}
    failed: dict[str, str] = {}
    for i, spec in enumerate(specs, start=1):
        start = time.perf_counter()
        log(f"[{i}/{len(specs)}] {spec.label} ...")
        try:
            variant = COMPRESSION_METHODS.get(spec.name)(ctx, spec.arg)
            made[spec.label] = save_variant(variant, ctx, spec, out / spec.slug)
        except ModelyardError as exc:
            failed[spec.label] = str(exc)
            log(f"[{i}/{len(specs)}] {spec.label} failed: {exc}")
            continue
        log(f"[{i}/{len(specs)}] {spec.label} done in {time.perf_counter() - start:.1f} s")
    return made, failed


def _score(
    path: Path, split: Split, cfg: CompressConfig, threads: int, baseline: float | None
) -> tuple[Any, dict[str, Any]]:
    probe = split.texts[:32]
    if cfg.isolate_memory:
        backend = load_backend(path)
        memory = isolated_memory(path, threads, split.texts[: cfg.speed_samples], baseline)
    else:
        backend, in_process = load_measured(functools.partial(load_backend, path), probe)
        memory = {"memory_mb": in_process, "peak_rss_mb": None}
    metrics = quality(backend, split)
    row = {
        "path": str(path),
        "kind": read_manifest(path).get("kind"),
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "size_mb": weights_size_mb(path),
        **memory,
    }
    return backend, row


def measure_variants(
    artifacts: dict[str, Path], split: Split, cfg: CompressConfig, threads: int, log: Log
) -> list[dict[str, Any]]:
    """Load every artifact, score it on `split` and time all of them interleaved; return one row each.

    The first artifact is the reference for accuracy drop, speed-up and size ratio.
    """
    loaded: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    baseline = baseline_memory(threads) if cfg.isolate_memory else None
    for name, path in artifacts.items():
        loaded[name], row = _score(path, split, cfg, threads, baseline)
        rows.append({"name": name, **row})
    log(f"timing {len(loaded)} models, {cfg.rounds} interleaved round(s) ...")
    return timed_rows(rows, loaded, split.texts, cfg, threads)


def timed_rows(
    rows: list[dict[str, Any]],
    loaded: dict[str, Any],
    texts: list[str],
    cfg: CompressConfig,
    threads: int,
) -> list[dict[str, Any]]:
    """Time the `loaded` predictors (anything with `predict_proba(texts)`) in interleaved
    rounds on `texts`, and add to each row its speed, cost, and its accuracy drop, speed-up
    and size ratio against the first row; return the rows with the Pareto fronts marked."""
    timing = SpeedRounds(texts[: cfg.speed_samples], cfg.latency_runs, cfg.rounds)
    speeds = timing.run(loaded)
    base = rows[0]
    for row in rows:
        row.update(speeds[row["name"]])
        row["cost_per_million"] = cost(row["throughput_b32_per_s"], cfg.price_per_cpu_hour, threads)
        row["accuracy_drop"] = round(base["accuracy"] - row["accuracy"], 6)
        row["speedup_b32"] = round(row["throughput_b32_per_s"] / base["throughput_b32_per_s"], 3)
        row["size_ratio"] = round(base["size_mb"] / max(row["size_mb"], 1e-9), 3)
    return mark_pareto(rows)


def compress(
    run: str | Path | TokenParent,
    methods: list[str] | None = None,
    data: str | Path | None = None,
    output: str | Path | None = None,
    max_accuracy_drop: float | None = None,
    price_per_cpu_hour: float | None = None,
    threads: int | None = None,
    overrides: list[str] | None = None,
    overwrite: bool = False,
    log: Log | None = None,
) -> CompressResult:
    """Compress a trained run with `methods`, measure every variant against it, and report.

    Each variant is an artifact under `output` (default `RUN-compressed/`) whose manifest
    names the parent; `report.md`, `report.json` and `accuracy_vs_latency.png` compare them.
    With `max_accuracy_drop`, `best` is the fastest variant whose accuracy is at most that
    far below the parent's. `run` may also be a run of another task that the API layer
    loaded (a `TokenParent`, see `compress_token_run`). Raises ArtifactError for a bad run or
    output folder, RecipeError / UnknownPluginError for bad methods or options, DataError for
    bad data.
    """
    say = log or (lambda _msg: None)
    parent = _parent(run) if isinstance(run, str | Path) else run
    cfg = compress_config(
        parent.recipe,
        overrides,
        methods=methods,
        max_accuracy_drop=max_accuracy_drop,
        price_per_cpu_hour=price_per_cpu_hour,
        threads=threads,
    )
    if not isinstance(parent, LoadedRun):
        from modelyard.compress.tokens import compress_token_run

        explicit = methods is not None or any("compress.methods" in o for o in overrides or [])
        return compress_token_run(parent, cfg, explicit, data, output, overwrite, say)
    specs = parse_methods(cfg.methods)
    n_threads = cfg.threads or torch.get_num_threads()
    out = output_dir(parent.path, output, overwrite)
    seed = parent.recipe.run.seed
    with torch_threads(n_threads):
        ctx = CompressContext(parent, cfg, out / ".work", seed, n_threads)
        split, source = _test_split(ctx, data)
        made, failed = _build(ctx, specs, out, say)
        shutil.rmtree(out / ".work", ignore_errors=True)
        rows = measure_variants({PARENT: parent.path, **made}, split, cfg, n_threads, say)
    return finish_report(
        out,
        parent.path,
        rows,
        failed,
        cfg,
        {"test_data": source, "test_rows": len(split), "threads": n_threads},
    )


def finish_report(
    out: Path,
    parent: Path,
    rows: list[dict[str, Any]],
    failed: dict[str, str],
    cfg: CompressConfig,
    setting: dict[str, Any],
) -> CompressResult:
    """Pick the fastest variant within the accuracy budget, write report.json, report.md and
    the plot into `out` for the measured `rows` (the parent first), and return the result."""
    best = None
    if cfg.max_accuracy_drop is not None:
        best = pick_within_budget(rows, rows[0]["accuracy"], cfg.max_accuracy_drop)
    report = {
        "parent": str(parent.resolve()),
        **setting,
        "speed_texts": min(cfg.speed_samples, setting["test_rows"]),
        "rounds": cfg.rounds,
        "price_per_cpu_hour": cfg.price_per_cpu_hour,
        "max_accuracy_drop": cfg.max_accuracy_drop,
        "best": best["name"] if best else None,
        "variants": rows,
        "failed": failed,
    }
    atomic_write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", markdown(report))
    plot(rows, out / "accuracy_vs_latency.png")
    variants = {r["name"]: Path(r["path"]) for r in rows[1:]}
    return CompressResult(out, report, variants, Path(best["path"]) if best else None)
