"""A generation engine with iteration-level (continuous) batching over a KV cache.

One worker thread owns the model. Every iteration it admits waiting requests into free
slots, prefills at most `prefill_chunk_tokens` prompt tokens of the admitted ones, then runs
one decode step for every active sequence at once. Short prompts are prefilled packed: whole
prompts end to end in one row, each attending only to itself, so no padding is computed
(left-padding a 425-token prompt with 40-token ones made most of a prefill padding); a
prompt longer than the chunk is prefilled alone, a chunk per iteration. A prompt joins the
running batch as soon as its prefill ends. A request therefore joins the running batch
between two decode steps instead of waiting for the longest sequence to finish, a long
prompt delays the running sequences by one chunk per step rather than by its whole
prefill, and a finished, cancelled or timed-out sequence leaves its slot at once. Where each millisecond of a step goes is measured in
docs/llm.md ("Engine profile").

The batch's cache is a transformers `DynamicCache` whose rows are left-padded to a common
length; the attention mask hides the padding and each row carries its own position ids,
so a sequence computes what it would compute alone.

transformers 5.25 ships a continuous-batching manager (`generate_batch`); on this CPU with
SmolLM2-135M it produced 2.9 tokens/s for 8 prompts where a static left-padded `generate`
produced 11.9 and one sequence alone 4.4 (paged attention falls back to slow kernels on
CPU), and it has no per-request seeds or stop strings, hence this scheduler.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.cache_utils import DynamicCache

from modelyard.errors import ModelyardError
from modelyard.generation.attention import RAGGED, use_ragged_attention
from modelyard.generation.kvcache import BatchCache, PackedPrompts
from modelyard.generation.sampling import choose_tokens
from modelyard.generation.stops import TextTracker

log = logging.getLogger("modelyard.generation")

STOP, LENGTH, CANCELLED, TIMEOUT, ERROR = "stop", "length", "cancelled", "timeout", "error"


class EngineBusyError(ModelyardError):
    """The engine's queue is full or it is shutting down; retry later."""


class ContextLengthError(ModelyardError):
    """A prompt and its token budget do not fit the model's context."""


@dataclass(frozen=True)
class GenerationRequest:
    """One sequence to generate: the prompt's token ids and how to draw its tokens.

    `temperature` 0 is greedy; `seed` None draws a fresh seed. `deadline` is a
    `time.monotonic()` value after which the sequence ends with finish reason "timeout".
    """

    prompt_ids: list[int]
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    deadline: float | None = None


@dataclass(frozen=True)
class Delta:
    """What one step produced for a sequence: new text, tokens so far, and why it ended."""

    text: str
    tokens: int
    finish_reason: str | None = None
    token_id: int | None = None


class Sequence:
    """The handle of one submitted request: iterate its deltas, or cancel it.

    Deltas are pushed by the engine thread; `deltas()` reads them in a thread, `stream()`
    in an asyncio loop. The last delta carries a finish reason.
    """

    def __init__(self, request: GenerationRequest, loop: asyncio.AbstractEventLoop | None) -> None:
        self.request = request
        self.submitted = time.monotonic()
        self.first_token_at: float | None = None
        self.generated = 0
        self.finish_reason: str | None = None
        self.cancelled = False
        self._loop = loop
        self._queue: queue.SimpleQueue[Delta] = queue.SimpleQueue()
        self._ready = asyncio.Event() if loop is not None else None

    def cancel(self) -> None:
        """Ask the engine to stop this sequence; its slot is freed before the next step."""
        self.cancelled = True

    def push(self, delta: Delta) -> None:
        """Deliver `delta` to the reader (called by the engine thread)."""
        if self.first_token_at is None and delta.tokens:
            self.first_token_at = time.monotonic()
        self.generated, self.finish_reason = delta.tokens, delta.finish_reason
        self._queue.put(delta)
        if self._loop is not None and self._ready is not None:
            try:
                self._loop.call_soon_threadsafe(self._ready.set)
            except RuntimeError:  # the loop closed: nobody is reading any more
                self.cancelled = True

    def deltas(self, timeout_s: float | None = None) -> Iterator[Delta]:
        """Yield deltas in order until the finishing one (blocking; for threads and tests)."""
        while True:
            delta = self._queue.get(timeout=timeout_s)
            yield delta
            if delta.finish_reason is not None:
                return

    async def stream(self) -> AsyncIterator[Delta]:
        """Yield deltas in order until the finishing one (in the loop `submit` was called from)."""
        assert self._ready is not None, "submit from a running event loop to stream"
        while True:
            await self._ready.wait()
            self._ready.clear()
            while not self._queue.empty():
                delta = self._queue.get_nowait()
                yield delta
                if delta.finish_reason is not None:
                    return


@dataclass
class StepStats:
    """One decode or prefill step: sequences in the batch, tokens produced, its duration."""

    kind: str
    sequences: int
    tokens: int
    seconds: float


@dataclass
class _Active:
    seq: Sequence
    tracker: TextTracker
    generator: torch.Generator | None
    generated: int = 0
    last: int = 0
    done: str | None = None


@dataclass
class _Prefill:
    """A prompt being prefilled a chunk of columns per iteration."""

    seqs: list[Sequence]
    ids: torch.Tensor
    mask: torch.Tensor
    cache: BatchCache
    done: int = 0


@dataclass
class _State:
    rows: list[_Active] = field(default_factory=list)
    cache: BatchCache | None = None
    prefill: _Prefill | None = None
    admitted: deque[Sequence] = field(default_factory=deque)


class GenerationEngine:
    """Continuous batching for one causal LM; thread-safe `submit`, bounded queue and slots."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        max_batch_size: int = 16,
        max_queue: int = 64,
        max_context: int | None = None,
        on_step: Callable[[StepStats], None] | None = None,
        max_prefill_tokens: int = 2048,
        prefill_chunk_tokens: int = 512,
    ) -> None:
        self.model, self.tokenizer = model.eval(), tokenizer
        self.max_batch_size, self.max_queue = max_batch_size, max_queue
        self.max_prefill_tokens = max_prefill_tokens
        self.prefill_chunk_tokens = prefill_chunk_tokens
        self.max_context = max_context or int(
            getattr(model.config, "max_position_embeddings", 2048)
        )
        self.on_step = on_step
        self.stop_ids = _stop_ids(tokenizer, model)
        self._cache_arg = _cache_argument(model)
        _contiguous_head_input(model)
        use_ragged_attention(model)
        # a packed prefill hands the attention a 4D boolean mask, which SDPA reads as it is
        self._packs = getattr(model.config, "_attn_implementation", None) == RAGGED
        self._waiting: deque[Sequence] = deque()
        self._state = _State()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="modelyard-generation", daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        """Return the number of requests waiting for a slot."""
        return len(self._waiting)

    @property
    def active(self) -> int:
        """Return the number of sequences being generated (or prefilled)."""
        return len(self._running())

    def check_fits(self, prompt_tokens: int, max_tokens: int) -> None:
        """Raise ContextLengthError unless the prompt plus `max_tokens` fit the model's context."""
        if prompt_tokens + max_tokens > self.max_context:
            raise ContextLengthError(
                f"the prompt has {prompt_tokens} tokens and max_tokens is {max_tokens}: "
                f"{prompt_tokens + max_tokens} in all, but the model's context holds "
                f"{self.max_context}; shorten the prompt or lower max_tokens"
            )

    def submit(self, request: GenerationRequest) -> Sequence:
        """Queue `request`; return its Sequence handle.

        Stream it with `Sequence.stream()` when called from an asyncio loop. Raises
        ContextLengthError when it cannot fit, EngineBusyError at once when the queue is
        full or the engine is closing.
        """
        if not request.prompt_ids:
            raise ContextLengthError("the prompt is empty; send at least one token")
        self.check_fits(len(request.prompt_ids), request.max_tokens)
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        seq = Sequence(request, loop)
        with self._cond:
            if self._closing:
                raise EngineBusyError("the server is shutting down; retry on another instance")
            if len(self._waiting) >= self.max_queue:
                raise EngineBusyError(
                    f"the generation queue is full ({len(self._waiting)} requests waiting, "
                    f"limit {self.max_queue}); retry later"
                )
            self._waiting.append(seq)
            self._cond.notify()
        return seq

    def close(self, timeout_s: float = 30.0) -> None:
        """Refuse new requests, finish those admitted or queued within `timeout_s`, then stop.

        Sequences still running after `timeout_s` end with finish reason "cancelled".
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            with self._cond:
                for seq in [*self._waiting, *self._running()]:
                    seq.cancel()
                self._cond.notify_all()
            self._thread.join(5.0)

    # ---- the worker thread ----

    def _running(self) -> list[Sequence]:
        prefill = self._state.prefill
        rows = [a.seq for a in self._state.rows] + list(self._state.admitted)
        return rows + (prefill.seqs if prefill is not None else [])

    def _run(self) -> None:
        with torch.inference_mode():
            while True:
                admitted = self._next_admissions()
                if admitted is None:
                    return
                try:
                    if admitted:
                        self._start_prefill(admitted)
                    if self._state.prefill is not None or self._state.admitted:
                        self._prefill_step()
                    if self._state.rows:
                        self._decode()
                except Exception:  # one bad batch must not kill the server
                    log.exception("generation failed for a batch of %d", self.active)
                    self._fail_all(admitted)

    def _next_admissions(self) -> list[Sequence] | None:
        with self._cond:
            while not self._waiting and not self._running():
                if self._closing:
                    return None
                self._cond.wait()
            now = time.monotonic()
            for seq in list(self._waiting):
                reason = _ended_early(seq, now)
                if reason is not None:
                    self._waiting.remove(seq)
                    seq.push(Delta("", 0, reason))
            if self._state.prefill is not None or self._state.admitted:
                return []  # one admission at a time: it joins the batch before the next comes
            return self._admit(self.max_batch_size - len(self._state.rows))

    def _admit(self, free: int) -> list[Sequence]:
        """Take waiting requests, oldest first, into at most `free` slots, while their
        prompts hold at most `max_prefill_tokens` tokens in all (always at least one).

        The next admission waits until these have joined the batch, so a burst of arrivals
        is prefilled a bounded group at a time and the running sequences keep advancing.
        """
        taken: list[Sequence] = []
        tokens = 0
        while self._waiting and len(taken) < free:
            tokens += len(self._waiting[0].request.prompt_ids)
            if taken and tokens > self.max_prefill_tokens:
                break
            taken.append(self._waiting.popleft())
        return taken

    def _start_prefill(self, seqs: list[Sequence]) -> None:
        self._state.admitted.extend(seqs)

    def _prefill_step(self) -> None:
        """Prefill at most `prefill_chunk_tokens` prompt tokens: the next chunk of a long
        prompt, or the next admitted prompts packed into one row (one prompt at least)."""
        if self._state.prefill is not None:
            self._prefill_chunk()
            return
        admitted = self._state.admitted
        first = admitted[0].request.prompt_ids
        if not self._packs or len(first) > self.prefill_chunk_tokens:
            seq = admitted.popleft()
            ids = torch.tensor([first])
            mask = torch.ones_like(ids)
            self._state.prefill = _Prefill([seq], ids, mask, BatchCache.empty(mask[:, :0]))
            self._prefill_chunk()
            return
        taken, tokens = [admitted.popleft()], len(first)
        while (
            admitted and tokens + len(admitted[0].request.prompt_ids) <= self.prefill_chunk_tokens
        ):
            tokens += len(admitted[0].request.prompt_ids)
            taken.append(admitted.popleft())
        self._prefill_packed(taken)

    def _prefill_packed(self, seqs: list[Sequence]) -> None:
        """Prefill whole prompts packed into one row; they join the running batch at once."""
        began = time.perf_counter()
        packed = PackedPrompts.of([s.request.prompt_ids for s in seqs])
        cache = DynamicCache()
        device = self.model.device
        out = self.model(
            input_ids=packed.ids.to(device),
            attention_mask=packed.mask.to(device),
            position_ids=packed.positions.to(device),
            use_cache=True,
            logits_to_keep=packed.last.to(device),
            **{self._cache_arg: cache},
        )
        logits = out.logits[0].cpu()
        self._join(seqs, BatchCache.from_packed(cache, packed.lengths), logits, began)

    def _prefill_chunk(self) -> None:
        """Run the next columns of the pending prefill, at most `prefill_chunk_tokens` tokens
        (one column at least); after the last, the prompt joins the running batch.

        A long prompt thus costs the running sequences one chunk per decode step instead of
        stalling them for its whole prefill.
        """
        began = time.perf_counter()
        pending = self._state.prefill
        assert pending is not None
        rows, width = pending.ids.shape
        end = min(width, pending.done + max(1, self.prefill_chunk_tokens // rows))
        pending.cache.mask = pending.mask[:, :end]
        logits = self._forward(pending.ids[:, pending.done : end], pending.cache)
        pending.done = end
        if end < width:
            self._report("prefill-chunk", rows, 0, began)
            return
        self._state.prefill = None
        self._join(pending.seqs, pending.cache, logits, began)

    def _join(
        self, seqs: list[Sequence], cache: BatchCache, logits: torch.Tensor, began: float
    ) -> None:
        rows = [
            _Active(s, TextTracker(self.tokenizer, s.request.stop), _generator(s)) for s in seqs
        ]
        self._state.cache = cache if self._state.cache is None else self._state.cache.join(cache)
        self._state.rows.extend(rows)
        self._report("prefill", len(rows), self._advance(rows, logits), began)

    def _decode(self) -> None:
        began = time.perf_counter()
        cache = self._state.cache
        assert cache is not None
        ids = torch.tensor([[row.last] for row in self._state.rows])
        cache.extend()
        logits = self._forward(ids, cache)
        size = len(self._state.rows)
        self._report("decode", size, self._advance(self._state.rows, logits), began)

    def _forward(self, ids: torch.Tensor, cache: BatchCache) -> torch.Tensor:
        width = ids.shape[1]
        out = self.model(
            input_ids=ids.to(self.model.device),
            attention_mask=cache.mask.to(self.model.device),
            position_ids=cache.positions(width).to(self.model.device),
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_arg: cache.cache},
        )
        return out.logits[:, -1, :].cpu()

    def _advance(self, rows: list[_Active], logits: torch.Tensor) -> int:
        """Choose each row's next token, deliver its text, retire the rows that ended; return
        the number of tokens chosen."""
        picks = choose_tokens(
            logits,
            [r.seq.request.temperature for r in rows],
            [r.seq.request.top_p for r in rows],
            [r.generator for r in rows],
        )
        now = time.monotonic()
        for row, token in zip(rows, picks, strict=True):
            row.last, row.generated = token, row.generated + 1
            text = "" if token in self.stop_ids else row.tracker.add(token)
            row.done = self._finish_reason(row, token, now)
            if row.done is not None and row.done != STOP:
                text += row.tracker.flush()
            row.seq.push(Delta(text, row.generated, row.done, token))
        self._retire()
        return len(picks)

    def _finish_reason(self, row: _Active, token: int, now: float) -> str | None:
        if token in self.stop_ids or row.tracker.stopped:
            return STOP
        if row.generated >= row.seq.request.max_tokens:
            return LENGTH
        return _ended_early(row.seq, now)

    def _retire(self) -> None:
        state = self._state
        now = time.monotonic()
        for row in state.rows:
            if row.done is None and (reason := _ended_early(row.seq, now)) is not None:
                row.done = reason
                row.seq.push(Delta(row.tracker.flush(), row.generated, reason))
        keep = [i for i, row in enumerate(state.rows) if row.done is None]
        if len(keep) == len(state.rows):
            return
        state.rows = [state.rows[i] for i in keep]
        if not keep:
            state.cache = None
        elif state.cache is not None:
            state.cache.select(keep)

    def _fail_all(self, admitted: list[Sequence]) -> None:
        for row in self._state.rows:
            row.seq.push(Delta("", row.generated, ERROR))
        running = {id(row.seq) for row in self._state.rows}
        prefilling = self._state.prefill.seqs if self._state.prefill is not None else []
        prefilling = [*prefilling, *self._state.admitted]
        for seq in [*prefilling, *admitted]:
            if id(seq) not in running:
                running.add(id(seq))
                seq.push(Delta("", 0, ERROR))
        self._state = _State()

    def _report(self, kind: str, sequences: int, tokens: int, began: float) -> None:
        if self.on_step is not None:
            self.on_step(StepStats(kind, sequences, tokens, time.perf_counter() - began))


def _ended_early(seq: Sequence, now: float) -> str | None:
    if seq.cancelled:
        return CANCELLED
    deadline = seq.request.deadline
    if deadline is not None and now > deadline:
        return TIMEOUT
    return None


def _generator(seq: Sequence) -> torch.Generator | None:
    if seq.request.temperature <= 0:
        return None
    seed = seq.request.seed if seq.request.seed is not None else random.getrandbits(63)
    return torch.Generator().manual_seed(seed)


def _contiguous_head_input(model: Any) -> None:
    # With `logits_to_keep=1` the head gets a strided [batch, 1, hidden] slice of a prefill's
    # hidden states; `linear` then runs a batched matmul over a per-row copy of the whole
    # vocabulary matrix (1.5 s for 8 prompts in bf16, 85 ms in fp32, against 11 and 39 ms
    # for a contiguous input on this CPU). A contiguous input makes it one matrix product.
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if not isinstance(head, torch.nn.Module):
        return
    if not any(hook is _contiguous_first for hook in head._forward_pre_hooks.values()):
        head.register_forward_pre_hook(_contiguous_first)


def _contiguous_first(_module: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    return (args[0].contiguous(), *args[1:])


def _cache_argument(model: Any) -> str:
    # transformers 5.25 renamed `past_key_values` to `cache` (the old name warns until 5.40)
    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def _stop_ids(tokenizer: Any, model: Any) -> frozenset[int]:
    ids = {tokenizer.eos_token_id}
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(config_eos if isinstance(config_eos, list) else [config_eos])
    return frozenset(i for i in ids if i is not None)
