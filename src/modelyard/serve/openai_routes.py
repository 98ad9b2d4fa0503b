"""OpenAI-compatible generation routes: `/v1/chat/completions` and `/v1/completions`.

Both take OpenAI's request bodies and answer in OpenAI's shapes, whole or streamed as
server-sent events (`data: {chunk}` ... `data: [DONE]`), so the `openai` client works
unchanged. The guard rails are the server's: API keys and request rate in the guard
middleware; here the token budget (per-key tokens/s), `max_tokens` and context bounds,
the engine's bounded queue, a deadline that stops generation, and cancellation when the
client goes away.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from modelyard.generation.engine import (
    CANCELLED,
    ERROR,
    TIMEOUT,
    ContextLengthError,
    Delta,
    EngineBusyError,
    GenerationRequest,
    Sequence,
)
from modelyard.serve.errors import (
    BadRequestError,
    DeadlineExceededError,
    OverloadedError,
    ServeError,
)
from modelyard.serve.guard import OPENAI_PATHS, error_body
from modelyard.serve.llm import ServedGenerator
from modelyard.serve.openai_schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    _Sampling,
    usage,
)
from modelyard.serve.schemas import error_responses
from modelyard.serve.state import ServerState

router = APIRouter()
_ERRORS = error_responses(400, 401, 403, 404, 413, 429, 503, 504)
_DISCONNECT_POLL_S = 0.25


class ContextLengthExceededError(BadRequestError):
    """The prompt plus max_tokens do not fit the model's context."""

    code = "context_length_exceeded"


@dataclass
class _Job:
    """The sequences of one request (prompts x n), and what is known about the caller."""

    served: ServedGenerator
    prompt_tokens: int
    budget: int
    caller: str
    sequences: list[Sequence] = field(default_factory=list)
    generated: int | None = None

    def cancel(self) -> None:
        for seq in self.sequences:
            seq.cancel()


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.serve
    return state


def _caller(request: Request) -> str:
    key = getattr(request.state, "api_key", None)
    if key is not None:
        return f"key:{key.id}"
    return f"addr:{request.client.host if request.client else '?'}"


def _budget(state: ServerState, served: ServedGenerator, body: _Sampling, longest: int) -> int:
    cap = state.settings.max_new_tokens
    asked = body.requested_tokens()
    if asked is not None and asked > cap:
        raise BadRequestError(
            f"max_tokens is {asked}, but this server generates at most {cap} tokens per answer; "
            "ask for fewer"
        )
    room = served.engine.max_context - longest
    budget = asked if asked is not None else max(1, min(cap, room))
    try:
        served.engine.check_fits(longest, budget)
    except ContextLengthError as exc:
        raise ContextLengthExceededError(str(exc)) from None
    return budget


def _start(
    state: ServerState,
    request: Request,
    served: ServedGenerator,
    prompts: list[list[int]],
    body: _Sampling,
) -> _Job:
    """Check the budget, charge the caller's token bucket and queue every sequence."""
    budget = _budget(state, served, body, max(map(len, prompts)))
    prompt_tokens = sum(map(len, prompts))
    job = _Job(served, prompt_tokens, budget, _caller(request))
    state.token_limiter.check(job.caller, cost=prompt_tokens + budget * body.n * len(prompts))
    state.metrics.generation.prompt_tokens.labels(served.name).inc(prompt_tokens)
    deadline = time.monotonic() + state.settings.generation_timeout_s
    try:
        for prompt in prompts:
            for i in range(body.n):
                seed = None if body.seed is None else body.seed + i
                job.sequences.append(
                    served.engine.submit(
                        GenerationRequest(
                            prompt,
                            budget,
                            body.temperature,
                            body.top_p,
                            seed,
                            body.stops(),
                            deadline,
                        )
                    )
                )
    except EngineBusyError as exc:
        job.cancel()
        _finish(state, job)
        raise OverloadedError(str(exc)) from None
    return job


def _finish(state: ServerState, job: _Job) -> int:
    """Record the job's metrics and give back the tokens reserved but not generated (once);
    return the completion tokens."""
    if job.generated is not None:
        return job.generated
    metrics = state.metrics.generation
    generated = 0
    for seq in job.sequences:
        if seq.first_token_at is not None:
            metrics.ttft.labels(job.served.name).observe(seq.first_token_at - seq.submitted)
        generated += seq.generated
        metrics.finished.labels(job.served.name, seq.finish_reason or CANCELLED).inc()
    reserved = job.budget * len(job.sequences)
    state.token_limiter.refund(job.caller, reserved - generated)
    job.generated = generated
    return generated


async def _merged(job: _Job) -> AsyncIterator[tuple[int, Delta]]:
    """Yield (sequence index, delta) from all of the job's sequences as they arrive."""
    if len(job.sequences) == 1:
        async for delta in job.sequences[0].stream():
            yield 0, delta
        return
    out: asyncio.Queue[tuple[int, Delta] | None] = asyncio.Queue()

    async def pump(index: int, seq: Sequence) -> None:
        async for delta in seq.stream():
            await out.put((index, delta))
        await out.put(None)

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(job.sequences)]
    try:
        left = len(tasks)
        while left:
            item = await out.get()
            if item is None:
                left -= 1
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()


def _raise_for(reason: str | None) -> None:
    if reason == TIMEOUT:
        raise DeadlineExceededError(
            "generation did not finish within the server's generation_timeout_s; "
            "ask for fewer tokens or retry later"
        )
    if reason == CANCELLED:
        raise OverloadedError("the server is shutting down; retry on another instance")
    if reason == ERROR:
        raise ServeError("generation failed on the server (details in its log)")


async def _watch_disconnect(request: Request, job: _Job) -> None:
    while not await request.is_disconnected():
        await asyncio.sleep(_DISCONNECT_POLL_S)
    job.cancel()


async def _collect(request: Request, job: _Job) -> tuple[list[str], list[str]]:
    """Return every sequence's text and finish reason; cancel them if the client leaves."""
    texts = [""] * len(job.sequences)
    reasons = [""] * len(job.sequences)
    watcher = asyncio.create_task(_watch_disconnect(request, job))
    try:
        async for index, delta in _merged(job):
            texts[index] += delta.text
            if delta.finish_reason is not None:
                reasons[index] = delta.finish_reason
    finally:
        watcher.cancel()
        job.cancel()
    for reason in reasons:
        _raise_for(reason)
    return texts, reasons


def _sse(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


def _stream(
    state: ServerState,
    job: _Job,
    first: Callable[[int], dict[str, Any]] | None,
    chunk: Callable[[int, str, str | None], dict[str, Any]],
    tail: Callable[[int], dict[str, Any]] | None,
) -> StreamingResponse:
    """Return the SSE response of a job: `first` chunks, then text chunks, `tail`, [DONE]."""

    async def events() -> AsyncIterator[bytes]:
        try:
            if first is not None:
                for index in range(len(job.sequences)):
                    yield _sse(first(index))
            async for index, delta in _merged(job):
                reason = delta.finish_reason
                if reason in (TIMEOUT, CANCELLED, ERROR):
                    yield _sse(_stream_error(reason))
                    return
                if delta.text or reason is not None:
                    yield _sse(chunk(index, delta.text, reason))
            if tail is not None:
                yield _sse(tail(_finish(state, job)))
            yield _sse("[DONE]")
        finally:
            # the client left (the task is cancelled) or the stream ended: free the slots
            job.cancel()
            _finish(state, job)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


def _stream_error(reason: str | None) -> dict[str, Any]:
    try:
        _raise_for(reason)
    except ServeError as exc:
        return error_body(str(exc), exc.code, exc.status, OPENAI_PATHS[0])
    return error_body("generation ended early", "internal", 500, OPENAI_PATHS[0])


def _identity(prefix: str, served: ServedGenerator) -> dict[str, Any]:
    return {"id": f"{prefix}-{uuid.uuid4().hex}", "created": int(time.time()), "model": served.name}


@router.post("/v1/chat/completions", responses=_ERRORS, tags=["openai"])
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
    """Answer a conversation (OpenAI's chat completions), whole or streamed."""
    state = _state(request)
    served = state.models.generator(body.model)
    prompt = served.chat_prompt(body.conversation())
    job = _start(state, request, served, [prompt], body)
    head = {**_identity("chatcmpl", served)}
    if body.stream:
        chunk_head = {**head, "object": "chat.completion.chunk"}

        def first(index: int) -> dict[str, Any]:
            delta = {"role": "assistant", "content": ""}
            return {**chunk_head, "choices": [_chat_choice(index, delta, None)]}

        def chunk(index: int, text: str, reason: str | None) -> dict[str, Any]:
            delta = {"content": text} if text else {}
            return {**chunk_head, "choices": [_chat_choice(index, delta, reason)]}

        def tail(generated: int) -> dict[str, Any]:
            return {**chunk_head, "choices": [], "usage": usage(job.prompt_tokens, generated)}

        return _stream(state, job, first, chunk, tail if body.include_usage else None)
    try:
        texts, reasons = await _collect(request, job)
    finally:
        generated = _finish(state, job)
    choices = [
        {
            "index": i,
            "message": {"role": "assistant", "content": text},
            "logprobs": None,
            "finish_reason": reason,
        }
        for i, (text, reason) in enumerate(zip(texts, reasons, strict=True))
    ]
    return JSONResponse(
        {
            **head,
            "object": "chat.completion",
            "choices": choices,
            "usage": usage(job.prompt_tokens, generated),
        }
    )


def _chat_choice(index: int, delta: dict[str, str], reason: str | None) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": reason}


@router.post("/v1/completions", responses=_ERRORS, tags=["openai"])
async def completions(body: CompletionRequest, request: Request) -> Response:
    """Continue plain-text prompts (OpenAI's legacy completions), whole or streamed."""
    state = _state(request)
    served = state.models.generator(body.model)
    prompts = [served.encode(p) for p in body.prompts()]
    if not prompts or not all(prompts):
        raise BadRequestError("every prompt needs at least one token; send a non-empty prompt")
    job = _start(state, request, served, prompts, body)
    head = {**_identity("cmpl", served), "object": "text_completion"}
    if body.stream:

        def chunk(index: int, text: str, reason: str | None) -> dict[str, Any]:
            choice = {"index": index, "text": text, "logprobs": None, "finish_reason": reason}
            return {**head, "choices": [choice]}

        def tail(generated: int) -> dict[str, Any]:
            return {**head, "choices": [], "usage": usage(job.prompt_tokens, generated)}

        return _stream(state, job, None, chunk, tail if body.include_usage else None)
    try:
        texts, reasons = await _collect(request, job)
    finally:
        generated = _finish(state, job)
    choices = [
        {"index": i, "text": text, "logprobs": None, "finish_reason": reason}
        for i, (text, reason) in enumerate(zip(texts, reasons, strict=True))
    ]
    return JSONResponse({**head, "choices": choices, "usage": usage(job.prompt_tokens, generated)})
