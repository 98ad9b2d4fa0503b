"""Where the generation engine's time goes, in-process (no HTTP): the benchmark's workload.

    nice -n 5 python bench/llm_engine_profile.py [--run RUN] [--concurrency 32] [--requests 32]

Loads the run as `modelyard serve` does (bf16 weights where the CPU has native bf16), then
drives a `GenerationEngine` with the chat prompts of bench/llm_serve.py (held-out Dolly rows),
`--concurrency` requests in flight, greedy, fixed max_tokens. Prints output tokens/s, the
time to first token, and the time spent in prefill and decode steps by batch size (the
engine's own step statistics). With `--cprofile FILE` the whole drive runs under cProfile.
"""

from __future__ import annotations

import cProfile
import json
import statistics
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import base_parser
from llm_serve import DEFAULT_RUN, prompts


def drive(engine: Any, encoded: list[list[int]], concurrency: int, max_tokens: int) -> dict:
    """Run every prompt with `concurrency` in flight; return tokens, wall seconds and TTFTs."""
    from modelyard.generation.engine import GenerationRequest

    pending = list(encoded)
    lock = threading.Lock()
    ttfts: list[float] = []
    tokens = [0]

    def worker() -> None:
        while True:
            with lock:
                if not pending:
                    return
                prompt = pending.pop(0)
            seq = engine.submit(GenerationRequest(prompt, max_tokens))
            for delta in seq.deltas(timeout_s=900):
                if delta.finish_reason is not None:
                    with lock:
                        tokens[0] += delta.tokens
            assert seq.first_token_at is not None
            with lock:
                ttfts.append(seq.first_token_at - seq.submitted)

    began = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    ttfts.sort()
    return {
        "tokens": tokens[0],
        "wall_s": round(wall, 2),
        "tokens_per_s": round(tokens[0] / wall, 2),
        "ttft_p50_ms": round(1000 * statistics.median(ttfts), 1),
        "ttft_max_ms": round(1000 * ttfts[-1], 1),
    }


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--run", type=Path, default=DEFAULT_RUN)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--cprofile", type=Path, default=None)
    parser.add_argument(
        "--model-folder", type=Path, default=None, help="a plain model folder instead of a run"
    )
    parser.add_argument(
        "--no-prepack", action="store_true", help="keep plain bf16 linears (as before the prepack)"
    )
    args = parser.parse_args()

    import torch

    from modelyard.generation.artifacts import load_lm_run
    from modelyard.generation.chat import render
    from modelyard.generation.engine import GenerationEngine, GenerationRequest, StepStats
    from modelyard.generation.prepack import prepack_linears
    from modelyard.models.device import select_dtype

    torch.set_num_threads(args.threads)
    if args.model_folder is not None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = str(args.model_folder)
        model = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True).eval()
        tok = AutoTokenizer.from_pretrained(folder)
    else:
        loaded = load_lm_run(args.run)
        model, tok = loaded.model, loaded.tokenizer
    dtype = select_dtype(args.precision, model.device)
    if dtype is not None:
        model = model.to(dtype)
    if not args.no_prepack:
        prepack_linears(model)
    steps: list[StepStats] = []
    engine = GenerationEngine(model, tok, max_batch_size=32, on_step=steps.append)
    encoded = []
    for text in prompts(args.data_dir, args.requests):
        rendered = render(tok, [{"role": "user", "content": text}], True)
        encoded.append(list(tok(rendered, add_special_tokens=False)["input_ids"]))
    lengths = sorted(map(len, encoded))
    for _ in engine.submit(GenerationRequest(encoded[0][:8], 2)).deltas(timeout_s=600):
        pass
    for repeat in range(args.repeats):
        steps.clear()
        profiler = cProfile.Profile() if args.cprofile else None
        if profiler is not None:
            profiler.enable()
        result = drive(engine, encoded, args.concurrency, args.max_tokens)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(str(args.cprofile))
        by_kind: dict[str, list[float]] = defaultdict(list)
        for s in steps:
            by_kind[s.kind].append(s.seconds)
        decode = [s for s in steps if s.kind == "decode"]
        result |= {
            "repeat": repeat,
            "prompt_tokens": sum(lengths),
            "prompt_lengths_min_median_max": [lengths[0], lengths[len(lengths) // 2], lengths[-1]],
            "seconds_by_kind": {k: round(sum(v), 2) for k, v in by_kind.items()},
            "steps_by_kind": {k: len(v) for k, v in by_kind.items()},
            "decode_ms_by_batch": _by_batch(decode),
        }
        print(json.dumps(result), flush=True)
    engine.close()


def _by_batch(decode: list[Any]) -> dict[str, float]:
    groups: dict[int, list[float]] = defaultdict(list)
    for s in decode:
        groups[s.sequences].append(s.seconds * 1000)
    return {str(k): round(statistics.median(v), 1) for k, v in sorted(groups.items())}


if __name__ == "__main__":
    main()
