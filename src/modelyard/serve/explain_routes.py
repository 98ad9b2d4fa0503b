"""`POST /v1/explain`: word attributions over HTTP, behind the server's key, rate and size gate.

The route is mounted by `modelyard.serve.app.create_app`; the guard middleware in front of
every route checks the API key, the rate limit and the body size before this code runs.
Explanations cost tens of forward passes per text, so their cost is bounded: a request
holds at most MAX_EXPLAIN_TEXTS texts, each cut to the words the model reads, the step and
sample counts are capped, the work goes through a small queue (one at a time, a few
waiting, 503 beyond), and it stops at its next step when the deadline passes or the client
disconnects; freed memory goes back to the OS afterwards.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import Literal

import anyio
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from modelyard.errors import ModelyardError
from modelyard.explainability.api import explain
from modelyard.explainability.results import Explanation
from modelyard.serve.errors import DeadlineExceededError, InvalidRequestError, ServeError
from modelyard.serve.limits import Text, WorkQueue, check_texts, release_memory
from modelyard.serve.routes import State
from modelyard.serve.schemas import error_responses

MAX_EXPLAIN_TEXTS = 8
# explanations cost tens of forward passes each: one runs at a time, a few more may wait
EXPLAIN_RUNNING, EXPLAIN_WAITING = 1, 4

router = APIRouter()


class ExplainRequest(BaseModel):
    """Texts to explain, and how."""

    model_config = ConfigDict(extra="forbid")

    texts: list[Text] = Field(description=f"Texts to explain (at most {MAX_EXPLAIN_TEXTS}).")
    model: str | None = Field(None, description="Model name; optional when one model is served.")
    method: str | None = Field(
        None, description="ig, gxi, occlusion or shapley; default ig (occlusion for ONNX)."
    )
    steps: int | None = Field(
        None, ge=2, le=200, description="Integrated-gradients steps (default: chosen per text)."
    )
    completeness_error: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Integrated gradients' largest completeness error when steps is unset "
        "(default: the model's recipe, 0.01).",
    )
    samples: int | None = Field(None, ge=1, le=50, description="Shapley permutations.")
    target: str | None = Field(None, description="Explain this label instead of the prediction.")
    score: Literal["log-odds", "probability"] | None = Field(
        None, description="What is explained: the label's log-odds (default) or probability."
    )


class ExplainResponse(BaseModel):
    """One explanation per text, in the request's order."""

    model: str
    version: str = Field(description="The registry version that answered.")
    explanations: list[Explanation]


@router.post(
    "/v1/explain",
    response_model=ExplainResponse,
    responses=error_responses(401, 403, 404, 413, 415, 422, 429, 503, 504),
    tags=["v1"],
)
async def explain_route(body: ExplainRequest, state: State, request: Request) -> ExplainResponse:
    """Explain texts word by word: each word's attribution toward the label, and the probabilities.

    Only the words the model reads are explained (`words_cut` counts the others). The work
    waits in a small queue, stops when the deadline passes or the client disconnects.
    """
    served = state.models.get(body.model)
    settings = state.settings
    check_texts(body.texts, min(settings.max_texts, MAX_EXPLAIN_TEXTS), settings.max_chars)
    backend, version = served.backend, served.version
    cancel = threading.Event()
    work = partial(
        explain,
        backend,
        body.texts,
        body.method,
        body.steps,
        body.samples,
        body.target,
        body.score,
        cancel,
        completeness_error=body.completeness_error,
    )
    try:
        with anyio.fail_after(settings.request_timeout_s):
            explanations = await _run_until_disconnect(_queue(request), request, work, cancel)
    except TimeoutError:
        raise DeadlineExceededError(
            f"the explanation took longer than {settings.request_timeout_s} s; send fewer texts, "
            "fewer steps, or use method occlusion"
        ) from None
    except ServeError:
        raise
    except ModelyardError as exc:
        raise InvalidRequestError(str(exc)) from None
    return ExplainResponse(model=served.name, version=version, explanations=explanations)


def _queue(request: Request) -> WorkQueue:
    queue: WorkQueue | None = getattr(request.app.state, "explain_queue", None)
    if queue is None:
        queue = request.app.state.explain_queue = WorkQueue(
            EXPLAIN_RUNNING, EXPLAIN_WAITING, "explanations"
        )
    return queue


async def _run_until_disconnect(
    queue: WorkQueue,
    request: Request,
    work: Callable[[], list[Explanation]],
    cancel: threading.Event,
) -> list[Explanation]:
    """Return work() run through `queue`; set `cancel` when this task is cancelled (deadline)
    or the client disconnects first, so the worker thread stops at its next step."""
    result: list[Explanation] | None = None

    async def watch(scope: anyio.CancelScope) -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        scope.cancel()

    error: Exception | None = None
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(watch, group.cancel_scope)
            try:
                result = await queue.run(work)
            except Exception as exc:  # raised below, not wrapped in the group's ExceptionGroup
                error = exc
            group.cancel_scope.cancel()
    finally:
        cancel.set()  # a no-op once finished; else the abandoned thread stops at its next step
        release_memory()
    if error is not None:
        raise error
    if result is None:
        raise DeadlineExceededError("the client disconnected before the explanation finished")
    return result
