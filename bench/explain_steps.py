"""Integrated gradients at fixed 20 steps against steps chosen per sentence for a 1 %
completeness error (issue 29, part 5).

    python bench/explain_steps.py [--data-dir ../shared/data] [--rows 2000] [--sentences 300]

Trains an SST-2 model with the default recipe on a seeded sample of the training file (cached
in the work folder), then explains the first `--sentences` test sentences twice per sentence,
in turn: IG with 20 steps, and IG with steps unset (24, then as many as the error asks, until |delta| / |f(x) - f(b)|
<= 1 %, at most 128). Each run scores comprehensiveness against a random ranking of the same
sentence, so faithfulness is compared on the same texts. Two torch threads, medians.

Writes its keys into bench/results/explain.json (and .md below the table) and
`ig_ms_per_sentence_at_1pct` into bench/results/limits.json.
"""

from __future__ import annotations

import json
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


def compare(run_dir: Path, texts: list[str]) -> dict[str, Any]:
    """Explain `texts` with IG at 20 steps and at automatic steps, in turn; return the figures."""
    import torch

    from modelyard.explainability import as_subject
    from modelyard.explainability.core import resolve_config
    from modelyard.explainability.faithfulness import RANDOM, FaithfulnessRun
    from modelyard.registry import load_run

    torch.set_num_threads(THREADS)
    subject = as_subject(load_run(run_dir))
    cfgs = {
        "fixed_20": resolve_config(subject, steps=20, seed=0),
        "auto_1pct": resolve_config(subject, completeness_error=0.01, seed=0),
    }
    for cfg in cfgs.values():  # warm-up (first-call allocations), not counted
        FaithfulnessRun(subject, ["ig"], cfg).add(texts[0])
    runs = {name: FaithfulnessRun(subject, ["ig"], cfg) for name, cfg in cfgs.items()}
    start = time.perf_counter()
    for i, text in enumerate(texts, 1):
        for run in runs.values():
            run.add(text)
        if i % 50 == 0:
            print(f"{i}/{len(texts)}, {time.perf_counter() - start:.0f} s", file=sys.stderr)
    out: dict[str, Any] = {}
    for name, run in runs.items():
        report = run.report().methods
        ig, rnd = report["ig"], report[RANDOM]
        out[name] = {
            "ms_per_sentence": ig.ms_per_explanation,
            "median_relative_delta": ig.median_relative_delta,
            "within_1pct": ig.within_completeness_error
            if name == "auto_1pct"
            else _share_within(run, 0.01),
            "median_steps": ig.median_steps,
            "comprehensiveness_ratio": round(
                ig.comprehensiveness[HEADLINE_K] / rnd.comprehensiveness[HEADLINE_K], 3
            ),
            "comprehensiveness_aopc": ig.comprehensiveness_aopc,
            "n": ig.n,
        }
    return out


def _share_within(run: Any, error: float) -> float:
    deltas = run.scores["ig"].deltas
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
    parser.add_argument("--sentences", type=int, default=300, help="test sentences explained")
    args = parser.parse_args()
    work = args.work / "explain_steps"
    run_dir = train_model(args.data_dir, work, args.rows)
    texts = list(read_csv(args.data_dir / "sst2" / "test.csv")["text"])[: args.sentences]
    result = compare(run_dir, texts)
    auto, fixed = result["auto_1pct"], result["fixed_20"]
    keys = {
        "ig_steps_comparison": {
            "machine": machine(),
            "training_rows": args.rows,
            "sentences": len(texts),
            **result,
        },
        "ig_ms_per_sentence_at_1pct": auto["ms_per_sentence"],
        "ig_auto_share_within_1pct": auto["within_1pct"],
        "ig_auto_vs_fixed20_comprehensiveness": round(
            auto["comprehensiveness_ratio"] / fixed["comprehensiveness_ratio"], 3
        ),
    }
    lines = [
        "",
        f"SST-2 model trained on {args.rows} rows with the default recipe; the first "
        f"{len(texts)} test sentences, each explained by both settings in turn, "
        f"{THREADS} threads. CPU: {keys['ig_steps_comparison']['machine'].get('cpu_model')}.",
        "",
        "| IG setting | ms per sentence (median) | median steps | within 1 % error | "
        "median error | comprehensiveness / random at 20 % |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in result.items():
        lines.append(
            f"| {name} | {r['ms_per_sentence']} | {r['median_steps']} | {r['within_1pct']} | "
            f"{r['median_relative_delta']} | {r['comprehensiveness_ratio']} |"
        )
    lines.append(
        f"\nGoal: <= {GOAL_MS:.0f} ms per sentence at <= 1 % completeness error: "
        f"{auto['ms_per_sentence'] <= GOAL_MS}."
    )
    update(args.results, "explain", keys, lines)
    update(
        args.results,
        "limits",
        {"ig_ms_per_sentence_at_1pct": auto["ms_per_sentence"], "ig_machine": machine()},
        lines,
    )
    print(json.dumps({k: v for k, v in keys.items() if k != "ig_steps_comparison"}, indent=1))


if __name__ == "__main__":
    main()
