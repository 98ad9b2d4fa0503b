"""Pages that call a model: the playground (predict) and the explanation heat map."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from modelyard.errors import ModelyardError
from modelyard.ui import charts
from modelyard.ui.details import run_details
from modelyard.ui.models import ModelCache
from modelyard.ui.pages import not_found
from modelyard.ui.render import page
from modelyard.ui.runs import RunIndex, UnknownRunError

MAX_CHARS = 2000
MAX_TEXTS = 16
GRADIENT_METHODS = ("ig", "gxi")
FORWARD_METHODS = ("occlusion", "shapley")


def _cache(request: Request) -> ModelCache:
    cache: ModelCache = request.app.state.models
    return cache


def _index(request: Request) -> RunIndex:
    index: RunIndex = request.app.state.index
    return index


def explained_words(explanation: Any) -> list[dict[str, Any]]:
    """Return the text of an explanation as pieces, each word with its shade (-5..5) and score."""
    text = explanation.text
    top = max((abs(w.score) for w in explanation.words), default=0.0)
    pieces, at = [], 0
    for word in explanation.words:
        if word.start > at:
            pieces.append({"text": text[at : word.start], "level": None})
        level = charts.attribution_level(word.score, top)
        pieces.append({"text": word.word, "level": level, "score": word.score})
        at = word.end
    if at < len(text):
        pieces.append({"text": text[at:], "level": None})
    return pieces


async def explain_page(request: Request) -> Response:
    """Type a text, see its word attributions for a chosen method, and the run's faithfulness."""
    ref = request.path_params["ref"]
    try:
        details = run_details(_index(request), ref)
    except UnknownRunError as exc:
        return not_found(request, str(exc))
    text = request.query_params.get("text", "")[:MAX_CHARS]
    method = request.query_params.get("method") or None
    result, error = None, None
    methods = list(FORWARD_METHODS)
    try:
        if await run_in_threadpool(_cache(request).is_torch, details.summary.path):
            methods = [*GRADIENT_METHODS, *FORWARD_METHODS]
        if text.strip():
            result = await run_in_threadpool(
                _cache(request).explain, details.summary.path, text, method
            )
    except ModelyardError as exc:
        error = str(exc)
    context: dict[str, Any] = {
        "title": f"Explain {details.summary.name}",
        "run": details,
        "text": text,
        "method": method or (result.method if result else methods[0]),
        "methods": methods,
        "result": result,
        "pieces": explained_words(result) if result else [],
        "error": error,
    }
    template = "_explanation.html" if request.headers.get("hx-request") else "explain.html"
    return page(request, template, **context)


def ranked(record: dict[str, Any]) -> list[tuple[str, float]]:
    """Return the class probabilities of a prediction record, most likely first."""
    probs = [(k, float(v)) for k, v in record["probabilities"].items()]
    return sorted(probs, key=lambda kv: -kv[1])


def _playable(index: RunIndex) -> list[Any]:
    return [r for r in index.all() if r.status == "finished" and r.task == "classification"]


async def playground_page(request: Request) -> Response:
    """Call a model on texts (one per line) and show each prediction with its probabilities."""
    index = _index(request)
    models = _playable(index)
    chosen = request.query_params.get("model") or (models[0].ref if models else "")
    raw = request.query_params.get("text", "")[: MAX_CHARS * MAX_TEXTS]
    texts = [t for t in raw.splitlines() if t.strip()][:MAX_TEXTS]
    predictions, error = [], None
    if texts and chosen:
        try:
            path = index.resolve(chosen)
            records = await run_in_threadpool(_cache(request).predict, path, texts)
            predictions = [
                {"text": t, **r, "ranked": ranked(r)} for t, r in zip(texts, records, strict=True)
            ]
        except (UnknownRunError, ModelyardError) as exc:
            error = str(exc)
    template = "_predictions.html" if request.headers.get("hx-request") else "playground.html"
    return page(
        request,
        template,
        title="Playground",
        models=models,
        chosen=chosen,
        text=raw,
        predictions=predictions,
        error=error,
    )
