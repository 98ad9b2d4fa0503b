"""What smoothing costs int8 speed: a token-classification run's int8 graph with and without
SmoothQuant smoothing (and the fp32 graph), timed side by side in one process.

    python bench/int8_smoothing.py --run RUN_DIR [--texts ner_conll2003/dev.jsonl] [--rounds 5]

The graphs are made the way `modelyard compress` makes its `int8-dynamic` variant of a token
classifier (fused export, smoothing calibrated on training sentences, per-channel int8, the
head in fp32). Timing: ONNX Runtime with 2 threads; rounds interleave the graphs (A B C, A B C,
...); each round times batch-32 throughput over `--speed-texts` texts (batches of similar
lengths) and batch-1 latency over 64 texts; medians over rounds. Results go to
bench/results/int8_smoothing.{json,md}.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import base_parser, machine, write_results


def build(run: Path, work: Path, alpha: float) -> tuple[Any, dict[str, Path]]:
    """Return the loaded run and its fp32, int8 and smoothed int8 graphs (made in `work`)."""
    import onnx

    from modelyard.compress.export import (
        calibration_batches,
        export_onnx,
        optimise_bert,
        output_matmuls,
        quantize_dynamic_int8,
    )
    from modelyard.compress.smooth import smooth_graph
    from modelyard.tagging.compression import tagger_parent

    parent = tagger_parent(run)
    work.mkdir(parents=True, exist_ok=True)
    texts = [" ".join(w) for w in parent.sample(32, parent.recipe.run.seed)]
    plain = export_onnx(parent.model, parent.tokenizer, work / "plain.onnx", 17, texts, True)
    fused = work / "fused.onnx"
    optimise_bert(plain, fused, parent.model.config)
    model = onnx.load(str(fused))
    names = {i.name for i in model.graph.input}
    calibration = [" ".join(w) for w in parent.sample(256, parent.recipe.run.seed)]
    batches = calibration_batches(parent.tokenizer, calibration, parent.run.max_length, names)
    smoothed = work / "smoothed.onnx"
    smooth_graph(fused, smoothed, batches, alpha, exclude=output_matmuls(model))
    return parent, {
        "onnx fp32": fused,
        "int8-dynamic unsmoothed": quantize_dynamic_int8(fused, work / "q.onnx", keep_head=True),
        f"int8-dynamic smoothed (alpha {alpha})": quantize_dynamic_int8(
            smoothed, work / "sq.onnx", keep_head=True
        ),
    }


def feeds(parent: Any, texts: list[list[str]], batch: int) -> list[dict[str, np.ndarray]]:
    """Return the graph inputs of `texts` in batches of similar lengths."""
    from modelyard.tagging.encoding import collate_pieces, word_pieces

    encoded = word_pieces(parent.tokenizer, texts, parent.run.max_length)
    ids = [list(x) for x in encoded["input_ids"]]
    order = np.argsort([len(x) for x in ids], kind="stable")
    out = []
    for i in range(0, len(ids), batch):
        b = collate_pieces(ids, order[i : i + batch], int(parent.tokenizer.pad_token_id or 0))
        ids_np = b["input_ids"].numpy()
        mask = b["attention_mask"].numpy()
        out.append({"input_ids": ids_np, "attention_mask": mask, "token_type_ids": ids_np * 0})
    return out


def main() -> None:
    """Build the graphs, time them interleaved and write bench/results/int8_smoothing.*."""
    parser = base_parser(__doc__ or "")
    parser.add_argument("--run", type=Path, required=True, help="a token-classification run")
    parser.add_argument("--texts", default="ner_conll2003/dev.jsonl", help="under --data-dir")
    parser.add_argument("--alpha", type=float, default=0.9)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--speed-texts", type=int, default=256)
    args = parser.parse_args()
    import onnxruntime as ort

    load_start = [round(x, 2) for x in os.getloadavg()]
    parent, graphs = build(args.run, args.work / "int8_smoothing", args.alpha)
    lines_in = (args.data_dir / args.texts).read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines_in if line.strip()]
    words = [r["tokens"] for r in random.Random(0).sample(rows, args.speed_texts)]
    big, single = feeds(parent, words, 32), feeds(parent, words[:64], 1)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
    sessions = {
        k: ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
        for k, p in graphs.items()
    }
    for s in sessions.values():  # warm up
        for f in big[:2] + single[:4]:
            s.run(["logits"], {k: v for k, v in f.items() if k in {i.name for i in s.get_inputs()}})
    timings: dict[str, dict[str, list[float]]] = {k: {"b32": [], "b1": []} for k in sessions}
    for _ in range(args.rounds):
        for name, s in sessions.items():
            inputs = {i.name for i in s.get_inputs()}
            start = time.perf_counter()
            for f in big:
                s.run(["logits"], {k: v for k, v in f.items() if k in inputs})
            timings[name]["b32"].append(len(words) / (time.perf_counter() - start))
            lat = []
            for f in single:
                t = time.perf_counter()
                s.run(["logits"], {k: v for k, v in f.items() if k in inputs})
                lat.append((time.perf_counter() - t) * 1000)
            timings[name]["b1"].append(statistics.median(lat))
    base = "int8-dynamic unsmoothed"
    result = {
        name: {
            "size_mib": round(graphs[name].stat().st_size / 2**20, 2),
            "texts_per_s_b32": round(statistics.median(t["b32"]), 1),
            "p50_ms_b1": round(statistics.median(t["b1"]), 3),
            "b32_rounds": [round(x, 1) for x in t["b32"]],
        }
        for name, t in timings.items()
    }
    for r in result.values():
        r["b32_vs_unsmoothed_int8"] = round(
            r["texts_per_s_b32"] / result[base]["texts_per_s_b32"], 3
        )
        r["b1_vs_unsmoothed_int8"] = round(r["p50_ms_b1"] / result[base]["p50_ms_b1"], 3)
    fig = {
        "run": str(args.run),
        "alpha": args.alpha,
        "graphs": result,
        "rounds": args.rounds,
        "speed_texts": len(words),
        "machine": machine(),
        "load_start": load_start,
        "load_end": [round(x, 2) for x in os.getloadavg()],
    }
    lines = [
        "# int8 smoothing: speed cost (token classification)",
        "",
        f"Run {args.run}; {len(words)} texts of {args.texts}; ONNX Runtime, 2 threads; medians of "
        f"{args.rounds} interleaved rounds. Machine: {fig['machine']}. Load average at start "
        f"{load_start}, at end {fig['load_end']}.",
        "",
        "| graph | size MiB | texts/s (b32) | p50 ms (b1) | b32 vs unsmoothed int8 | b1 p50 vs unsmoothed int8 | b32 per round |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in result.items():
        lines.append(
            f"| {name} | {r['size_mib']} | {r['texts_per_s_b32']} | {r['p50_ms_b1']} | "
            f"{r['b32_vs_unsmoothed_int8']} | {r['b1_vs_unsmoothed_int8']} | {r['b32_rounds']} |"
        )
    write_results(args.results, "int8_smoothing", fig, "\n".join(lines) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
