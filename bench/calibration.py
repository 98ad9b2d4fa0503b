"""Temperature scaling after training: ECE before and after, accuracy unchanged (issue 29.6).

    python bench/calibration.py [--data-dir ../shared/data] [--rows 1500] [--ag-news-test-rows 2000]

For SST-2, TREC and AG News: a stratified, seeded sample of train.csv (the recipe's default
10% dev split is carved from it, and the temperature is fitted on that dev split), the test
file (AG News: a stratified sample of it), and one modelyard run with the default recipe
(`train.calibrate: true`), each in its own process on one thread. The run itself measures
the held-out test split twice: with the fitted temperature (the artifact's metrics) and with
T = 1 (the plain softmax). A run's figures are cached in the work folder, so an interrupted
benchmark resumes where it stopped.

Headline keys per dataset: ece_before_<set>, ece_after_<set> (goal <= 0.05),
accuracy_<set> and accuracy_before_<set> (identical: scaling never changes a prediction),
temperature_<set>. The ece_after_* keys also go into bench/results/limits.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    base_parser,
    machine,
    read_csv,
    run_json_subprocess,
    stratified_sample,
    write_results,
)
from common import update_limits as merge_limits
from finetune import SEED, prepare

DATASETS = ("sst2", "trec", "ag_news")
GOAL_ECE = 0.05
_SECTION = "Calibration (bench/calibration.py)"


def run_child(config: dict[str, Any]) -> dict[str, Any]:
    """Train one default run in this process and return its calibration figures."""
    import shutil

    import modelyard
    from modelyard.recipe import build_recipe

    recipe = build_recipe(
        {
            "run": {"name": config["name"], "output_dir": config["out"], "seed": SEED},
            "data": {"train": config["train"], "test": config["test"]},
            # one thread: on a shared 2-core machine two threads per process spin against the
            # neighbours'; calibration does not depend on it
            "train": {"num_threads": config["threads"]},
            "evaluate": {"speed": False},
        }
    )
    start = time.perf_counter()
    result = modelyard.train(recipe, overwrite=True, progress=False)
    seconds = time.perf_counter() - start
    t, m = result.training, result.metrics
    cal = t["calibration"]
    shutil.rmtree(result.run_dir, ignore_errors=True)  # 90 MB a run; the figures are kept
    keys = ("temperature", "dev_rows", "dev_nll_before", "dev_nll_after")
    keys += ("dev_ece_before", "dev_ece_after", "ece_before", "ece_after", "accuracy_before")
    return {
        "accuracy": m["accuracy"],
        "macro_f1": m["macro_f1"],
        "test_rows": m["n"],
        **{k: cal[k] for k in keys},
        "steps": t["steps"],
        "stop_reason": t["stop_reason"],
        "loop_seconds": t["wall_seconds"],
        "run_seconds": round(seconds, 1),
    }


def load() -> list[float]:
    """Return the 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def one_run(args: Any, dataset: str, paths: tuple[Path, Path]) -> dict[str, Any]:
    """Run (or read from the cache) the default recipe on one dataset; return its figures."""
    cache = args.work / "cache" / f"calibration-{dataset}-{args.rows}-{args.ag_news_test_rows}.json"
    if cache.is_file():
        return dict(json.loads(cache.read_text(encoding="utf-8")))
    config = {
        "name": f"calibration-{dataset}",
        "out": str(args.work / "runs"),
        "train": str(paths[0]),
        "test": str(paths[1]),
        "threads": args.threads,
    }
    before = load()
    figures = run_json_subprocess([__file__, "--child", json.dumps(config)])
    figures.update(load_before=before, load_after=load())
    print(
        f"{dataset}: acc {figures['accuracy']:.4f} T {figures['temperature']:.3f} ECE "
        f"{figures['ece_before']:.4f} -> {figures['ece_after']:.4f} "
        f"({figures['run_seconds']} s, load {before})",
        file=sys.stderr,
        flush=True,
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(figures), encoding="utf-8")
    return figures


def prepare_sets(args: Any) -> dict[str, tuple[Path, Path]]:
    """Write each dataset's training sample (and AG News's test sample); return the paths."""
    paths = {}
    for name in args.datasets:
        train, test = prepare(args.data_dir, args.work / f"rows-{args.rows}", name, args.rows)
        if name == "ag_news" and args.ag_news_test_rows:
            small = train.parent / f"test-{args.ag_news_test_rows}.csv"
            sample = stratified_sample(read_csv(test), args.ag_news_test_rows, SEED)
            sample.to_csv(small, index=False)
            test = small
        paths[name] = (train, test)
    return paths


def update_limits(results: Path, keys: dict[str, Any], line: str) -> None:
    """Merge `keys` into `limits.json` and this benchmark's section of `limits.md`."""
    merge_limits(results, keys, _SECTION, line)


def markdown(fig: dict[str, Any]) -> str:
    """Return the benchmark's markdown report."""
    rows = [
        f"| {d} | {r['test_rows']} | {r['dev_rows']} | {r['temperature']:.3f} | "
        f"{r['ece_before']:.4f} | {r['ece_after']:.4f} | {r['accuracy_before']:.4f} | "
        f"{r['accuracy']:.4f} | {r['dev_nll_before']:.4f} -> {r['dev_nll_after']:.4f} | "
        f"{r['run_seconds']} |"
        for d, r in fig["runs"].items()
    ]
    return f"""# Calibration: temperature scaling after training

Machine: {fig["machine"]}; load average at the end {fig["uptime_load_at_end"]}.

Each set: a stratified {fig["rows"]}-row sample of train.csv (the recipe's default 10% dev
split is carved from it and the temperature is fitted there), the test file (sizes below),
the default recipe (`train.calibrate: true`), one thread. ECE: 15 equal-width bins of top-1
confidence. Goal: ECE after <= {GOAL_ECE} on every set, accuracy unchanged.

| dataset | test rows | dev rows | T | ECE before | ECE after | acc (T = 1) | acc (T) | dev NLL | run s |
|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Runs one after another: {fig["total_run_seconds"]} s of training runs in all (load averages
before each run are in the JSON). `acc (T = 1)` is the plain softmax's argmax on the same test
rows, measured in the same run: temperature scaling leaves every prediction as it was.
"""


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=1500, help="training rows sampled per set")
    parser.add_argument(
        "--ag-news-test-rows", type=int, default=2000, help="AG News test rows sampled (0: all)"
    )
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated sets")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(json.loads(args.child))))
        return
    args.datasets = args.datasets.split(",")
    paths = prepare_sets(args)
    runs = {d: one_run(args, d, paths[d]) for d in args.datasets}
    fig: dict[str, Any] = {
        "machine": machine(),
        "uptime_load_at_end": load(),
        "rows": args.rows,
        "ag_news_test_rows": args.ag_news_test_rows,
        "threads": args.threads,
        "total_run_seconds": round(sum(r["run_seconds"] for r in runs.values()), 1),
        "runs": runs,
    }
    for d, r in runs.items():
        for key in ("ece_before", "ece_after", "accuracy_before", "temperature"):
            fig[f"{key}_{d}"] = r[key]
        fig[f"accuracy_{d}"] = r["accuracy"]
    write_results(args.results, "calibration", fig, markdown(fig))
    after = {f"ece_after_{d}": r["ece_after"] for d, r in runs.items()}
    line = (
        f"ECE before -> after temperature scaling (goal after <= {GOAL_ECE}; {args.rows} "
        "training rows, default recipe): "
        + ", ".join(
            f"{d} {r['ece_before']:.3f} -> {r['ece_after']:.3f} (acc {r['accuracy']:.4f})"
            for d, r in runs.items()
        )
    )
    update_limits(args.results, after, line)


if __name__ == "__main__":
    main()
