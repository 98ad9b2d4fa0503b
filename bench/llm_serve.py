"""Generation serving: modelyard's OpenAI-compatible server against the naive baseline.

    nice -n 5 python bench/llm_serve.py [--run RUN] [--quick] [--rounds 2]

Both servers serve the same SmolLM2 generation run (by default the LoRA SFT run of
bench/llm_train.py, merged on load) on 127.0.0.1, both up for the whole run, each with the
same torch threads. For each concurrency (1, 8, 32) the load generator runs modelyard's server,
then the baseline (interleaved by level): chat requests built from held-out Dolly rows
(/work/shared/data/instructions/test.jsonl), greedy, fixed max_tokens. Output tokens/s is
completion tokens over the wall time of the level. Time to first token: modelyard streams
(time to the first content chunk); the baseline cannot stream, so its TTFT is its whole latency.
With `--llamacpp-python PYTHON` (the interpreter of an environment holding
llama-cpp-python[server], which compiles llama.cpp from source on install), the run is also
exported to GGUF (`modelyard export`, f16 by default: the closest to the precision modelyard
serves in) and llama.cpp's own OpenAI server joins each level, streaming like modelyard.
With `--before-src DIR` (the `src` folder of another modelyard checkout, e.g. main's), that
version's server joins each level too, as "modelyard-before": a before/after figure of an
engine change measured in the same run.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

from common import ROOT, base_parser, machine, measure_peaks, mfu_of, write_results

DEFAULT_RUN = ROOT.parent / "benchwork" / "llm_train" / "runs" / "sft"
LEVELS = (1, 8, 32)


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prompts(data_dir: Path, n: int) -> list[str]:
    """Return the first `n` held-out Dolly instructions (with their context, if any)."""
    rows = [json.loads(line) for line in (data_dir / "instructions" / "test.jsonl").open()]
    out = []
    for row in rows[:n]:
        text = row["instruction"]
        if row.get("input") or row.get("context"):
            text += "\n\n" + (row.get("input") or row.get("context"))
        out.append(text[:1500])
    return out


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU seconds used so far by process `pid` and its children."""
    import psutil

    process = psutil.Process(pid)
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        times = p.cpu_times()
        total += times.user + times.system
    return total


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 600) -> None:
    """Poll `url` until it answers 200; raise if the process dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"{url} not ready after {timeout_s} s")


def start_modelyard(
    work: Path,
    run: Path,
    port: int,
    threads: int,
    max_tokens: int,
    precision: str,
    src: Path | None = None,
) -> Any:
    """Push `run` into a fresh registry and start `modelyard serve` on it (from the modelyard
    source folder `src` when given); return the process."""
    from modelyard.registry.store import ModelStore

    work = work / "before" if src is not None else work
    work.mkdir(parents=True, exist_ok=True)
    registry = work / "registry"
    shutil.rmtree(registry, ignore_errors=True)
    ModelStore(registry).push(run, "chat")
    recipe = work / "serve.yaml"
    serve = {
        "max_new_tokens": max_tokens,
        "num_threads": threads,
        "max_batch_size": 32,
        "rate_limit": None,
        "access_log": False,
        "generation_timeout_s": 900,
        "generation_precision": precision,
    }
    recipe.write_text(yaml.safe_dump({"serve": serve}), encoding="utf-8")
    command = [sys.executable, "-m", "modelyard", "serve", "chat", "--registry", str(registry)]
    command += ["--recipe", str(recipe), "--no-auth", "--port", str(port)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    proc = subprocess.Popen(command, env=env)
    wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", proc)
    return proc


def start_llamacpp(
    python: str, work: Path, run: Path, port: int, threads: int, quant: str
) -> tuple[Any, Path]:
    """Export `run` to GGUF and start llama-cpp-python's server on it; return (process, file)."""
    from modelyard.generation.export import export_run

    out = export_run(run, "gguf", quant, work / f"gguf-{quant}", overwrite=True)
    gguf = next(out.glob("*.gguf"))
    command = [python, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", "chat"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_threads", str(threads)]
    command += ["--n_threads_batch", str(threads), "--n_ctx", "2048", "--verbose", "False"]
    # by default a new request interrupts the one being generated; a server must queue them
    command += ["--interrupt_requests", "False"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    wait_ready(f"http://127.0.0.1:{port}/v1/models", proc)
    return proc, gguf


def start_baseline(run: Path, port: int, threads: int) -> Any:
    """Start the naive FastAPI + generate server; return the process."""
    script = ROOT / "bench" / "llm_serve_baseline.py"
    proc = subprocess.Popen([sys.executable, str(script), str(run), str(port), str(threads)])
    wait_ready(f"http://127.0.0.1:{port}/health", proc)
    return proc


async def one_request(
    client: httpx.AsyncClient, url: str, prompt: str, max_tokens: int, stream: bool
) -> dict[str, Any]:
    """Send one chat request; return its completion tokens, TTFT and latency (or its error)."""
    body = {
        "model": "chat",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    began = time.perf_counter()
    try:
        if not stream:
            r = await client.post(url, json=body)
            r.raise_for_status()
            seconds = time.perf_counter() - began
            tokens = r.json()["usage"]["completion_tokens"]
            return {"tokens": tokens, "ttft": seconds, "latency": seconds}
        body |= {"stream": True, "stream_options": {"include_usage": True}}
        ttft, tokens, chunks = None, None, 0
        async with client.stream("POST", url, json=body) as r:
            r.raise_for_status()
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    raise RuntimeError(chunk["error"]["message"])
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
                elif chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
                    chunks += 1
                    if ttft is None:
                        ttft = time.perf_counter() - began
        seconds = time.perf_counter() - began
        # llama-cpp-python's stream carries no usage: it streams one token per chunk
        return {
            "tokens": chunks if tokens is None else tokens,
            "ttft": ttft or seconds,
            "latency": seconds,
        }
    except (httpx.HTTPError, RuntimeError, KeyError, ValueError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}


async def load(
    url: str, texts: list[str], concurrency: int, max_tokens: int, stream: bool
) -> dict[str, Any]:
    """Send every text with `concurrency` workers; return throughput, TTFT and errors."""
    pending = list(texts)
    results: list[dict[str, Any]] = []
    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(timeout=1800, limits=limits) as client:

        async def worker() -> None:
            while pending:
                results.append(await one_request(client, url, pending.pop(0), max_tokens, stream))

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - began
    ok = [r for r in results if "error" not in r]
    ttfts = [r["ttft"] * 1000 for r in ok]
    tokens = sum(r["tokens"] for r in ok)
    return {
        "requests": len(results),
        "errors": len(results) - len(ok),
        "error_examples": sorted({r["error"] for r in results if "error" in r})[:3],
        "completion_tokens": tokens,
        "wall_s": round(wall, 2),
        "tokens_per_s": round(tokens / wall, 2),
        "ttft_p50_ms": round(float(np.percentile(ttfts, 50)), 1) if ttfts else None,
        "ttft_p99_ms": round(float(np.percentile(ttfts, 99)), 1) if ttfts else None,
        "latency_p50_s": round(statistics.median(r["latency"] for r in ok), 2) if ok else None,
        "_ttfts_ms": ttfts,
        "_latencies_s": [r["latency"] for r in ok],
    }


def merge_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Return one server's figures over several rounds of a level: tokens over the summed wall
    and CPU time, percentiles over every request of every round."""
    ttfts = [t for r in rounds for t in r["_ttfts_ms"]]
    latencies = [t for r in rounds for t in r["_latencies_s"]]
    wall, cpu = sum(r["wall_s"] for r in rounds), sum(r["cpu_s"] for r in rounds)
    tokens = sum(r["completion_tokens"] for r in rounds)
    return {
        "requests": sum(r["requests"] for r in rounds),
        "errors": sum(r["errors"] for r in rounds),
        "error_examples": sorted({e for r in rounds for e in r["error_examples"]})[:3],
        "completion_tokens": tokens,
        "wall_s": round(wall, 2),
        "tokens_per_s": round(tokens / wall, 2),
        "tokens_per_s_by_round": [r["tokens_per_s"] for r in rounds],
        "ttft_p50_ms": round(float(np.percentile(ttfts, 50)), 1) if ttfts else None,
        "ttft_p99_ms": round(float(np.percentile(ttfts, 99)), 1) if ttfts else None,
        "latency_p50_s": round(statistics.median(latencies), 2) if latencies else None,
        "cpu_s": round(cpu, 2),
        "tokens_per_cpu_s": round(tokens / max(cpu, 1e-9), 2),
    }


def markdown(fig: dict[str, Any]) -> str:
    """Return the results as a markdown report."""
    lines = [
        "# Generation serving: modelyard vs a naive FastAPI + generate server",
        "",
        f"Model: {fig['model']}. Prompts: {fig['prompts']} held-out Dolly instructions, chat "
        f"template, greedy, max_tokens {fig['max_tokens']}. Threads per server: {fig['threads']}. "
        f"Size: {fig['size']}. Precision: modelyard {fig.get('modelyard_precision', 'fp32')} "
        "(`serve.generation_precision`), naive fp32 (as `from_pretrained` loads it), llama.cpp "
        "the GGUF type below.",
        "",
        "| concurrency | server | requests | errors | output tokens/s | tokens per CPU-s | TTFT p50 ms | TTFT p99 ms | latency p50 s | MFU |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for level in fig["levels"]:
        for name in ("modelyard", "modelyard-before", "naive", "llamacpp"):
            if name not in level:
                continue
            r = level[name]
            lines.append(
                f"| {level['concurrency']} | {name} | {r['requests']} | {r['errors']} | "
                f"{r['tokens_per_s']} | {r['tokens_per_cpu_s']} | {r['ttft_p50_ms']} | {r['ttft_p99_ms']} | {r['latency_p50_s']} | {r.get('mfu')} |"
            )
    lines += [
        "",
        f"- tokens/s ratio (modelyard / naive): c1 {fig['tokens_per_s_c1_ratio']}, "
        f"c8 {fig['tokens_per_s_c8_ratio']}, c32 {fig['tokens_per_s_c32_ratio']}",
        f"- tokens per CPU-second ratio (modelyard / naive): {fig['tokens_per_cpu_s_ratio']}",
        f"- modelyard TTFT p99 at concurrency 8: {fig['ttft_p99_ms_c8']} ms",
        f"- errors: modelyard {fig['errors']}, naive {fig['errors_naive']}",
        f"- modelyard / modelyard-before tokens/s by concurrency: {fig['before_tokens_per_s_ratio']} "
        "(None: no before server in this run)",
        f"- vs llama.cpp server at concurrency 8 (modelyard / llama.cpp tokens/s): "
        f"{fig['vs_llamacpp_tokens_per_s_c8']} ({fig['vs_llamacpp_reason']})",
        f"- MFU: the useful FLOPs of the answered requests (prompt prefill, then each generated "
        "token against its growing context, output head included) over the wall time, against "
        f"the GEMM peak of the server's format measured at the start ({fig.get('peak_gflops')} "
        "GFLOP/s). One-token decode steps are bound by memory and per-operator overhead, not "
        "arithmetic: expect small figures.",
        "- The naive server cannot stream, so its TTFT is its whole latency; modelyard's is the "
        "time to the first streamed content chunk.",
        f"- Levels interleaved (each server in turn at each concurrency), {fig.get('rounds', 1)} "
        "round(s) per level with the servers' order reversed every other round; a server's "
        "tokens/s is its tokens over its summed wall time, TTFT percentiles over every request. "
        "Every server is up for the whole run. The machine is shared: see load averages.",
        f"- Load average at start / end: {fig['loadavg_start']} / {fig['loadavg_end']}. On a shared "
        "machine a process's share of the cores grows with its runnable threads: the naive server "
        "runs one `generate` per request in its thread pool, modelyard one batched step at a time, "
        "so tokens per CPU-second of each server process is the fairer measure of the work each "
        "needs per token.",
        "- Size 'quick': 2, 8 and 32 requests per round at concurrency 1, 8 and 32 (one wave "
        "each), to stay within the benchmark's time budget on the shared machine; 'full' sends "
        "4, 16 and 32.",
        "",
        "Machine: " + json.dumps(fig["machine"]),
        "",
    ]
    return "\n".join(lines)


def run_level(
    concurrency: int,
    servers: dict[str, Any],
    ports: dict[str, int],
    texts: list[str],
    args: Any,
) -> dict[str, Any]:
    """Load every server at `concurrency` for `args.rounds` rounds; return the level's figures."""
    per_level = {1: 2, 8: 8, 32: 32} if args.quick else {1: 4, 8: 16, 32: 32}
    level: dict[str, Any] = {"concurrency": concurrency}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    for round_ in range(args.rounds):
        # reversed every other round, so no server always runs first (or last) at a level
        for name in list(servers)[:: -1 if round_ % 2 else 1]:
            url = f"http://127.0.0.1:{ports[name]}/v1/chat/completions"
            cpu_before = cpu_seconds(servers[name].pid)
            result = asyncio.run(
                load(
                    url,
                    texts[: per_level[concurrency]],
                    concurrency,
                    args.max_tokens,
                    name != "naive",
                )
            )
            # the machine is shared: a server's share of it varies with its thread count, so
            # tokens per CPU-second of the server process is reported beside tokens/s
            result["cpu_s"] = round(cpu_seconds(servers[name].pid) - cpu_before, 2)
            runs[name].append(result)
            print(concurrency, round_, name, result["tokens_per_s"], flush=True)
    for name in servers:
        level[name] = merge_rounds(runs[name])
        print(concurrency, name, level[name], flush=True)
    return level


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--run", type=Path, default=DEFAULT_RUN, help="generation run to serve")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        default="auto",
        help="modelyard's serve.generation_precision (auto: bf16 where the CPU has native bf16)",
    )
    parser.add_argument("--quick", action="store_true", help="fewer requests per level")
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="rounds per level; the servers' order is reversed from one round to the next",
    )
    parser.add_argument(
        "--llamacpp-python",
        default=None,
        help="python of an environment with llama-cpp-python[server]: adds llama.cpp's server",
    )
    parser.add_argument("--gguf-quant", default="f16", help="GGUF type llama.cpp serves")
    parser.add_argument(
        "--before-src",
        type=Path,
        default=None,
        help="src folder of another modelyard checkout: its server joins as modelyard-before",
    )
    args = parser.parse_args()
    work = args.work / "llm_serve"
    work.mkdir(parents=True, exist_ok=True)
    per_level = {1: 2, 8: 8, 32: 32} if args.quick else {1: 4, 8: 16, 32: 32}
    texts = prompts(args.data_dir, 32)
    ports = {"modelyard": free_port(), "naive": free_port()}
    loadavg_start = os.getloadavg()
    peaks = measure_peaks(args.threads)
    procs = [
        start_modelyard(
            work, args.run, ports["modelyard"], args.threads, args.max_tokens, args.precision
        ),
        start_baseline(args.run, ports["naive"], args.threads),
    ]
    names = ["modelyard", "naive"]
    if args.before_src is not None:
        ports["modelyard-before"] = free_port()
        procs.append(
            start_modelyard(
                work,
                args.run,
                ports["modelyard-before"],
                args.threads,
                args.max_tokens,
                args.precision,
                args.before_src,
            )
        )
        names.append("modelyard-before")
    if args.llamacpp_python:
        ports["llamacpp"] = free_port()
        proc, _gguf = start_llamacpp(
            args.llamacpp_python, work, args.run, ports["llamacpp"], args.threads, args.gguf_quant
        )
        procs.append(proc)
        names.append("llamacpp")
    levels = []
    try:
        for concurrency in LEVELS:
            level = run_level(concurrency, dict(zip(names, procs, strict=True)), ports, texts, args)
            levels.append(level)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)

    # the naive server runs the model as loaded (fp32); llama.cpp's f16 GGUF multiplies in
    # fp32 on a CPU without native fp16 arithmetic
    formats = {"modelyard": served_precision(args.precision), "naive": "fp32", "llamacpp": "fp32"}
    formats["modelyard-before"] = formats["modelyard"]
    add_mfu(levels, args.run, texts, peaks, formats)

    def ratio(c: int) -> float | None:
        level = next(x for x in levels if x["concurrency"] == c)
        naive = level["naive"]["tokens_per_s"]
        return round(level["modelyard"]["tokens_per_s"] / naive, 2) if naive else None

    def cpu_ratio(c: int) -> float | None:
        level = next(x for x in levels if x["concurrency"] == c)
        naive = level["naive"]["tokens_per_cpu_s"]
        return round(level["modelyard"]["tokens_per_cpu_s"] / naive, 2) if naive else None

    c8 = next(x for x in levels if x["concurrency"] == 8)
    fig = {
        "tokens_per_s_c8_ratio": ratio(8),
        "tokens_per_s_c32_ratio": ratio(32),
        "tokens_per_s_c1_ratio": ratio(1),
        "tokens_per_cpu_s_ratio": {str(c): cpu_ratio(c) for c in LEVELS},
        "ttft_p99_ms_c8": c8["modelyard"]["ttft_p99_ms"],
        "vs_llamacpp_tokens_per_s_c8": _vs_llamacpp(c8),
        "vs_llamacpp_reason": (
            f"llama-cpp-python[server] on {args.gguf_quant} GGUF of the same run"
            if args.llamacpp_python
            else "llama-cpp-python[server] not installed: it compiles llama.cpp from source"
        ),
        "errors": sum(x["modelyard"]["errors"] for x in levels),
        "before_tokens_per_s_ratio": _before(levels),
        "errors_naive": sum(x["naive"]["errors"] for x in levels),
        "levels": levels,
        "model": f"{args.run} ({_describe(args.run)}), served as one merged model by both servers",
        "prompts": len(texts),
        "max_tokens": args.max_tokens,
        "threads": args.threads,
        "modelyard_precision": served_precision(args.precision),
        "size": "quick" if args.quick else "full",
        "requests_per_level": per_level,
        "rounds": args.rounds,
        "loadavg_start": [round(x, 2) for x in loadavg_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "machine": machine(),
        "peak_gflops": peaks,
        "mfu_c32": {
            name: row.get("mfu")
            for name, row in next(x for x in levels if x["concurrency"] == 32).items()
            if name != "concurrency"
        },
    }
    write_results(args.results, "llm_serve", fig, markdown(fig))
    print(json.dumps({k: fig[k] for k in list(fig)[:7]}))


@functools.cache
def _decoder(run: Path) -> tuple[Any, int, Any]:
    """Return the served model's shape, vocabulary size and tokenizer (read once per run)."""
    from transformers import AutoConfig

    from modelyard.evaluation.utilisation import TransformerShape
    from modelyard.models import resolve_backbone
    from modelyard.models.build import load_tokenizer

    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    config = AutoConfig.from_pretrained(str(resolve_backbone(manifest["backbone"])))
    return TransformerShape.from_config(config), int(config.vocab_size), load_tokenizer(run)


def request_flops(run: Path, texts: list[str], completion: float) -> list[float]:
    """Return the useful FLOPs of each chat request of `texts` that generates `completion`
    tokens: the prompt's prefill (the output head on its last token only) and each decoded
    token against its growing context, output head included."""
    from modelyard.evaluation.utilisation import decode_flops

    shape, vocab, tokenizer = _decoder(run)
    out = []
    for text in texts:
        chat = [{"role": "user", "content": text}]
        prompt = len(tokenizer.apply_chat_template(chat, add_generation_prompt=True))
        decode = sum(decode_flops(shape, prompt + i, vocab) for i in range(round(completion)))
        out.append(shape.forward_flops(prompt) + 2 * shape.hidden * vocab + decode)
    return out


def add_mfu(
    levels: list[dict[str, Any]],
    run: Path,
    texts: list[str],
    peaks: dict[str, float],
    formats: dict[str, str],
) -> None:
    """Add `mfu` to every server's figures at every level: the useful FLOPs of the requests it
    answered (`request_flops`, at its mean completion length) over its wall time, against the
    peak of the format it computes in (`formats`)."""
    for level in levels:
        for name, row in level.items():
            if name == "concurrency" or not row.get("requests") or row["errors"]:
                continue
            per_request = row["requests"] // len(row["tokens_per_s_by_round"])
            completion = row["completion_tokens"] / row["requests"]
            flops = sum(request_flops(run, texts[:per_request], completion))
            rounds = len(row["tokens_per_s_by_round"])
            row["mfu"] = mfu_of(rounds / row["wall_s"], flops, peaks.get(formats.get(name, "")))
            row["mfu_format"] = formats.get(name)


def served_precision(setting: str) -> str:
    """Return the precision modelyard's server resolves `setting` to on this machine."""
    import torch

    from modelyard.models.device import select_dtype

    return "fp32" if select_dtype(setting, torch.device("cpu")) is None else "bf16"


def _before(levels: list[dict[str, Any]]) -> dict[str, float | None] | None:
    """Return modelyard's tokens/s over modelyard-before's at each level (None without it)."""
    if not any("modelyard-before" in level for level in levels):
        return None
    out: dict[str, float | None] = {}
    for level in levels:
        theirs = level["modelyard-before"]["tokens_per_s"]
        ours = level["modelyard"]["tokens_per_s"]
        out[str(level["concurrency"])] = round(ours / theirs, 2) if theirs else None
    return out


def _vs_llamacpp(level: dict[str, Any]) -> float | None:
    theirs = level.get("llamacpp", {}).get("tokens_per_s")
    return round(level["modelyard"]["tokens_per_s"] / theirs, 2) if theirs else None


def _describe(run: Path) -> str:
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    return f"kind {manifest['kind']}, backbone {manifest.get('backbone')}"


if __name__ == "__main__":
    main()
