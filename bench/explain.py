"""Explainability benchmark: faithfulness and speed of every attribution method on SST-2.

    python bench/explain.py [--data-dir ../shared/data] [--quick]

The SST-2 model of the fine-tuning benchmark (bench/work/runs/sst2-auto) explains all 872
test sentences with integrated gradients (20 steps), gradient x input, occlusion and
Shapley sampling (10 permutations). Each method's top-k% words (ERASER bins 1/5/10/20/50 %)
are removed (comprehensiveness) or kept alone (sufficiency), next to a random ranking of
the same sentence with the same k; AOPC is the mean over the bins. The methods run in turn
on each sentence (interleaved), so the time per explanation of each method is measured
under the same machine load; figures are medians. Torch uses 2 threads.

Headline: comprehensiveness at k = 20 % (4 words of a 19-word sentence) over random's at 20 %.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    ROOT,
    base_parser,
    flops_per_text,
    machine,
    measure_peaks,
    mfu_of,
    read_csv,
    write_results,
)

METHODS = ["ig", "gxi", "occlusion", "shapley"]
HEADLINE_K = 20.0
THREADS = 2


def run_benchmark(
    run_dir: Path, texts: list[str], steps: int, samples: int, methods: list[str]
) -> dict[str, Any]:
    """Explain and score `texts` with each of `methods`; return the figures."""
    import torch

    from modelyard.explainability import as_subject
    from modelyard.explainability.core import resolve_config
    from modelyard.explainability.faithfulness import RANDOM, FaithfulnessRun
    from modelyard.registry import load_run

    torch.set_num_threads(THREADS)
    subject = as_subject(load_run(run_dir))
    cfg = resolve_config(subject, steps=steps, samples=samples, seed=0)
    run = FaithfulnessRun(subject, methods, cfg)
    run.add(texts[0])  # warm-up (first-call allocations), not counted
    run = FaithfulnessRun(subject, methods, cfg)
    start = time.perf_counter()
    for i, text in enumerate(texts, 1):
        run.add(text)
        if i % 50 == 0 or i == len(texts):
            print(
                f"{i}/{len(texts)} sentences, {time.perf_counter() - start:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    report = run.report()
    spread = {
        name: {
            "p10": round(1000 * float(np.percentile(s.seconds, 10)), 2),
            "p90": round(1000 * float(np.percentile(s.seconds, 90)), 2),
        }
        for name, s in run.scores.items()
        if name != RANDOM
    }
    return {"report": report, "spread": spread, "seconds": time.perf_counter() - start, "cfg": cfg}


def figures(result: dict[str, Any], run_dir: Path, n_words: float) -> dict[str, Any]:
    """Return the JSON figures: the issue's three keys first, then the details."""
    report = result["report"]
    data = report.to_dict()
    ms = {name: m["ms_per_explanation"] for name, m in data["methods"].items() if name != "random"}
    return {
        "ig_comprehensiveness_ratio": round(report.ratio("ig", HEADLINE_K), 3),
        "occlusion_comprehensiveness_ratio": round(report.ratio("occlusion", HEADLINE_K), 3),
        "ig_ms_per_sentence": ms["ig"],
        "ms_per_explanation": ms,
        "ms_per_explanation_p10_p90": result["spread"],
        "headline_k_percent": HEADLINE_K,
        "comprehensiveness_ratio_by_k": {
            name: m["comprehensiveness_ratio"]
            for name, m in data["methods"].items()
            if name != "random"
        },
        "comprehensiveness_aopc_ratio": {
            name: m["comprehensiveness_aopc_ratio"]
            for name, m in data["methods"].items()
            if name != "random"
        },
        "ig_median_relative_delta": data["methods"]["ig"]["median_relative_delta"],
        "goals": {
            "ig_comprehensiveness_at_least_2x_random": report.ratio("ig", HEADLINE_K) >= 2,
            "occlusion_comprehensiveness_at_least_2x_random": report.ratio("occlusion", HEADLINE_K)
            >= 2,
            "ig_20_steps_under_300_ms": ms["ig"] < 300,
        },
        "faithfulness": data,
        "settings": {
            "run": str(run_dir.relative_to(ROOT)) if run_dir.is_relative_to(ROOT) else str(run_dir),
            "ig_steps": result["cfg"].steps,
            "shapley_samples": result["cfg"].samples,
            "score": result["cfg"].score,
            "torch_threads": THREADS,
            "mean_words_per_sentence": round(n_words, 1),
            "wall_seconds": round(result["seconds"], 1),
        },
        "machine": machine(),
    }


def method_mfu(
    fig: dict[str, Any], run_dir: Path, texts: list[str], peak: float
) -> dict[str, float | None]:
    """Return the fp32 FLOP utilisation of IG and occlusion at their median time: IG runs
    (2 x steps + 2) forward-pass equivalents of the sentence (each step a forward pass and a
    backward pass to the embeddings, plus both ends), occlusion one forward pass per word and
    one for the whole text, all of about the median sentence's real tokens."""
    import statistics

    from modelyard.explainability.words import split_words

    words = statistics.median(len(split_words(t)) for t in texts if t.strip())
    kept = sorted((t for t in texts if t.strip()), key=len)
    forward = flops_per_text(run_dir, [kept[len(kept) // 2]])
    passes = {"ig": 2 * fig["settings"]["ig_steps"] + 2, "occlusion": words + 1}
    return {
        name: mfu_of(1e3 / fig["ms_per_explanation"][name], n * forward, peak)
        if name in fig["ms_per_explanation"]
        else None
        for name, n in passes.items()
    }


def markdown(fig: dict[str, Any]) -> str:
    """Return the figures as a markdown report."""
    data = fig["faithfulness"]
    keys = [f"{k:g}" for k in data["k_percent"]]
    lines = [
        "# Explainability benchmark",
        "",
        f"SST-2 test ({data['n_texts']} sentences, {fig['settings']['mean_words_per_sentence']} words on average), "
        f"model `{fig['settings']['run']}`; IG {fig['settings']['ig_steps']} steps, Shapley "
        f"{fig['settings']['shapley_samples']} permutations, scores explain the predicted class's "
        f"{fig['settings']['score']}; torch {fig['settings']['torch_threads']} threads.",
        f"Machine: {fig['machine']}",
        "",
        f"**Headline** (k = {fig['headline_k_percent']:g} %): IG comprehensiveness "
        f"{fig['ig_comprehensiveness_ratio']}x random, occlusion {fig['occlusion_comprehensiveness_ratio']}x "
        f"random; IG {fig['ig_ms_per_sentence']} ms per sentence (median). Goals: {fig['goals']}",
        "",
        f"FLOP utilisation at the median time, fp32 (GEMM peaks measured in this run: "
        f"{fig.get('peak_gflops')} GFLOP/s): {fig.get('mfu')}. IG counts 2 x steps + 2 forward "
        "passes of the sentence, occlusion one per word and one for the whole text.",
        "",
        "## Comprehensiveness (probability drop when the top-k% words are removed; higher is better)",
        "",
        "| method | " + " | ".join(f"{k}%" for k in keys) + " | AOPC |",
        "|---" * (len(keys) + 2) + "|",
    ]
    for name, m in data["methods"].items():
        lines.append(
            f"| {name} | "
            + " | ".join(f"{m['comprehensiveness'][k]:.4f}" for k in keys)
            + f" | {m['comprehensiveness_aopc']:.4f} |"
        )
    lines += [
        "",
        "## Sufficiency (probability drop when only the top-k% words are kept; lower is better)",
        "",
        "| method | " + " | ".join(f"{k}%" for k in keys) + " | AOPC |",
        "|---" * (len(keys) + 2) + "|",
    ]
    for name, m in data["methods"].items():
        lines.append(
            f"| {name} | "
            + " | ".join(f"{m['sufficiency'][k]:.4f}" for k in keys)
            + f" | {m['sufficiency_aopc']:.4f} |"
        )
    lines += [
        "",
        "## Comprehensiveness over random at the same k, and time per explanation",
        "",
        "| method | " + " | ".join(f"{k}%" for k in keys) + " | AOPC | ms median (p10-p90) |",
        "|---" * (len(keys) + 3) + "|",
    ]
    for name, ratios in fig["comprehensiveness_ratio_by_k"].items():
        sp = fig["ms_per_explanation_p10_p90"][name]
        lines.append(
            f"| {name} | "
            + " | ".join(f"{ratios[k]:.2f}x" for k in keys)
            + f" | {fig['comprehensiveness_aopc_ratio'][name]:.2f}x"
            + f" | {fig['ms_per_explanation'][name]} ({sp['p10']}-{sp['p90']}) |"
        )
    lines += [
        "",
        f"IG median relative convergence delta at {fig['settings']['ig_steps']} steps: "
        f"{fig['ig_median_relative_delta']} (|delta| / |f(x) - f(baseline)|).",
        "Each time includes the sentence's own forward pass; methods run in turn on each sentence.",
        "Standard errors per k are in explain.json (`faithfulness.methods.*.*_sem`).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark and write bench/results/explain.json and .md."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=ROOT / "bench" / "work" / "runs" / "sst2-auto")
    parser.add_argument(
        "--quick", action="store_true", help="first 40 sentences only (development)"
    )
    parser.add_argument("--steps", type=int, default=20, help="integrated-gradients steps")
    parser.add_argument("--samples", type=int, default=10, help="Shapley permutations")
    parser.add_argument(
        "--methods", default=",".join(METHODS), help="comma-separated attribution methods"
    )
    args = parser.parse_args()
    from modelyard.explainability.words import split_words

    if not (args.run / "manifest.json").is_file():
        sys.exit(f"{args.run} is not a finished run: run bench/finetune.py first")
    test = read_csv(args.data_dir / "sst2" / "test.csv")
    texts = list(test["text"])[: 40 if args.quick else None]
    peaks = measure_peaks(THREADS)
    result = run_benchmark(args.run, texts, args.steps, args.samples, args.methods.split(","))
    n_words = float(np.mean([len(split_words(t)) for t in texts if t.strip()]))
    fig = figures(result, args.run, n_words)
    fig["peak_gflops"] = peaks
    fig["mfu"] = method_mfu(fig, args.run, texts, peaks["fp32"])
    # a quick run is for development: its figures stay in the scratch folder
    write_results(args.work if args.quick else args.results, "explain", fig, markdown(fig))
    print(
        {
            k: fig[k]
            for k in (
                "ig_comprehensiveness_ratio",
                "occlusion_comprehensiveness_ratio",
                "ig_ms_per_sentence",
            )
        }
    )


if __name__ == "__main__":
    main()
