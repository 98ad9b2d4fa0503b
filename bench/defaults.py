"""Default stopping rule against a sweep of fixed epoch counts (issue 30).

    python bench/defaults.py [--data-dir ../shared/data] [--rows 1500] [--quick]

For each shared classification set (SST-2, TREC, AG News, SMS spam): a stratified, seeded
sample of train.csv (the dev split is carved from it by the recipe's default 10%), the full
test.csv, and one modelyard run per setting with everything but the setting left at the
recipe defaults: `defaults` (train.epochs auto: early stopping on the dev metric decides) and
`e2`, `e4`, `e8`, `e12` (train.epochs fixed; each its own run, since a fixed run's learning
rate decays to zero over its own length). Settings are interleaved across datasets (setting
by setting, every dataset in turn) and each run is its own process. A run's figures are
cached in the work folder, so an interrupted benchmark resumes where it stopped.

Headline keys per dataset: defaults_minus_best_sweep_<set> (test accuracy of the defaults
minus the best sweep run's; goal >= -0.005) and defaults_time_vs_best_sweep_<set> (wall time
of the training loop, defaults over the best sweep run; goal <= 1.5). Sample preparation is
finetune.py's.
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

from common import base_parser, machine, read_csv, run_json_subprocess, write_results
from finetune import SEED, prepare

DATASETS = ("sst2", "trec", "ag_news", "sms_spam")
SWEEP = (2, 4, 8, 12)
QUICK_SWEEP = (1, 2)
GOAL_ACCURACY = -0.005
GOAL_TIME = 1.5


def settings(sweep: tuple[int, ...], extra: list[str]) -> dict[str, dict[str, Any]]:
    """Return setting name -> train overrides: the defaults, the sweep, and any `NAME:k=v,...`."""
    table: dict[str, dict[str, Any]] = {"defaults": {}}
    table.update({f"e{n}": {"epochs": n} for n in sweep})
    for spec in extra:
        name, _, pairs = spec.partition(":")
        table[name] = {k: json.loads(v) for k, v in (p.split("=", 1) for p in pairs.split(","))}
    return table


def run_child(config: dict[str, Any]) -> dict[str, Any]:
    """Train one run in this process and return its figures."""
    import modelyard
    from modelyard.recipe import build_recipe

    recipe = build_recipe(
        {
            "run": {"name": config["name"], "output_dir": config["out"], "seed": config["seed"]},
            "data": {"train": config["train"], "test": config["test"]},
            # one thread: on a shared 2-core machine two threads per process spin against the
            # neighbours' and train several times slower; the settings compared are unchanged
            "train": {"num_threads": config["threads"], **config["overrides"]},
            "evaluate": {"speed": False},
        }
    )
    start, cpu = time.perf_counter(), time.process_time()
    result = modelyard.train(recipe, overwrite=True, progress=False)
    total, cpu = time.perf_counter() - start, time.process_time() - cpu
    t, m = result.training, result.metrics
    import shutil

    shutil.rmtree(result.run_dir, ignore_errors=True)  # 90 MB a run; the figures are kept
    return {
        "accuracy": m["accuracy"],
        "macro_f1": m["macro_f1"],
        "ece": m["ece"],
        "loop_seconds": t["wall_seconds"],
        "train_seconds": t["train_seconds"],
        "run_seconds": round(total, 1),
        # CPU time of the whole train call (loading and the test evaluation too): what the
        # run cost, much less moved by the neighbours' load than wall time
        "run_cpu_seconds": round(cpu, 1),
        "steps": t["steps"],
        "samples_per_s": t["samples_per_s"],
        "epochs_trained": round(t["steps"] / t["stopping"]["steps_per_epoch"], 2),
        "stop_reason": t["stop_reason"],
        "stopped_because": t["stopped_because"],
        "stopping": t["stopping"],
        "dev_curve": [
            [h["step"], round(h[recipe.train.early_stopping.metric], 4)] for h in t["history"]
        ],
    }


def load() -> list[float]:
    """Return the 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def one_run(
    args: Any,
    dataset: str,
    name: str,
    overrides: dict[str, Any],
    paths: tuple[Path, Path],
    seed: int = SEED,
) -> dict[str, Any]:
    """Run (or read from the cache) one setting on one dataset with `run.seed`; return its figures."""
    quick = "-quick" if args.quick else ""
    seeded = "" if seed == SEED else f"-seed{seed}"
    cache = args.work / "cache" / f"{dataset}-{args.rows}{quick}-{name}{seeded}.json"
    if cache.is_file():
        return dict(json.loads(cache.read_text(encoding="utf-8")))
    config = {
        "name": f"{dataset}-{name}",
        "out": str(args.work / "runs"),
        "train": str(paths[0]),
        "test": str(paths[1]),
        "overrides": overrides,
        "threads": args.threads,
        "seed": seed,
    }
    before = load()
    start = time.perf_counter()
    figures = run_json_subprocess([__file__, "--child", json.dumps(config)])
    figures.update(
        process_seconds=round(time.perf_counter() - start, 1), load_before=before, load_after=load()
    )
    print(
        f"{dataset} {name}: acc {figures['accuracy']:.4f} loop {figures['loop_seconds']}s "
        f"steps {figures['steps']} ({figures['stop_reason']}) load {before}",
        file=sys.stderr,
        flush=True,
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(figures), encoding="utf-8")
    return figures


def prepare_sets(args: Any) -> dict[str, tuple[Path, Path]]:
    """Write each dataset's training sample (and, if asked, test sample); return the paths."""
    paths = {}
    for name in args.datasets:
        train, test = prepare(args.data_dir, args.work / f"rows-{args.rows}", name, args.rows)
        if args.test_rows:
            from common import stratified_sample

            small = train.parent / "test.csv"
            stratified_sample(read_csv(test), args.test_rows, SEED).to_csv(small, index=False)
            test = small
        paths[name] = (train, test)
    return paths


def summarise(runs: dict[str, dict[str, Any]], sweep: tuple[int, ...]) -> dict[str, Any]:
    """Return the headline figures of one dataset: defaults against the best sweep run.

    The best sweep run is the most accurate on test; a tie goes to the shorter run.
    """
    swept = [(runs[f"e{n}"]["accuracy"], -n, f"e{n}") for n in sweep]
    best = max(swept)[2]
    d, b = runs["defaults"], runs[best]
    return {
        "best_sweep": best,
        "defaults_minus_best_sweep": round(d["accuracy"] - b["accuracy"], 4),
        "defaults_time_vs_best_sweep": round(d["loop_seconds"] / b["loop_seconds"], 3),
        "defaults_steps_vs_best_sweep": round(d["steps"] / b["steps"], 3),
        "defaults_cpu_vs_best_sweep": round(d["run_cpu_seconds"] / b["run_cpu_seconds"], 3),
    }


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=1500, help="training rows sampled per set")
    parser.add_argument("--test-rows", type=int, default=None, help="sample the test sets too")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated sets")
    parser.add_argument("--only", default=None, help="comma-separated settings to run")
    parser.add_argument(
        "--extra", action="append", default=[], help="extra setting NAME:key=json,key=json"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tiny version in a few minutes: TREC and SMS spam, 400 rows, 200 test rows, "
        "sweep 1 and 2 epochs, epochs auto capped at 4 (max_epochs)",
    )
    parser.add_argument("--name", default=None, help="result file name (default: defaults)")
    parser.add_argument(
        "--seeds",
        default=None,
        help="comma-separated run seeds: repeat every setting per seed and write defaults-seeds",
    )
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(json.loads(args.child))))
        return
    sweep = QUICK_SWEEP if args.quick else SWEEP
    if args.quick:
        args.rows, args.test_rows = 400, args.test_rows or 200
        args.datasets = "trec,sms_spam" if args.datasets == ",".join(DATASETS) else args.datasets
    args.datasets = args.datasets.split(",")
    table = settings(sweep, args.extra)
    if args.quick:
        table["defaults"] = {"max_epochs": 4}
    names = args.only.split(",") if args.only else list(table)
    paths = prepare_sets(args)
    if args.seeds:
        seeds = [int(x) for x in args.seeds.split(",")]
        by_seed = {
            seed: {
                d: {n: one_run(args, d, n, table[n], paths[d], seed) for n in names}
                for d in args.datasets
            }
            for seed in seeds
        }
        from defaults_seeds import markdown as seeds_markdown
        from defaults_seeds import seeds_report

        figures = {"machine": machine(), "uptime_load_at_end": load(), "rows": args.rows}
        figures |= seeds_report(by_seed, sweep)
        write_results(args.results, args.name or "defaults-seeds", figures, seeds_markdown(figures))
        return
    results: dict[str, dict[str, Any]] = {d: {} for d in args.datasets}
    for name in names:  # setting by setting, every dataset in turn
        for dataset in args.datasets:
            results[dataset][name] = one_run(args, dataset, name, table[name], paths[dataset])
    figures = report(args, sweep, table, names, paths, results)
    out = args.name or ("defaults-quick" if args.quick else "defaults")
    from defaults_report import markdown

    write_results(args.results, out, figures, markdown(figures))


def report(
    args: Any,
    sweep: tuple[int, ...],
    table: dict[str, dict[str, Any]],
    names: list[str],
    paths: dict[str, tuple[Path, Path]],
    results: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Return the benchmark's JSON: machine, sizes, every run, and the headline keys."""
    fig: dict[str, Any] = {
        "machine": machine(),
        "uptime_load_at_end": load(),
        "rows": args.rows,
        "sweep_epochs": list(sweep),
        "settings": {n: table[n] for n in names},
        "sizes": {
            d: {"train_file_rows": len(read_csv(p[0])), "test_rows": len(read_csv(p[1]))}
            for d, p in paths.items()
        },
        "runs": results,
    }
    complete = {f"e{n}" for n in sweep} | {"defaults"}
    for dataset, runs in results.items():
        if complete <= set(runs):
            for key, value in summarise(runs, sweep).items():
                fig[f"{key}_{dataset}"] = value
    return fig


if __name__ == "__main__":
    main()
