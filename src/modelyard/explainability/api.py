"""The Python API of explanations; `modelyard explain` only wraps these functions."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard.backends import Backend
from modelyard.errors import DataError
from modelyard.explainability.cancel import cancellable
from modelyard.explainability.core import explain_text, resolve_config
from modelyard.explainability.faithfulness import FaithfulnessReport, evaluate_faithfulness
from modelyard.explainability.methods import EXPLAINERS, get_method, methods_for
from modelyard.explainability.overview import GlobalView, global_view, plot_global
from modelyard.explainability.render import html_page
from modelyard.explainability.report import faithfulness_markdown
from modelyard.explainability.results import Explanation
from modelyard.explainability.subject import Subject, as_subject
from modelyard.fsutil import atomic_write_json, atomic_write_text
from modelyard.recipe import ExplainConfig
from modelyard.registry.run import LoadedRun

Source = Subject | LoadedRun | Backend | str | Path


def _default_method(subject: Subject, cfg: ExplainConfig, method: str | None) -> str:
    if method is not None:
        return method
    # an ONNX artifact cannot run the gradient default; occlusion needs only the forward pass
    if EXPLAINERS.get(cfg.method).needs_gradients and subject.run is None:
        return "occlusion"
    return cfg.method


def explain(
    run: Source,
    texts: str | list[str],
    method: str | None = None,
    steps: int | None = None,
    samples: int | None = None,
    target: str | None = None,
    score: str | None = None,
    cancel: threading.Event | None = None,
    completeness_error: float | None = None,
) -> list[Explanation]:
    """Return one Explanation per text: word (and word-piece) attributions and probabilities.

    `run` is a run directory, an artifact path (any kind with a backend), a LoadedRun or a
    Backend. `method` is ig, gxi, occlusion or shapley (default: the recipe's `explain.method`,
    or occlusion for forward-only artifacts); `steps` fixes integrated-gradients steps (unset:
    chosen per text, from 24, until the completeness error is at most `completeness_error`,
    default 1%), `samples` sets Shapley permutations; `target` explains a given label instead of the
    prediction; `score` is what is explained: "log-odds" (default) or "probability". Words past
    the model's maximum length are left out (each Explanation counts them). Setting `cancel`
    stops the work at its next forward pass with ExplainCancelled. Raises ArtifactError,
    UnknownPluginError, ExplainError, RecipeError or DataError for a bad artifact, method,
    option, label or text.
    """
    subject = as_subject(run)
    cfg = resolve_config(
        subject, steps=steps, samples=samples, score=score, completeness_error=completeness_error
    )
    name = _default_method(subject, cfg, method)
    get_method(name, subject)
    batch = [texts] if isinstance(texts, str) else list(texts)
    with cancellable(cancel):
        return [explain_text(subject, text, name, cfg, target) for text in batch]


def read_texts(
    source: Path, text_column: str = "text", max_rows: int | None = None
) -> tuple[list[str], int]:
    """Return the non-empty texts of a table (CSV/TSV/JSONL/Parquet) or a .txt file (one per line),
    and how many empty ones were skipped.

    Raises DataError for a missing or unreadable file or a missing text column.
    """
    from modelyard.data import read_table

    if source.suffix.lower() == ".txt":
        if not source.is_file():
            raise DataError(f"input file not found: {source}")
        texts = source.read_text(encoding="utf-8").splitlines()
    else:
        table = read_table(source)
        if text_column not in table.columns:
            raise DataError(
                f"{source}: no column '{text_column}'; columns are: "
                f"{', '.join(map(str, table.columns))}. Pass --text-column NAME."
            )
        texts = [str(t) for t in table[text_column]]
    texts = texts[:max_rows] if max_rows else texts
    kept = [t for t in texts if t.strip()]
    return kept, len(texts) - len(kept)


@dataclass
class ExplainedFile:
    """The explanations of a file, their global view, and the files written."""

    explanations: list[Explanation]
    view: GlobalView
    skipped_empty: int
    files: dict[str, Path] = field(default_factory=dict)


def explain_file(
    run: Source,
    source: str | Path,
    output: str | Path,
    text_column: str = "text",
    method: str | None = None,
    max_rows: int | None = None,
    progress: bool = False,
    **options: Any,
) -> ExplainedFile:
    """Explain every text of a file and write JSON, one HTML page and the global view to `output`.

    Writes explanations.json, explanations.html (self-contained), global.json, global.md and
    global.png; empty texts are skipped and counted. `options` are fields of the recipe's
    `explain` section (steps, samples, score, seed, global_top, global_min_count).
    Raises as `explain` and `read_texts` do.
    """
    subject = as_subject(run)
    cfg = resolve_config(subject, **options)
    name = _default_method(subject, cfg, method)
    get_method(name, subject)
    texts, skipped = read_texts(Path(source), text_column, max_rows)
    if not texts:
        raise DataError(f"{source}: no non-empty text to explain ({skipped} empty)")
    exps = [explain_text(subject, t, name, cfg) for t in _track(texts, progress, "explaining")]
    view = global_view(exps, cfg.global_top, cfg.global_min_count)
    out = Path(output)
    result = ExplainedFile(exps, view, skipped)
    result.files = _write_file_outputs(out, result, f"{Path(source).name}: {name}")
    return result


def _write_file_outputs(out: Path, result: ExplainedFile, title: str) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "skipped_empty": result.skipped_empty,
        "explanations": [e.to_dict() for e in result.explanations],
    }
    return {
        "json": atomic_write_json(out / "explanations.json", payload),
        "html": atomic_write_text(
            out / "explanations.html", html_page(result.explanations, title, result.view)
        ),
        "global_json": atomic_write_json(out / "global.json", result.view.to_dict()),
        "global_md": atomic_write_text(out / "global.md", result.view.markdown()),
        "global_png": plot_global(result.view, out / "global.png"),
    }


def evaluate_explanations(
    run: Source,
    data: str | Path,
    methods: list[str] | None = None,
    text_column: str = "text",
    output: str | Path | None = None,
    max_rows: int | None = None,
    progress: bool = False,
    **options: Any,
) -> tuple[FaithfulnessReport, Path]:
    """Measure each method's faithfulness (ERASER comprehensiveness, sufficiency, AOPC) against
    a random ranking on the texts of `data`; return the report and the folder written.

    `methods` defaults to every method the artifact supports. `output` defaults to
    `ARTIFACT/explanations/<file stem>/`; faithfulness.json and faithfulness.md go there.
    `options` are fields of the recipe's `explain` section (steps, samples, score, seed,
    top_k_percent). Raises as `explain` and `read_texts` do.
    """
    subject = as_subject(run)
    cfg = resolve_config(subject, **options)
    names = list(methods) if methods else methods_for(subject)
    texts, skipped = read_texts(Path(data), text_column, max_rows)
    report = evaluate_faithfulness(subject, _track(texts, progress, "faithfulness"), names, cfg)
    report.skipped_empty += skipped
    out = Path(output) if output else Path(subject.backend.path) / "explanations" / Path(data).stem
    out.mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {
        "steps": cfg.steps if cfg.steps is not None else f"auto (<= {cfg.max_steps})",
        "completeness_error": cfg.completeness_error,
        "samples": cfg.samples,
        "score": cfg.score,
        "seed": cfg.seed,
    }
    atomic_write_json(out / "faithfulness.json", {**report.to_dict(), "settings": settings})
    atomic_write_text(out / "faithfulness.md", faithfulness_markdown(report, settings))
    return report, out


def _track(texts: list[str], progress: bool, what: str) -> Iterable[str]:
    if not progress:
        return texts
    from rich.progress import track

    return track(texts, description=what, total=len(texts))
