"""Pages that show runs: the list, a run, a comparison and a run's compression variants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from modelyard.ui import charts
from modelyard.ui.details import RunDetails, read_history, run_details
from modelyard.ui.render import page
from modelyard.ui.runs import (
    COMPRESSED_SUFFIX,
    SORT_KEYS,
    RunIndex,
    UnknownRunError,
    filter_runs,
    read_json,
)

FILTERS = ("task", "method", "dataset", "status", "source")
DEV_METRICS = ("accuracy", "macro_f1", "loss")


def _index(request: Request) -> RunIndex:
    index: RunIndex = request.app.state.index
    return index


def not_found(request: Request, message: str) -> Response:
    """Return the 404 page saying what was not found."""
    return page(request, "error.html", status=404, title="Not found", message=message)


def runs_list(request: Request) -> Response:
    """The run list: filters (task, method, dataset, status, source, name) and sorting."""
    runs = _index(request).all()
    query = {k: v for k, v in request.query_params.items() if v}
    choices = {key: sorted({getattr(r, key) for r in runs if getattr(r, key)}) for key in FILTERS}
    shown = filter_runs(runs, query)
    return page(
        request,
        "runs.html",
        title="Runs",
        runs=shown,
        total=len(runs),
        query=query,
        choices=choices,
        sort_keys=SORT_KEYS,
    )


def curves(details_or_path: RunDetails | Path, training: dict[str, Any]) -> dict[str, Any]:
    """Return the loss chart and the dev-metric chart of one run."""
    path = (
        details_or_path.summary.path if isinstance(details_or_path, RunDetails) else details_or_path
    )
    history = read_history(path, training)
    loss = charts.line_chart("Training loss", "optimizer step", "loss", [("loss", history["loss"])])
    names = [m for m in DEV_METRICS if any(m in d for _, d in history["dev"])]
    dev = charts.line_chart(
        "Dev metrics",
        "optimizer step",
        "value",
        [(f"dev {m}", [(s, d.get(m)) for s, d in history["dev"]]) for m in names],
    )
    return {"loss": loss, "dev": dev}


def run_page(request: Request) -> Response:
    """A run: recipe, data report, curves, confusion, calibration, per class, card, lineage, hashes."""
    ref = request.path_params["ref"]
    try:
        details = run_details(_index(request), ref)
    except UnknownRunError as exc:
        return not_found(request, str(exc))
    test = details.test
    matrix = test.get("confusion_matrix") or []
    return page(
        request,
        "run.html",
        title=details.summary.name,
        run=details,
        charts=curves(details, details.training),
        confusion=charts.confusion_cells(matrix) if matrix else [],
        labels=test.get("labels") or details.data_report.get("labels") or [],
        reliability=charts.reliability(test["reliability"]) if test.get("reliability") else None,
    )


def run_history(request: Request) -> Response:
    """The run's curves as JSON, polled by the run page while the run trains."""
    ref = request.path_params["ref"]
    try:
        summary = _index(request).summary(ref)
    except UnknownRunError as exc:
        return JSONResponse({"error": str(exc)}, status_code=404)
    metrics = read_json(summary.path / "metrics.json") or {}
    training = metrics.get("training", {}) if isinstance(metrics, dict) else {}
    return JSONResponse({"status": summary.status, **curves(summary.path, training)})


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


def recipe_diff(recipes: list[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    """Return the dotted recipe keys whose values differ between the runs, with each value."""
    flat = [_flatten(r) for r in recipes]
    keys = sorted({k for f in flat for k in f})
    rows = []
    for key in keys:
        values = [f.get(key) for f in flat]
        if any(v != values[0] for v in values[1:]):
            rows.append((key, values))
    return rows


COMPARED = ("accuracy", "macro_f1", "weighted_f1", "ece", "log_loss", "latency_p50_ms")


def compare_page(request: Request) -> Response:
    """Two or more runs side by side: metrics table, overlaid curves and the recipe diff."""
    refs = [r for r in request.query_params.getlist("run") if r]
    index = _index(request)
    if len(refs) < 2:
        return page(
            request, "compare.html", title="Compare runs", runs=[], choices=index.all(), refs=refs
        )
    try:
        runs = [run_details(index, ref) for ref in refs]
    except UnknownRunError as exc:
        return not_found(request, str(exc))
    histories = [read_history(r.summary.path, r.training) for r in runs]
    names = [r.summary.ref for r in runs]
    loss = charts.line_chart(
        "Training loss",
        "optimizer step",
        "loss",
        list(zip(names, [h["loss"] for h in histories], strict=True)),
    )
    dev = charts.line_chart(
        "Dev macro-F1",
        "optimizer step",
        "macro-F1",
        [
            (n, [(s, d.get("macro_f1")) for s, d in h["dev"]])
            for n, h in zip(names, histories, strict=True)
        ],
    )
    return page(
        request,
        "compare.html",
        title="Compare runs",
        runs=runs,
        refs=refs,
        choices=index.all(),
        compared=COMPARED,
        charts={"loss": loss, "dev": dev},
        diff=recipe_diff([r.recipe for r in runs]),
    )


def compression_page(request: Request) -> Response:
    """A run's compressed variants on accuracy / latency and accuracy / size Pareto charts."""
    ref = request.path_params["ref"]
    index = _index(request)
    try:
        summary = index.summary(ref)
    except UnknownRunError as exc:
        return not_found(request, str(exc))
    folder = summary.path.parent / f"{summary.path.name}{COMPRESSED_SUFFIX}"
    report = read_json(folder / "report.json")
    if not isinstance(report, dict):
        return not_found(request, f"{summary.name} has no compression report ({folder})")
    points = []
    for row in report.get("variants", []):
        variant_ref = index.ref_of(Path(row.get("path", "")))
        points.append({**row, "href": variant_ref})
    return page(
        request,
        "compression.html",
        title=f"Compression of {summary.name}",
        run=summary,
        report=report,
        rows=points,
        latency=charts.scatter(
            points, "latency_p50_ms", "accuracy", "p50 latency at batch 1 (ms)", "accuracy"
        ),
        size=charts.scatter(points, "size_mb", "accuracy", "size (MiB)", "accuracy"),
    )
