"""Label quality and active learning in the page: review an audit's suspected label errors
(accept, reject, relabel, undo) and label the next active-learning batch.

Every write goes through `modelyard.api.relabel` / `undo_label` (a file lock, a check that the
row still shows what the person saw, an atomic write and a log line), so two people
labelling at once lose nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from modelyard import api
from modelyard.curation.active import STRATEGIES
from modelyard.curation.relabel import LabelChange, LabelConflictError, locked, read_log, standing
from modelyard.data.load import read_table
from modelyard.errors import ModelyardError
from modelyard.recipe import DataConfig
from modelyard.ui.pages import not_found
from modelyard.ui.render import base_url, page
from modelyard.ui.runs import RunIndex, UnknownRunError, is_run_dir, run_recipe
from modelyard.ui.settings import UiSettings

POOL_SUFFIXES = (".csv", ".tsv", ".jsonl")
REVIEW_LOG = "review.jsonl"


def _settings(request: Request) -> UiSettings:
    settings: UiSettings = request.app.state.settings
    return settings


def _who(request: Request) -> str:
    return str(request.scope["state"]["session"].who)


def _safe_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and not name.startswith(".")


@dataclass
class Audit:
    """One audit folder: its suspected label errors and the decisions taken on them."""

    name: str
    folder: Path
    issues: pd.DataFrame
    columns: tuple[str, str]

    @property
    def log(self) -> Path:
        """Return the review log beside the audit's files."""
        return self.folder / REVIEW_LOG


def _columns(settings: UiSettings, name: str) -> tuple[str, str]:
    recipe = run_recipe(settings.runs / name)
    data = recipe.data if recipe else DataConfig.model_construct()  # the schema's defaults
    return data.text_column, data.label_column


def load_audit(settings: UiSettings, name: str) -> Audit | None:
    """Return the audit `name` under the audits folder, or None when there is none."""
    folder = settings.audits / name
    if not _safe_name(name) or not (folder / "label_issues.csv").is_file():
        return None
    issues = pd.read_csv(folder / "label_issues.csv", dtype=str, keep_default_na=False)
    return Audit(name, folder, issues, _columns(settings, name))


def audits(settings: UiSettings) -> list[dict[str, Any]]:
    """Return each audit's name, its number of issues and how many have a decision."""
    found = []
    if settings.audits.is_dir():
        for folder in sorted(settings.audits.iterdir()):
            audit = load_audit(settings, folder.name)
            if audit is not None:
                decided = len(standing(read_log(audit.log)))
                found.append({"name": audit.name, "issues": len(audit.issues), "decided": decided})
    return found


def _current_labels(audit: Audit) -> dict[tuple[str, int], str]:
    labels: dict[tuple[str, int], str] = {}
    for file in sorted(set(audit.issues["file"])):
        try:
            table = read_table(Path(file))
        except ModelyardError:
            continue
        column = audit.columns[1]
        if column in table.columns:
            for i, value in enumerate(table[column].tolist(), start=1):
                labels[(file, i)] = str(value)
    return labels


def issue_rows(audit: Audit) -> tuple[list[dict[Any, Any]], list[str]]:
    """Return the audit's issues with each row's label now and its standing decision, and
    every label seen (the choices for relabelling)."""
    decisions = standing(read_log(audit.log))
    current = _current_labels(audit)
    rows = []
    for i, issue in enumerate(audit.issues.to_dict("records")):
        key = (issue["file"], int(issue["row"]))
        rows.append(
            {"index": i, **issue, "current": current.get(key), "decision": decisions.get(key)}
        )
    labels = (
        set(current.values())
        | set(audit.issues["given_label"])
        | set(audit.issues["suggested_label"])
    )
    return rows, sorted(label for label in labels if label)


async def labels_page(request: Request) -> Response:
    """Audits to review, labelling batches, and the form that makes the next batch."""
    settings = _settings(request)
    index: RunIndex = request.app.state.index
    runs = [r for r in index.all() if r.status == "finished" and r.source == "runs"]
    return page(
        request,
        "labels.html",
        title="Labels",
        audits=audits(settings),
        batches=batches(settings),
        runs=runs,
        pools=pools(settings),
        strategies=STRATEGIES.names(),
        message=request.query_params.get("message"),
    )


async def audit_page(request: Request) -> Response:
    """An audit's suspected label errors with the suggested labels and the decisions taken."""
    audit = load_audit(_settings(request), request.path_params["name"])
    if audit is None:
        return not_found(request, f"no audit '{request.path_params['name']}'")
    rows, labels = await run_in_threadpool(issue_rows, audit)
    return page(
        request, "audit.html", title=f"Audit {audit.name}", audit=audit, rows=rows, labels=labels,
        message=request.query_params.get("message"),
    )  # fmt: skip


async def decide(request: Request) -> Response:
    """Accept, reject or relabel one suspected error; answer with its row re-rendered."""
    audit = load_audit(_settings(request), request.path_params["name"])
    if audit is None:
        return not_found(request, f"no audit '{request.path_params['name']}'")
    form = await request.form()
    try:
        issue = audit.issues.iloc[int(str(form.get("issue", "")))].to_dict()
    except (ValueError, IndexError):
        return page(request, "error.html", 400, title="Bad request", message="unknown issue")
    action = str(form.get("action", ""))
    expected = str(form.get("expected", ""))
    new = {"accept": issue["suggested_label"], "reject": expected}.get(
        action, str(form.get("label", ""))
    )
    status, error = 200, None
    try:
        await run_in_threadpool(
            api.relabel, Path(issue["file"]), int(issue["row"]), issue["text"], expected, new,
            audit.log, _who(request), action, *audit.columns,
        )  # fmt: skip
    except LabelConflictError as exc:
        status, error = 409, str(exc)
    except ModelyardError as exc:
        status, error = 400, str(exc)
    if not request.headers.get("hx-request"):
        return _back(request, f"/labels/audit/{audit.name}", error)
    rows, labels = await run_in_threadpool(issue_rows, audit)
    row = rows[int(str(form["issue"]))]
    return page(
        request, "_issue_row.html", status, row=row, audit=audit, labels=labels, error=error
    )


def _back(request: Request, path: str, message: str | None) -> Response:
    from urllib.parse import quote

    url = base_url(request) + path + (f"?message={quote(message)}" if message else "")
    return RedirectResponse(url, status_code=303)


async def undo(request: Request) -> Response:
    """Undo the latest decision of an audit (or a batch's latest label)."""
    settings = _settings(request)
    if "name" in request.path_params:
        audit = load_audit(settings, request.path_params["name"])
        if audit is None:
            return not_found(request, f"no audit '{request.path_params['name']}'")
        log, back, columns = audit.log, f"/labels/audit/{audit.name}", audit.columns
    else:
        batch = _batch(settings, request)
        if batch is None:
            return not_found(request, "no such labelling batch")
        log, back, columns = _batch_log(batch), _batch_url(settings, batch), ("text", "label")
    try:
        change: LabelChange = await run_in_threadpool(api.undo_label, log, _who(request), *columns)
        message = f"undone: row {change.row} is {change.new!r} again"
    except ModelyardError as exc:
        message = str(exc)
    return _back(request, back, message)


def pools(settings: UiSettings) -> list[str]:
    """Return the data files of the data folder that can be pools, by name."""
    if not settings.data.is_dir():
        return []
    return sorted(
        p.name for p in settings.data.iterdir() if p.is_file() and p.suffix.lower() in POOL_SUFFIXES
    )


def batches(settings: UiSettings) -> list[dict[str, Any]]:
    """Return each labelling batch: its run folder name, file name, rows and rows labelled."""
    found = []
    if settings.labeling.is_dir():
        for path in sorted(settings.labeling.glob("*/*.csv")):
            table = read_table(path)
            done = int(table["label"].str.strip().ne("").sum()) if "label" in table else 0
            found.append({"run": path.parent.name, "file": path.name, "rows": len(table),
                          "labelled": done, "url": _batch_url(settings, path)})  # fmt: skip
    return found


def _batch_url(settings: UiSettings, path: Path) -> str:
    return f"/labels/batch/{path.parent.name}/{path.name}"


def _batch(settings: UiSettings, request: Request) -> Path | None:
    run, file = request.path_params["run"], request.path_params["file"]
    path = settings.labeling / run / file
    ok = _safe_name(run) and _safe_name(file) and file.endswith(".csv")
    return path if ok and path.is_file() else None


def _batch_log(batch: Path) -> Path:
    return batch.with_name(f".{batch.stem}.review.jsonl")


async def new_batch(request: Request) -> Response:
    """Pick the next rows to label from a pool with a run and a strategy; write them as a batch."""
    settings = _settings(request)
    index: RunIndex = request.app.state.index
    form = await request.form()
    pool, ref = str(form.get("pool", "")), str(form.get("run", ""))
    try:
        if pool not in pools(settings):
            raise ModelyardError(f"no pool file '{pool}' in {settings.data}")
        run = index.resolve(ref)
        output = settings.labeling / run.name / f"batch-{time.strftime('%Y%m%d-%H%M%S')}.csv"
        k = max(1, min(int(str(form.get("k", "20"))), 500))
        strategy = str(form.get("strategy", "margin"))
        batch = await run_in_threadpool(
            api.label_next, run, settings.data / pool, output, k, strategy
        )
    except (ValueError, UnknownRunError, ModelyardError) as exc:
        return _back(request, "/labels", str(exc))
    return _back(request, _batch_url(settings, Path(batch.path)), f"{batch.picked} rows to label")


async def batch_page(request: Request) -> Response:
    """The rows of a batch with the model's guess and a label to choose for each."""
    settings = _settings(request)
    batch = _batch(settings, request)
    if batch is None:
        return not_found(request, "no such labelling batch")
    table = await run_in_threadpool(read_table, batch)
    run_dir = settings.runs / batch.parent.name
    labels = _run_labels(run_dir) or sorted(set(table.get("predicted_label", [])))
    rows = [{"row": i, **r} for i, r in enumerate(table.to_dict("records"), start=1)]
    return page(
        request, "batch.html", title=f"Label {batch.name}", batch=batch, rows=rows, labels=labels,
        url=_batch_url(settings, batch), train=_train_file(run_dir),
        message=request.query_params.get("message"),
    )  # fmt: skip


def _run_labels(run_dir: Path) -> list[str]:
    from modelyard.ui.runs import read_json

    labels = read_json(run_dir / "labels.json") if is_run_dir(run_dir) else None
    return [str(x) for x in labels] if isinstance(labels, list) else []


def _train_file(run_dir: Path) -> Path | None:
    recipe = run_recipe(run_dir)
    source = recipe and (recipe.data.train or recipe.data.path)
    return source if source and source.is_file() else None


async def save_label(request: Request) -> Response:
    """Save one row's label into the batch file; answer with the row re-rendered."""
    settings = _settings(request)
    batch = _batch(settings, request)
    if batch is None:
        return not_found(request, "no such labelling batch")
    form = await request.form()
    status, error = 200, None
    try:
        row = int(str(form.get("row", "")))
        await run_in_threadpool(
            api.relabel, batch, row, str(form.get("text", "")), str(form.get("expected", "")),
            str(form.get("label", "")), _batch_log(batch), _who(request), "label",
        )  # fmt: skip
    except ValueError:
        return page(request, "error.html", 400, title="Bad request", message="bad row number")
    except LabelConflictError as exc:
        status, error = 409, str(exc)
    except ModelyardError as exc:
        status, error = 400, str(exc)
    if not request.headers.get("hx-request"):
        return _back(request, _batch_url(settings, batch), error)
    table = await run_in_threadpool(read_table, batch)
    record = {"row": row, **table.iloc[row - 1].to_dict()}
    labels = _run_labels(settings.runs / batch.parent.name) or sorted(set(table["label"]))
    return page(
        request, "_batch_row.html", status, r=record, labels=labels,
        url=_batch_url(settings, batch), error=error,
    )  # fmt: skip


async def import_batch(request: Request) -> Response:
    """Add the labelled rows of a batch to the run's training file (under the file's lock)."""
    settings = _settings(request)
    batch = _batch(settings, request)
    if batch is None:
        return not_found(request, "no such labelling batch")
    train = _train_file(settings.runs / batch.parent.name)
    if train is None:
        return _back(request, _batch_url(settings, batch), "the run names no training file")

    def merge() -> Any:
        with locked(batch), locked(train):
            return api.label_import(batch, train)

    try:
        result = await run_in_threadpool(merge)
        message = f"{result.added} labelled rows added to {train.name}"
    except ModelyardError as exc:
        message = str(exc)
    return _back(request, _batch_url(settings, batch), message)
