"""HTTP routes: `/v1` (simple JSON), `/v2` (Open Inference Protocol), `/metrics`.

Authentication, rate limits and body size are enforced before routing, in
`modelyard.serve.guard`; the handlers check the texts and call the predictors.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response
from fastapi.responses import JSONResponse

from modelyard._version import __version__
from modelyard.inference import ranked_probabilities
from modelyard.serve.engine import Prediction
from modelyard.serve.errors import NotFoundError
from modelyard.serve.limits import check_texts
from modelyard.serve.llm import ServedGenerator
from modelyard.serve.metrics import CONTENT_TYPE
from modelyard.serve.models import ServedModel
from modelyard.serve.oip import HEADER_LENGTH, encode_response, model_metadata, parse_request
from modelyard.serve.schemas import (
    EntitiesItem,
    Health,
    LabelSetItem,
    ModelInfo,
    ModelsResponse,
    OpenAIModel,
    PredictionItem,
    PredictRequest,
    PredictResponse,
    ReloadRequest,
    ReloadResponse,
    ValueItem,
    error_responses,
)
from modelyard.serve.state import ServerState
from modelyard.serve.tagging import ServedTagger

router = APIRouter()
_GUARDED = (401, 403, 413, 415, 422, 429)
_PREDICT_ERRORS = error_responses(*_GUARDED, 404, 503, 504)
INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InferRequest"}}},
    }
}


def get_state(request: Request) -> ServerState:
    """Return the server state the app was built with."""
    state: ServerState = request.app.state.serve
    return state


State = Annotated[ServerState, Depends(get_state)]


def _items(prediction: Prediction, top_k: int | None = None) -> list[PredictionItem]:
    items = []
    for row, cut in zip(prediction.probs, prediction.truncated, strict=True):
        best = int(row.argmax())
        label, score = prediction.labels[best], round(float(row[best]), 6)
        items.append(
            PredictionItem(
                predicted_label=label,
                predicted_score=score,
                probabilities=ranked_probabilities(list(prediction.labels), row, top_k),
                truncated=cut,
                label=label,
                score=score,
            )
        )
    return items


@router.post("/v1/predict", response_model=PredictResponse, responses=_PREDICT_ERRORS, tags=["v1"])
async def predict(body: PredictRequest, state: State) -> PredictResponse:
    """Classify texts: for each, the predicted label and score, the probabilities (most probable
    first, the `top_k` first when asked) and a truncation flag. A token classifier answers
    each text's entity spans (label, character offsets, text, score) instead."""
    tagger = state.models.tagger(body.model)
    check_texts(body.texts, state.settings.max_texts, state.settings.max_chars)
    if tagger is not None:
        answers = await tagger.predict(list(body.texts))
        return PredictResponse(
            model=tagger.name,
            version=tagger.version,
            predictions=_task_items(answers),
        )
    served = state.models.get(body.model)
    prediction = await served.predictor.predict(body.texts, state.settings.request_timeout_s)
    return PredictResponse(
        model=served.name, version=prediction.version, predictions=_items(prediction, body.top_k)
    )


def _task_items(answers: list[dict[str, Any]]) -> Any:
    """Return the answers of a token-classification, multi-label or regression run as items."""
    if answers and "entities" in answers[0]:
        return [EntitiesItem.model_validate(a) for a in answers]
    if answers and "value" in answers[0]:
        return [ValueItem.model_validate(a) for a in answers]
    return [LabelSetItem.model_validate(a) for a in answers]


def _info(served: ServedModel) -> ModelInfo:
    backend = served.backend
    return ModelInfo(
        name=served.name,
        version=served.version,
        reference=str(served.ref),
        labels=list(backend.labels),
        backend=backend.name,
        queue_depth=served.predictor.depth,
    )


@router.get(
    "/v1/models", response_model=ModelsResponse, responses=error_responses(*_GUARDED), tags=["v1"]
)
async def list_models(state: State) -> ModelsResponse:
    """List the served models: version, labels and queue depth; OpenAI's list under `data`."""
    infos = [_info(m) for m in state.models.models.values()]
    infos += [_generator_info(g) for g in state.models.generators.values()]
    infos += [_tagger_info(t) for t in state.models.taggers.values()]
    data = [OpenAIModel(id=m.name, created=state.created) for m in state.models.models.values()]
    data += [OpenAIModel(id=g.name, created=g.created) for g in state.models.generators.values()]
    return ModelsResponse(models=infos, data=data)


def _tagger_info(served: ServedTagger) -> ModelInfo:
    return ModelInfo(
        name=served.name,
        version=served.version,
        reference=str(served.ref),
        labels=served.labels,
        backend="torch",
        queue_depth=0,
        kind=served.task,
    )


def _generator_info(served: ServedGenerator) -> ModelInfo:
    return ModelInfo(
        name=served.name,
        version=served.version,
        reference=str(served.ref),
        labels=[],
        backend="generation",
        queue_depth=served.engine.waiting,
        kind="generation",
    )


@router.post(
    "/v1/admin/models/{name}/reload",
    response_model=ReloadResponse,
    responses=error_responses(*_GUARDED, 404, 409),
    tags=["admin"],
)
async def reload_model(
    name: str, state: State, body: Annotated[ReloadRequest | None, Body()] = None
) -> ReloadResponse:
    """Hot-swap a model to another registry version (admin key); requests in flight are kept."""
    swap = await state.models.reload(name, body.version if body else None)
    return ReloadResponse(
        name=swap.name, previous_version=swap.previous, version=swap.version, changed=swap.changed
    )


@router.get(
    "/v2/health/live", response_model=Health, response_model_exclude_none=True, tags=["health"]
)
async def live() -> Health:
    """Liveness: the process answers (no key needed)."""
    return Health(live=True)


@router.get(
    "/v2/health/ready",
    response_model=Health,
    response_model_exclude_none=True,
    responses={503: {"model": Health}},
    tags=["health"],
)
async def ready(state: State) -> Any:
    """Readiness: models are loaded and the server is not shutting down (no key needed)."""
    if state.ready:
        return Health(ready=True)
    return JSONResponse({"ready": False}, status_code=503)


@router.get("/v2", responses=error_responses(*_GUARDED), tags=["v2"])
async def server_metadata() -> dict[str, Any]:
    """Server metadata of the Open Inference Protocol."""
    return {"name": "modelyard", "version": __version__, "extensions": ["binary_tensor_data"]}


def _served_version(state: ServerState, name: str, version: str | None) -> ServedModel:
    served = state.models.get(name)
    if version is not None and version != served.version:
        raise NotFoundError(
            f"model '{name}' version {version} is not served; version {served.version} is"
        )
    return served


_META = error_responses(*_GUARDED, 404)
_METRICS_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"content": {CONTENT_TYPE: {}}}}
_METRICS_RESPONSES |= error_responses(*_GUARDED)
_INFER_ERRORS = _PREDICT_ERRORS | error_responses(400)


def _metadata(state: ServerState, name: str, version: str | None) -> dict[str, Any]:
    served = _served_version(state, name, version)
    backend = served.backend
    return model_metadata(
        served.name, served.version, f"modelyard-{backend.name}", list(backend.labels)
    )


@router.get("/v2/models/{name}", responses=_META, tags=["v2"])
async def v2_metadata(name: str, state: State) -> dict[str, Any]:
    """Model metadata: versions, platform, input and output tensors, label order."""
    return _metadata(state, name, None)


@router.get("/v2/models/{name}/versions/{version}", responses=_META, tags=["v2"])
async def v2_version_metadata(name: str, version: str, state: State) -> dict[str, Any]:
    """Metadata of one version of a model (404 unless it is the version being served)."""
    return _metadata(state, name, version)


def _model_ready(state: ServerState, name: str, version: str | None) -> Any:
    _served_version(state, name, version)
    return (
        JSONResponse({"ready": True})
        if state.ready
        else JSONResponse({"ready": False}, status_code=503)
    )


@router.get("/v2/models/{name}/ready", responses=_META, tags=["v2"])
async def v2_model_ready(name: str, state: State) -> Any:
    """Model readiness: 200 when the model answers requests, 503 while shutting down."""
    return _model_ready(state, name, None)


@router.get("/v2/models/{name}/versions/{version}/ready", responses=_META, tags=["v2"])
async def v2_version_ready(name: str, version: str, state: State) -> Any:
    """Readiness of one version of a model."""
    return _model_ready(state, name, version)


async def _infer(state: ServerState, name: str, version: str | None, request: Request) -> Response:
    served = _served_version(state, name, version)
    settings = state.settings
    infer, texts = parse_request(
        await request.body(), request.headers.get(HEADER_LENGTH), settings.max_texts
    )
    check_texts(texts, settings.max_texts, settings.max_chars)
    prediction = await served.predictor.predict(texts, settings.request_timeout_s)
    content, header_length = encode_response(served.name, prediction.version, infer, prediction)
    if header_length is None:
        return Response(content, media_type="application/json")
    return Response(
        content, media_type="application/octet-stream", headers={HEADER_LENGTH: str(header_length)}
    )


@router.post(
    "/v2/models/{name}/infer", responses=_INFER_ERRORS, openapi_extra=INFER_BODY, tags=["v2"]
)
async def v2_infer(name: str, request: Request, state: State) -> Response:
    """Inference with a BYTES `text` input, in JSON or with binary tensor data (tritonclient)."""
    return await _infer(state, name, None, request)


@router.post(
    "/v2/models/{name}/versions/{version}/infer",
    responses=_INFER_ERRORS,
    openapi_extra=INFER_BODY,
    tags=["v2"],
)
async def v2_version_infer(name: str, version: str, request: Request, state: State) -> Response:
    """Inference on one version of a model (404 unless it is the version being served)."""
    return await _infer(state, name, version, request)


@router.get(
    "/metrics",
    response_class=Response,
    responses=_METRICS_RESPONSES,
    tags=["operations"],
)
async def metrics(state: State) -> Response:
    """Prometheus metrics: requests, latency, batch sizes, queue depth, errors by status."""
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)
