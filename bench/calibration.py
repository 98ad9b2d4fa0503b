"""Temperature scaling after training: ECE before and after, accuracy unchanged (issue 29.6).

    python bench/calibration.py [--data-dir ../shared/data] [--rows 1500] [--ag-news-test-rows 2000]
        [--datasets sst2,trec,ag_news] [--seeds 1]

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
import statistics
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
from finetune import SEED

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
            "run": {"name": config["name"], "output_dir": config["out"], "seed": config["seed"]},
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


def one_run(args: Any, dataset: str, paths: tuple[Path, Path], seed: int) -> dict[str, Any]:
    """Run (or read from the cache) the default recipe on one dataset's sample drawn with
    `seed` (also the run's seed); return its figures."""
    tag = "" if seed == SEED else f"-seed{seed}"
    cache = (
        args.work
        / "cache"
        / (f"calibration-{dataset}-{args.rows}-{args.ag_news_test_rows}{tag}.json")
    )
    if cache.is_file():
        return dict(json.loads(cache.read_text(encoding="utf-8")))
    config = {
        "name": f"calibration-{dataset}{tag}",
        "out": str(args.work / "runs"),
        "train": str(paths[0]),
        "test": str(paths[1]),
        "threads": args.threads,
        "seed": seed,
    }
    before = load()
    figures = run_json_subprocess([__file__, "--child", json.dumps(config)])
    figures.update(load_before=before, load_after=load(), seed=seed)
    print(
        f"{dataset} seed {seed}: acc {figures['accuracy']:.4f} T {figures['temperature']:.3f} "
        f"ECE {figures['ece_before']:.4f} -> {figures['ece_after']:.4f} "
        f"({figures['run_seconds']} s, load {before})",
        file=sys.stderr,
        flush=True,
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(figures), encoding="utf-8")
    return figures


def prepare_sets(args: Any, seed: int) -> dict[str, tuple[Path, Path]]:
    """Write each dataset's training sample drawn with `seed` (and AG News's test sample,
    always drawn with SEED); return the paths."""
    paths = {}
    base = args.work / f"rows-{args.rows}"
    for name in args.datasets:
        folder = (base if seed == SEED else args.work / f"rows-{args.rows}-{seed}") / name
        folder.mkdir(parents=True, exist_ok=True)
        train = folder / "train.csv"
        source = read_csv(args.data_dir / name / "train.csv")
        stratified_sample(source, args.rows, seed).to_csv(train, index=False)
        test = args.data_dir / name / "test.csv"
        if name == "ag_news" and args.ag_news_test_rows:
            small = base / name / f"test-{args.ag_news_test_rows}.csv"
            small.parent.mkdir(parents=True, exist_ok=True)
            stratified_sample(read_csv(test), args.ag_news_test_rows, SEED).to_csv(
                small, index=False
            )
            test = small
        paths[name] = (train, test)
    return paths


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the first seed's figures with, over several seeds, each seed's headline figures
    and their means (`*_mean`), which then stand for the set."""
    first = dict(runs[0])
    if len(runs) > 1:
        keys = ("ece_before", "ece_after", "accuracy", "temperature")
        first["seeds"] = [{"seed": r.get("seed", SEED), **{k: r[k] for k in keys}} for r in runs]
        for k in keys:
            first[f"{k}_mean"] = round(statistics.mean(r[k] for r in runs), 4)
    return first


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
    seeded = [
        f"| {d} | {s['seed']} | {s['temperature']:.3f} | {s['ece_before']:.4f} | "
        f"{s['ece_after']:.4f} | {s['accuracy']:.4f} |"
        for d, r in fig["runs"].items()
        for s in r.get("seeds", [])
    ]
    means = [
        f"| {d} | mean of {len(r['seeds'])} | {r['temperature_mean']:.3f} | "
        f"{r['ece_before_mean']:.4f} | **{r['ece_after_mean']:.4f}** | {r['accuracy_mean']:.4f} |"
        for d, r in fig["runs"].items()
        if r.get("seeds")
    ]
    by_seed = (
        "\n\nSets run with several seeds (each seed draws its own training sample and seeds its "
        "run; the test file is the same; the table above shows the first seed): the headline "
        "`ece_after_<set>` is the mean over the seeds, since ECE on one test set moves by a "
        "point or more from one training sample to the next.\n\n"
        "| dataset | seed | T | ECE before | ECE after | acc |\n|---|---|---|---|---|---|\n"
        + "\n".join(seeded + means)
        if seeded
        else ""
    )
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
rows, measured in the same run: temperature scaling leaves every prediction as it was.{by_seed}
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
    parser.add_argument(
        "--seeds", type=int, default=1, help="training samples (and run seeds) per set"
    )
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(json.loads(args.child))))
        return
    args.datasets = args.datasets.split(",")
    seeds = [SEED + k for k in range(args.seeds)]
    per_seed = {seed: prepare_sets(args, seed) for seed in seeds}
    runs = {
        d: summarise([one_run(args, d, per_seed[seed][d], seed) for seed in seeds])
        for d in args.datasets
    }
    # sets not run this time keep their figures from the last run
    old = args.results / "calibration.json"
    if old.is_file():
        kept = json.loads(old.read_text(encoding="utf-8")).get("runs", {})
        runs = {**{d: r for d, r in kept.items() if d not in runs}, **runs}
    runs = {d: runs[d] for d in DATASETS if d in runs}
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
            fig[f"{key}_{d}"] = r.get(f"{key}_mean", r[key])
        fig[f"accuracy_{d}"] = r.get("accuracy_mean", r["accuracy"])
    write_results(args.results, "calibration", fig, markdown(fig))
    after = {f"ece_after_{d}": fig[f"ece_after_{d}"] for d in runs}
    line = (
        f"ECE before -> after temperature scaling (goal after <= {GOAL_ECE}; {args.rows} "
        "training rows, default recipe): "
        + ", ".join(
            f"{d} {fig[f'ece_before_{d}']:.3f} -> {fig[f'ece_after_{d}']:.3f} "
            f"(acc {fig[f'accuracy_{d}']:.4f}"
            + (f", mean of {len(r['seeds'])} seeds)" if r.get("seeds") else ")")
            for d, r in runs.items()
        )
    )
    update_limits(args.results, after, line)


if __name__ == "__main__":
    main()
