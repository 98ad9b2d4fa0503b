"""Integrated gradients: steps chosen per sentence for a 1 % completeness error, against
fixed 20 steps and captum's implementation (issue 29, part 5).

    python bench/explain_steps.py [--data-dir ../shared/data] [--rows 2000] [--sentences 150]

Trains an SST-2 model with the default recipe on a seeded sample of the training file (cached
in the work folder), then explains the first `--sentences` test sentences with each setting
in turn (interleaved, so all see the same machine load):

- `captum_20`: captum's LayerIntegratedGradients, 20 steps (what modelyard ran before),
- `fixed_20`: modelyard's batched IG, 20 steps, fp32,
- `auto_1pct_fp32`: steps unset (24, then as many as the error asks, until
  |delta| / |f(x) - f(b)| <= 1 %, at most 128), fp32,
- `auto_1pct`: the default: as above, path in bf16 where the CPU has native bf16 (ends and
  error in fp32; a miss is redone in fp32).

Each run scores comprehensiveness against a random ranking of the same sentence, so
faithfulness is compared on the same texts. Two torch threads, medians.

Writes its keys into bench/results/explain.json (and .md below the table) and
`ig_ms_per_sentence_at_1pct` into bench/results/limits.json.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import base_parser, machine, read_csv
from finetune import SEED, prepare

THREADS = 2
HEADLINE_K = "20"  # ERASER bin of the explain benchmark's headline (keys are formatted with :g)
GOAL_MS = 300.0


def train_model(data_dir: Path, work: Path, rows: int) -> Path:
    """Train (or reuse) the SST-2 model with the default recipe; return its run folder."""
    import modelyard
    from modelyard.recipe import build_recipe

    out = work / "runs" / f"sst2-{rows}"
    if (out / "manifest.json").is_file():
        return out
    train, test = prepare(data_dir, work / f"rows-{rows}", "sst2", rows)
    recipe = build_recipe(
        {
            "run": {"name": out.name, "output_dir": str(out.parent), "seed": SEED},
            "data": {"train": str(train), "test": str(test)},
            "evaluate": {"speed": False},
        }
    )
    return Path(modelyard.train(recipe, overwrite=True, progress=False).run_dir)


def register_captum_ig() -> str:
    """Register captum's LayerIntegratedGradients as the bench-only method `ig-captum`."""
    from captum.attr import LayerIntegratedGradients

    from modelyard.explainability.gradient import (
        _attribution,
        encode,
        explained_output,
        pad_baseline,
    )
    from modelyard.explainability.methods import EXPLAINERS, method

    if "ig-captum" in EXPLAINERS.names():
        return "ig-captum"

    @method("ig-captum", needs_gradients=True, summary="captum LayerIntegratedGradients")
    def captum_ig(subject: Any, words: Any, target: int, cfg: Any) -> Any:
        run = subject.run
        enc = encode(subject, words)
        lig = LayerIntegratedGradients(
            explained_output(run.model, target, cfg.score, run.temperature),
            run.model.get_input_embeddings(),
        )
        per_dim, delta = lig.attribute(
            enc.input_ids,
            baselines=pad_baseline(enc, run.tokenizer.pad_token_id or 0),
            additional_forward_args=enc.extra,
            n_steps=cfg.steps,
            internal_batch_size=cfg.steps,
            return_convergence_delta=True,
        )
        return _attribution(enc, words, per_dim, float(delta[0]), cfg.steps)

    return "ig-captum"


def compare(run_dir: Path, texts: list[str]) -> dict[str, Any]:
    """Explain `texts` with every IG setting, in turn per sentence; return the figures."""
    import torch

    from modelyard.explainability import as_subject
    from modelyard.explainability.core import resolve_config
    from modelyard.explainability.faithfulness import RANDOM, FaithfulnessRun
    from modelyard.registry import load_run

    torch.set_num_threads(THREADS)
    subject = as_subject(load_run(run_dir))
    settings = {
        "captum_20": (register_captum_ig(), {"steps": 20}),
        "fixed_20": ("ig", {"steps": 20, "precision": "fp32"}),
        "auto_1pct_fp32": ("ig", {"completeness_error": 0.01, "precision": "fp32"}),
        "auto_1pct": ("ig", {"completeness_error": 0.01}),
    }
    cfgs = {name: resolve_config(subject, seed=0, **opts) for name, (_, opts) in settings.items()}
    for name, (ig, _) in settings.items():  # warm-up (first-call allocations), not counted
        FaithfulnessRun(subject, [ig], cfgs[name]).add(texts[0])
    runs = {name: FaithfulnessRun(subject, [ig], cfgs[name]) for name, (ig, _) in settings.items()}
    start = time.perf_counter()
    for i, text in enumerate(texts, 1):
        for run in runs.values():
            run.add(text)
        if i % 25 == 0:
            print(f"{i}/{len(texts)}, {time.perf_counter() - start:.0f} s", file=sys.stderr)
    out: dict[str, Any] = {}
    for name, run in runs.items():
        ig = settings[name][0]
        report = run.report().methods
        scores, rnd = report[ig], report[RANDOM]
        out[name] = {
            "precision": _precision(cfgs[name].precision) if ig == "ig" else "fp32",
            "ms_per_sentence": scores.ms_per_explanation,
            "median_relative_delta": scores.median_relative_delta,
            "within_1pct": _share_within(run, ig, 0.01),
            "median_steps": scores.median_steps,
            "comprehensiveness_ratio": round(
                scores.comprehensiveness[HEADLINE_K] / rnd.comprehensiveness[HEADLINE_K], 3
            ),
            "comprehensiveness_aopc": scores.comprehensiveness_aopc,
            "n": scores.n,
        }
    return out


def add_mfu(
    result: dict[str, Any], run_dir: Path, texts: list[str], peaks: dict[str, float]
) -> None:
    """Add to each setting of `result` the FLOP utilisation of its median sentence.

    A path step is a forward pass and a backward pass to the embeddings only (no weight
    gradients: about one more forward), and every sentence also runs its two ends forward:
    (2 x median steps + 2) forwards of the median sentence's real tokens, in the median
    time, against the GEMM peak of the path's number format.
    """
    import statistics

    from modelyard.evaluation.utilisation import TransformerShape, model_flops
    from modelyard.registry import load_run

    run = load_run(run_dir)
    shape = TransformerShape.from_config(run.model.config)
    tokens = statistics.median(len(ids) for ids in run.tokenizer(texts)["input_ids"])
    forward = model_flops(shape, [int(tokens)])
    for r in result.values():
        flops = (2 * r["median_steps"] + 2) * forward
        peak = peaks.get(r["precision"]) or peaks["fp32"]
        r["median_tokens"] = tokens
        r["mfu_at_median"] = round(flops / (r["ms_per_sentence"] / 1e3) / (peak * 1e9), 4)
        r["peak_gflops"] = peak


def _precision(option: str) -> str:
    """Return the path precision `option` resolves to on this CPU (bf16 or fp32)."""
    import torch

    from modelyard.explainability.gradient import path_dtype

    return "bf16" if path_dtype(option, torch.device("cpu")) is not None else "fp32"


def _share_within(run: Any, method: str, error: float) -> float:
    deltas = run.scores[method].deltas
    return round(sum(d <= error for d in deltas) / len(deltas), 4)


def update(results: Path, name: str, keys: dict[str, Any], lines: list[str]) -> None:
    """Merge `keys` into results/<name>.json and append `lines` to results/<name>.md."""
    path = results / f"{name}.json"
    figures = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    figures.update(keys)
    path.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    md = results / f"{name}.md"
    old = md.read_text(encoding="utf-8") if md.is_file() else f"# {name}\n"
    marker = "\n## Integrated gradients: steps by completeness error\n"
    old = old.split(marker)[0].rstrip("\n") + "\n"
    md.write_text(old + marker + "\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    """Run the comparison and write its figures."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000, help="SST-2 training rows sampled")
    parser.add_argument("--sentences", type=int, default=150, help="test sentences explained")
    args = parser.parse_args()
    work = args.work / "explain_steps"
    run_dir = train_model(args.data_dir, work, args.rows)
    texts = list(read_csv(args.data_dir / "sst2" / "test.csv")["text"])[: args.sentences]
    load_before = [round(x, 2) for x in os.getloadavg()]
    from modelyard.evaluation.utilisation import peak_table

    peaks = peak_table(THREADS)
    result = compare(run_dir, texts)
    add_mfu(result, run_dir, texts, peaks)
    auto, fixed, captum = result["auto_1pct"], result["fixed_20"], result["captum_20"]
    keys = {
        "ig_steps_comparison": {
            "machine": machine(),
            "load_before": load_before,
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "training_rows": args.rows,
            "sentences": len(texts),
            **result,
        },
        "ig_ms_per_sentence_at_1pct": auto["ms_per_sentence"],
        "ig_completeness_error_median_at_1pct": auto["median_relative_delta"],
        "ig_median_steps_at_1pct": auto["median_steps"],
        "ig_auto_share_within_1pct": auto["within_1pct"],
        "ig_auto_vs_fixed20_comprehensiveness": round(
            auto["comprehensiveness_ratio"] / fixed["comprehensiveness_ratio"], 3
        ),
        "ig_auto_vs_captum20_speedup": round(
            captum["ms_per_sentence"] / auto["ms_per_sentence"], 2
        ),
    }
    lines = [
        "",
        f"SST-2 model trained on {args.rows} rows with the default recipe; the first "
        f"{len(texts)} test sentences, each explained by every setting in turn, "
        f"{THREADS} threads. CPU: {keys['ig_steps_comparison']['machine'].get('cpu_model')}, "
        f"ISA {', '.join(keys['ig_steps_comparison']['machine'].get('cpu_isa', []))}; load "
        f"before {load_before}, after {keys['ig_steps_comparison']['load_after']}.",
        "",
        "| IG setting | path precision | ms per sentence (median) | median steps | "
        "within 1 % error | median error | comprehensiveness / random at 20 % | MFU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result.items():
        lines.append(
            f"| {name} | {r['precision']} | {r['ms_per_sentence']} | {r['median_steps']} | "
            f"{r['within_1pct']} | "
            f"{r['median_relative_delta']} | {r['comprehensiveness_ratio']} | "
            f"{r['mfu_at_median']} |"
        )
    lines.append(
        f"\nMFU: (2 x median steps + 2) forward passes of the median sentence "
        f"({auto['median_tokens']} real tokens) in the median time, against the GEMM peak of "
        f"the path's format ({', '.join(f'{k} {v}' for k, v in peaks.items())} GFLOP/s, "
        "measured at the start of the run)."
    )
    lines.append(
        f"\nGoal: <= {GOAL_MS:.0f} ms per sentence at <= 1 % completeness error: "
        f"{auto['ms_per_sentence'] <= GOAL_MS}."
    )
    update(args.results, "explain", keys, lines)
    update(
        args.results,
        "limits",
        {
            "ig_ms_per_sentence_at_1pct": auto["ms_per_sentence"],
            "ig_completeness_error_median_at_1pct": auto["median_relative_delta"],
            "ig_median_steps_at_1pct": auto["median_steps"],
            "ig_mfu_at_1pct": auto["mfu_at_median"],
            "ig_machine": machine(),
            "ig_load": [load_before, keys["ig_steps_comparison"]["load_after"]],
        },
        lines,
    )
    print(json.dumps({k: v for k, v in keys.items() if k != "ig_steps_comparison"}, indent=1))


if __name__ == "__main__":
    main()
