"""The continuous-batching engine on a tiny Llama: batched answers equal solo answers, seeds,
stops, budgets, cancellation, deadlines and the bounded queue."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from modelyard.generation.engine import (
    CANCELLED,
    LENGTH,
    STOP,
    TIMEOUT,
    ContextLengthError,
    Delta,
    EngineBusyError,
    GenerationEngine,
    GenerationRequest,
    StepStats,
)
from tests.generation.conftest import save_tiny_llama

PROMPTS = ["the red cat", "what colour is the dog?", "the", "the blue bird sees the horse."]


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """The varied tiny Llama and its tokenizer."""
    folder = save_tiny_llama(tmp_path_factory.mktemp("engine-llama"), varied=True)
    model = AutoModelForCausalLM.from_pretrained(str(folder), use_safetensors=True).eval()
    return model, AutoTokenizer.from_pretrained(str(folder))


@pytest.fixture()
def engine(lm: tuple[Any, Any]) -> Iterator[GenerationEngine]:
    """An engine of 4 slots and 4 queue places on the tiny Llama."""
    engine = GenerationEngine(lm[0], lm[1], max_batch_size=4, max_queue=4)
    yield engine
    engine.close(5)


def ids(lm: tuple[Any, Any], text: str) -> list[int]:
    """Return the token ids of `text`."""
    return list(lm[1](text)["input_ids"])


def run(engine: GenerationEngine, request: GenerationRequest) -> list[Delta]:
    """Return every delta of one request."""
    return list(engine.submit(request).deltas(timeout_s=60))


def reference(lm: tuple[Any, Any], prompt: list[int], n: int) -> list[int]:
    """Return the greedy tokens transformers' own generate gives for `prompt` alone."""
    model, tok = lm
    with torch.inference_mode():
        out = model.generate(
            torch.tensor([prompt]),
            max_new_tokens=n,
            do_sample=False,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
    return out[0, len(prompt) :].tolist()


def test_batched_greedy_answers_equal_each_prompt_alone(
    engine: GenerationEngine, lm: tuple[Any, Any]
) -> None:
    prompts = [ids(lm, p) for p in PROMPTS]
    sequences = [engine.submit(GenerationRequest(p, 12)) for p in prompts]
    for prompt, seq in zip(prompts, sequences, strict=True):
        deltas = list(seq.deltas(timeout_s=60))
        assert [d.token_id for d in deltas] == reference(lm, prompt, 12)
        assert [d.tokens for d in deltas] == list(range(1, len(deltas) + 1))


def test_bf16_batched_greedy_answers_equal_each_prompt_alone(lm: tuple[Any, Any]) -> None:
    # served in bf16 on CPUs with native bf16: batching must not change a greedy answer there
    half = (copy.deepcopy(lm[0]).to(torch.bfloat16), lm[1])
    engine = GenerationEngine(half[0], half[1], max_batch_size=4)
    try:
        prompts = [ids(lm, p) for p in PROMPTS]
        sequences = [engine.submit(GenerationRequest(p, 12)) for p in prompts]
        for prompt, seq in zip(prompts, sequences, strict=True):
            assert [d.token_id for d in seq.deltas(timeout_s=60)] == reference(half, prompt, 12)
    finally:
        engine.close(5)


def test_the_head_sees_a_contiguous_input_from_a_batched_prefill(lm: tuple[Any, Any]) -> None:
    model = copy.deepcopy(lm[0])
    first, second = GenerationEngine(model, lm[1]), GenerationEngine(model, lm[1])
    seen: list[bool] = []
    head = model.get_output_embeddings()
    hook = head.register_forward_pre_hook(lambda _m, args: seen.append(args[0].is_contiguous()))
    try:
        assert len(head._forward_pre_hooks) == 2  # one engine hook, however many engines
        sequences = [first.submit(GenerationRequest(ids(lm, p), 2)) for p in PROMPTS]
        for seq in sequences:
            list(seq.deltas(timeout_s=60))
        assert seen and all(seen)
    finally:
        hook.remove()
        first.close(5)
        second.close(5)


@pytest.fixture()
def chunked(lm: tuple[Any, Any]) -> Iterator[tuple[GenerationEngine, list[StepStats]]]:
    """An engine that prefills at most 4 prompt tokens per iteration, and the steps it reports."""
    steps: list[StepStats] = []
    engine = GenerationEngine(
        lm[0], lm[1], max_batch_size=4, prefill_chunk_tokens=4, on_step=steps.append
    )
    yield engine, steps
    engine.close(5)


def test_chunked_prefill_gives_the_same_greedy_answers(
    chunked: tuple[GenerationEngine, list[StepStats]], lm: tuple[Any, Any]
) -> None:
    engine, steps = chunked
    prompts = [ids(lm, p) for p in PROMPTS]
    sequences = [engine.submit(GenerationRequest(p, 8)) for p in prompts]
    for prompt, seq in zip(prompts, sequences, strict=True):
        assert [d.token_id for d in seq.deltas(timeout_s=60)] == reference(lm, prompt, 8)
    assert any(s.kind == "prefill-chunk" for s in steps)


def test_a_long_prompt_is_prefilled_between_decode_steps(
    chunked: tuple[GenerationEngine, list[StepStats]], lm: tuple[Any, Any]
) -> None:
    engine, steps = chunked
    running = engine.submit(GenerationRequest(ids(lm, PROMPTS[0]), 40))
    stream = running.deltas(timeout_s=60)
    next(stream)  # the first sequence is decoding
    long_prompt = ids(lm, " ".join(PROMPTS * 3))
    late = engine.submit(GenerationRequest(long_prompt, 3))
    assert [d.token_id for d in late.deltas(timeout_s=60)] == reference(lm, long_prompt, 3)
    kinds = [s.kind for s in steps]
    start = kinds.index("decode")  # the long prompt arrived after the first one decoded
    chunks = [i for i, k in enumerate(kinds) if k == "prefill-chunk" and i > start]
    assert len(chunks) >= len(long_prompt) // 4 - 1
    # the running sequence kept decoding while the long prompt was prefilled
    assert all(kinds[i + 1] == "decode" for i in chunks)
    list(stream)


def test_rows_of_very_different_lengths_joining_and_leaving_keep_their_answers(
    lm: tuple[Any, Any],
) -> None:
    # joins wider and narrower than the batch, the widest row leaving first, spare rows reused
    engine = GenerationEngine(lm[0], lm[1], max_batch_size=4, prefill_chunk_tokens=16)
    long = ids(lm, " ".join(PROMPTS * 4))
    plan = [
        (ids(lm, PROMPTS[2]), 16),
        (long, 3),
        (ids(lm, PROMPTS[1]), 12),
        (ids(lm, PROMPTS[0]), 9),
        (long[:20], 6),
        (ids(lm, PROMPTS[3]), 5),
    ]
    try:
        started = []
        for prompt, n in plan:
            stream = engine.submit(GenerationRequest(prompt, n)).deltas(timeout_s=60)
            started.append((prompt, n, next(stream), stream))  # joined before the next comes
        for prompt, n, first, stream in started:
            assert [d.token_id for d in [first, *stream]] == reference(lm, prompt, n)
    finally:
        engine.close(5)


def test_a_late_request_joins_the_running_batch(
    lm: tuple[Any, Any],
) -> None:
    steps: list[StepStats] = []
    engine = GenerationEngine(lm[0], lm[1], max_batch_size=4, on_step=steps.append)
    try:
        first = engine.submit(GenerationRequest(ids(lm, PROMPTS[0]), 60))
        stream = first.deltas(timeout_s=60)
        next(stream)  # the first sequence is running
        late_prompt = ids(lm, PROMPTS[1])
        late = engine.submit(GenerationRequest(late_prompt, 5))
        late_tokens = [d.token_id for d in late.deltas(timeout_s=60)]
        # the late request finished while the long one was still generating
        assert first.finish_reason is None
        assert late_tokens == reference(lm, late_prompt, 5)
        assert any(s.kind == "decode" and s.sequences == 2 for s in steps)
        rest = list(stream)
        assert rest[-1].finish_reason == LENGTH and rest[-1].tokens == 60
    finally:
        engine.close(5)


def test_max_tokens_ends_with_length(engine: GenerationEngine, lm: tuple[Any, Any]) -> None:
    deltas = run(engine, GenerationRequest(ids(lm, PROMPTS[0]), 7))
    assert deltas[-1].finish_reason == LENGTH
    assert deltas[-1].tokens == 7
    assert all(d.finish_reason is None for d in deltas[:-1])


def test_the_same_seed_gives_the_same_sample(engine: GenerationEngine, lm: tuple[Any, Any]) -> None:
    def sample(seed: int) -> list[int | None]:
        request = GenerationRequest(ids(lm, PROMPTS[1]), 10, temperature=1.0, top_p=0.9, seed=seed)
        return [d.token_id for d in run(engine, request)]

    alone = sample(7)
    # and with other requests in the batch at the same time
    noise = [
        engine.submit(GenerationRequest(ids(lm, p), 10, temperature=1.0, seed=i))
        for i, p in enumerate(PROMPTS[:2])
    ]
    assert sample(7) == alone
    assert sample(8) != alone
    for seq in noise:
        list(seq.deltas(timeout_s=60))


def test_a_stop_sequence_cuts_the_text_before_it(
    engine: GenerationEngine, lm: tuple[Any, Any]
) -> None:
    prompt = ids(lm, PROMPTS[3])
    full = "".join(d.text for d in run(engine, GenerationRequest(prompt, 20)))
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    assert stop.strip(), full
    deltas = run(engine, GenerationRequest(prompt, 20, stop=(stop, "never appears")))
    text = "".join(d.text for d in deltas)
    assert text == full[: full.index(stop)]
    assert deltas[-1].finish_reason == STOP
    assert deltas[-1].tokens < 20


def test_cancelling_frees_the_slot(lm: tuple[Any, Any]) -> None:
    engine = GenerationEngine(lm[0], lm[1], max_batch_size=1, max_queue=4)
    try:
        long = engine.submit(GenerationRequest(ids(lm, PROMPTS[0]), 200))
        stream = long.deltas(timeout_s=60)
        next(stream)
        waiting = engine.submit(GenerationRequest(ids(lm, PROMPTS[1]), 3))
        long.cancel()
        assert list(stream)[-1].finish_reason == CANCELLED
        assert long.generated < 200
        assert list(waiting.deltas(timeout_s=60))[-1].finish_reason == LENGTH
        # the last delta reaches the caller before the engine thread retires the row
        deadline = time.monotonic() + 30
        while (engine.active or engine.waiting) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine.active == 0 and engine.waiting == 0
    finally:
        engine.close(5)


def test_a_deadline_stops_generation(engine: GenerationEngine, lm: tuple[Any, Any]) -> None:
    request = GenerationRequest(ids(lm, PROMPTS[0]), 200, deadline=time.monotonic() + 0.05)
    deltas = run(engine, request)
    assert deltas[-1].finish_reason == TIMEOUT
    assert deltas[-1].tokens < 200


def test_a_full_queue_refuses_at_once(lm: tuple[Any, Any]) -> None:
    gate = threading.Event()
    engine = GenerationEngine(lm[0], lm[1], max_batch_size=1, max_queue=2)
    original = engine._decode

    def slow_decode() -> None:
        gate.wait(30)
        original()

    engine._decode = slow_decode  # type: ignore[method-assign]
    try:
        prompt = ids(lm, PROMPTS[0])
        held = [engine.submit(GenerationRequest(prompt, 2))]
        # one sequence is admitted; two more fill the queue
        deadline = time.monotonic() + 10
        while engine.active == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        held += [engine.submit(GenerationRequest(prompt, 2)) for _ in range(2)]
        with pytest.raises(EngineBusyError, match="queue is full"):
            engine.submit(GenerationRequest(prompt, 2))
        gate.set()
        for seq in held:
            assert list(seq.deltas(timeout_s=60))[-1].finish_reason == LENGTH
    finally:
        gate.set()
        engine.close(5)


def test_prompts_that_do_not_fit_are_refused(engine: GenerationEngine) -> None:
    with pytest.raises(ContextLengthError, match="context holds 256"):
        engine.submit(GenerationRequest([5] * 250, 10))
    with pytest.raises(ContextLengthError, match="empty"):
        engine.submit(GenerationRequest([], 10))


def test_close_finishes_queued_work_then_refuses(lm: tuple[Any, Any]) -> None:
    engine = GenerationEngine(lm[0], lm[1], max_batch_size=2)
    seq = engine.submit(GenerationRequest(ids(lm, PROMPTS[0]), 4))
    engine.close(30)
    assert list(seq.deltas(timeout_s=5))[-1].finish_reason == LENGTH
    with pytest.raises(EngineBusyError, match="shutting down"):
        engine.submit(GenerationRequest(ids(lm, PROMPTS[0]), 4))


def test_the_end_of_turn_token_stops_a_sequence(lm: tuple[Any, Any]) -> None:
    engine = GenerationEngine(lm[0], lm[1])
    try:
        assert lm[1].eos_token_id in engine.stop_ids
    finally:
        engine.close(5)


def test_prefills_are_bounded_in_tokens(lm: tuple[Any, Any]) -> None:
    steps: list[StepStats] = []
    gate = threading.Event()
    engine = GenerationEngine(
        lm[0], lm[1], max_batch_size=8, max_prefill_tokens=20, on_step=steps.append
    )
    original = engine._start_prefill

    def gated(seqs: list[Any]) -> None:
        gate.wait(30)
        original(seqs)

    engine._start_prefill = gated  # type: ignore[method-assign]
    try:
        prompt = [5] * 8
        sequences = [engine.submit(GenerationRequest(prompt, 2)) for _ in range(5)]
        gate.set()
        for seq in sequences:
            assert list(seq.deltas(timeout_s=60))[-1].finish_reason == LENGTH
        # the first admission may have started before the rest arrived; later ones take 2 of 8
        assert all(s.sequences <= 2 for s in steps if s.kind == "prefill")
        assert sum(s.sequences for s in steps if s.kind == "prefill") == 5
    finally:
        gate.set()
        engine.close(5)


def test_a_burst_of_prompts_is_prefilled_packed_without_padding(lm: tuple[Any, Any]) -> None:
    model = copy.deepcopy(lm[0])
    fed: list[int] = []
    hook = model.model.embed_tokens.register_forward_hook(
        lambda _m, args, _out: fed.append(args[0].numel())
    )
    steps: list[StepStats] = []
    engine = GenerationEngine(model, lm[1], max_batch_size=4, on_step=steps.append)
    engine._start_prefill = _gated(engine)  # type: ignore[method-assign]
    try:
        prompts = [ids(lm, p) for p in PROMPTS]
        sequences = [engine.submit(GenerationRequest(p, 3)) for p in prompts]
        engine._start_prefill.gate.set()  # type: ignore[attr-defined]
        for prompt, seq in zip(prompts, sequences, strict=True):
            assert [d.token_id for d in seq.deltas(timeout_s=60)] == reference(lm, prompt, 3)
        prefills = [s for s in steps if s.kind == "prefill"]
        assert prefills[-1].sequences > 1  # the prompts that arrived together share a pass
        # every token fed is a prompt token or a decoded one: no padding was computed
        decoded = sum(s.sequences for s in steps if s.kind == "decode")
        assert sum(fed) == sum(map(len, prompts)) + decoded
    finally:
        hook.remove()
        engine.close(5)


def _gated(engine: GenerationEngine) -> Any:
    """Return a `_start_prefill` that waits for its `gate`, so a burst is admitted at once."""
    original = engine._start_prefill
    gate = threading.Event()

    def gated(seqs: list[Any]) -> None:
        gate.wait(30)
        original(seqs)

    gated.gate = gate  # type: ignore[attr-defined]
    return gated


def test_a_model_without_sdpa_is_prefilled_a_prompt_at_a_time(tmp_path: Any) -> None:
    folder = save_tiny_llama(tmp_path, varied=True)
    model = AutoModelForCausalLM.from_pretrained(
        str(folder), use_safetensors=True, attn_implementation="eager"
    ).eval()
    tok = AutoTokenizer.from_pretrained(str(folder))
    steps: list[StepStats] = []
    engine = GenerationEngine(model, tok, max_batch_size=4, on_step=steps.append)
    try:
        prompts = [list(tok(p)["input_ids"]) for p in PROMPTS]
        sequences = [engine.submit(GenerationRequest(p, 4)) for p in prompts]
        for prompt, seq in zip(prompts, sequences, strict=True):
            got = [d.token_id for d in seq.deltas(timeout_s=60)]
            assert got == reference((model, tok), prompt, 4)
        assert all(s.sequences == 1 for s in steps if s.kind == "prefill")
    finally:
        engine.close(5)
