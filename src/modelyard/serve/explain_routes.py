"""`POST /v1/explain`: word attributions over HTTP, behind the server's key, rate and size gate.

The route is mounted by `modelyard.serve.app.create_app`; the guard middleware in front of
every route checks the API key, the rate limit and the body size before this code runs.
Explanations cost tens of forward passes per text, so a request holds at most
MAX_EXPLAIN_TEXTS texts, the step and sample counts are capped, and the request deadline
is checked after each text.
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import anyio
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from modelyard.errors import ModelyardError
from modelyard.explainability.api import explain
from modelyard.explainability.results import Explanation
from modelyard.serve.errors import DeadlineExceededError, InvalidRequestError, ServeError
from modelyard.serve.limits import Text, check_texts
from modelyard.serve.routes import State
from modelyard.serve.schemas import error_responses

MAX_EXPLAIN_TEXTS = 8

router = APIRouter()


class ExplainRequest(BaseModel):
    """Texts to explain, and how."""

    model_config = ConfigDict(extra="forbid")

    texts: list[Text] = Field(description=f"Texts to explain (at most {MAX_EXPLAIN_TEXTS}).")
    model: str | None = Field(None, description="Model name; optional when one model is served.")
    method: str | None = Field(
        None, description="ig, gxi, occlusion or shapley; default ig (occlusion for ONNX)."
    )
    steps: int | None = Field(None, ge=2, le=200, description="Integrated-gradients steps.")
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
    responses=error_responses(401, 403, 404, 413, 415, 422, 429, 504),
    tags=["v1"],
)
async def explain_route(body: ExplainRequest, state: State) -> ExplainResponse:
    """Explain texts word by word: each word's attribution toward the label, and the probabilities."""
    served = state.models.get(body.model)
    settings = state.settings
    check_texts(body.texts, min(settings.max_texts, MAX_EXPLAIN_TEXTS), settings.max_chars)
    backend, version = served.backend, served.version
    explanations: list[Explanation] = []
    try:
        # one text per worker call: the deadline is checked between texts, and no thread is
        # left computing after the answer (a cancelled call waits for its thread to return)
        with anyio.fail_after(settings.request_timeout_s):
            for text in body.texts:
                work = partial(
                    explain,
                    backend,
                    text,
                    body.method,
                    body.steps,
                    body.samples,
                    body.target,
                    body.score,
                )
                explanations += await anyio.to_thread.run_sync(work)
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
