"""Training at scale (issue 26): hyper-parameter search and experiment tracking.

    nice -n 5 python bench/scale.py [--data-dir ../shared/data] [--rows 600] [--trials 12]
                                    [--sections tuning,tracking]

Each section is a function that returns its figures and a markdown part; they are merged
into `bench/results/scale.{json,md}` (between `<!-- NAME:start -->` and `<!-- NAME:end -->`)
with whatever other sections and bench/scale_ddp.py wrote there before, so a section can be
(re)measured on its own. Sections:

- `tuning`: a stratified, seeded sample of SST-2's train.csv (the recipe's default 10% dev
  split is carved from it) and of test.csv. One run of the default recipe, then
  `modelyard tune` with `--trials` trials (median pruning on the dev metric) over learning
  rate, epochs and batch size. Every trial is a full run, so each has a test accuracy; the
  tuned model is the trial the study picks on dev. Key: `tuned_minus_default_accuracy`, with
  a 95% paired bootstrap interval over the test rows. The study resumes when the benchmark
  is run again (SQLite in the work folder).
- `tracking`: a real MLflow tracking server on 127.0.0.1 (SQLite backend); the default run
  of `tuning` is trained with `tracking.mlflow_uri` pointing at it. Key:
  `tracking_roundtrip_ok` (1 when every metric read back from MLflow equals metrics.json).

The data-parallel keys (`ddp_accuracy_gap`, `ddp_samples_per_s_ratio`) are
bench/scale_ddp.py's, written into the same files the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bootstrap import paired_gain
from common import base_parser, machine, read_csv, stratified_sample
from scale_ddp import merge_results

NAME = "scale"
SEED = 42
SPACE = [
    "train.lr=loguniform:1e-5:3e-4",
    "train.epochs=int:2:5",
    "train.batch_size=choice:16,32",
]
Section = Callable[[Any, dict[str, Any]], tuple[dict[str, Any], str]]


def prepare(data_dir: Path, work: Path, rows: int, test_rows: int) -> tuple[Path, Path]:
    """Write stratified, seeded samples of SST-2's train.csv and test.csv to the work folder;
    return their paths."""
    folder = work / "sst2"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for split, n in (("train", rows), ("test", test_rows)):
        sample = stratified_sample(read_csv(data_dir / "sst2" / f"{split}.csv"), n, SEED)
        path = folder / f"{split}-{n}.csv"
        sample.to_csv(path, index=False)
        paths.append(path)
    return paths[0], paths[1]


def default_recipe(
    train: Path, test: Path, out: Path, name: str, mlflow_uri: str | None
) -> dict[str, Any]:
    """Return the default recipe on the sample: everything at its default but the data, one
    thread (two threads per process only spin on a shared two-core machine), no speed test."""
    return {
        "run": {"name": name, "output_dir": str(out), "seed": SEED},
        "data": {"train": str(train), "test": str(test)},
        "train": {"num_threads": 1},
        "evaluate": {"speed": False},
        "tracking": {"mlflow_uri": mlflow_uri},
    }


def correct_rows(run_dir: Path, test: Path) -> list[int]:
    """Return 1/0 per test row: does the run predict its label."""
    import modelyard.api as api

    frame = read_csv(test)
    preds = api.predict(run_dir, list(frame["text"]))
    return [int(p["predicted_label"] == y) for p, y in zip(preds, frame["label"], strict=True)]


def run_default(args: Any, train: Path, test: Path, mlflow_uri: str | None) -> dict[str, Any]:
    """Train the default recipe (cached in the work folder); return its figures."""
    import modelyard.api as api
    from modelyard.recipe import build_recipe

    cache = args.work / "scale" / "default.json"
    if cache.is_file() and mlflow_uri is None:  # the run logged to MLflow, or a plain one
        return dict(json.loads(cache.read_text(encoding="utf-8")))
    out = args.work / "scale" / "runs"
    recipe = build_recipe(default_recipe(train, test, out, "default", mlflow_uri))
    start = time.perf_counter()
    result = api.train(recipe, overwrite=True, progress=False)
    figures = {
        "run_dir": str(result.run_dir),
        "accuracy": result.metrics["accuracy"],
        "macro_f1": result.metrics["macro_f1"],
        "epochs_run": result.training["epochs_run"],
        "seconds": round(time.perf_counter() - start, 1),
    }
    cache.write_text(json.dumps(figures), encoding="utf-8")
    return figures


def section_tuning(args: Any, shared: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Tune against the default recipe; return the figures and the markdown part."""
    import modelyard.api as api
    from modelyard.recipe import build_recipe

    train, test = shared["train"], shared["test"]
    default = shared.get("default") or run_default(args, train, test, None)
    out = args.work / "scale" / "runs"
    recipe = build_recipe(default_recipe(train, test, out, "sst2", None))
    result = api.tune(recipe, SPACE, trials=args.trials, pruner="median", progress=True)
    run_metrics = json.loads((Path(default["run_dir"]) / "metrics.json").read_text("utf-8"))
    args.results.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(result.plot, args.results / f"{NAME}_search.png")
    best = next(t for t in result.trials if t["number"] == result.best_trial)
    gain = paired_gain(
        [correct_rows(Path(best["run_dir"]), test)],
        [correct_rows(Path(default["run_dir"]), test)],
        SEED,
    )
    figures = {
        "tuned_minus_default_accuracy": round(gain["mlm_downstream_gain"], 4),
        "tuned_minus_default_accuracy_ci95": [
            round(x, 4) for x in gain["mlm_downstream_gain_ci95"]
        ],
        "default_test_accuracy": default["accuracy"],
        "tuned_test_accuracy": best["test"]["accuracy"],
        "tuned_trial": result.best_trial,
        "tuned_params": result.best_params,
        "tuning_metric": f"dev {result.metric}",
        "tuning_trials": result.trials,
        "tuning_trials_pruned": sum(t["state"] == "pruned" for t in result.trials),
        # the trials' own durations: a resumed study counts every trial once
        "tuning_trial_seconds_total": round(sum(t["seconds"] or 0 for t in result.trials), 1),
        "default_run_seconds": default["seconds"],
        "default_steps": run_metrics["training"]["steps"],
        "default_stopped_because": run_metrics["training"]["stopped_because"],
    }
    return figures, tuning_markdown(figures, default, args)


def tuning_markdown(fig: dict[str, Any], default: dict[str, Any], args: Any) -> str:
    """Return the markdown part of the tuning section."""
    low, high = fig["tuned_minus_default_accuracy_ci95"]
    lines = [
        "## Hyper-parameter search (Optuna) against the default recipe",
        "",
        f"SST-2: stratified samples (seed {SEED}) of {args.rows} rows of train.csv (the recipe's "
        f"default 10% dev split is carved from it) and {args.test_rows} rows of test.csv. "
        "Every other "
        "option at the recipe default; one thread per run. "
        f"Search: {args.trials} trials, TPE sampler (seed {SEED}), median pruning on the "
        f"{fig['tuning_metric']}, space `{' '.join('--param ' + s for s in SPACE)}`.",
        "",
        f"- default recipe: test accuracy {default['accuracy']:.4f} "
        f"({default['epochs_run']} epochs, `train.epochs: auto`)",
        f"- tuned (trial {fig['tuned_trial']}, best {fig['tuning_metric']}): test accuracy "
        f"{fig['tuned_test_accuracy']:.4f} with {fig['tuned_params']}",
        f"- **tuned_minus_default_accuracy: {fig['tuned_minus_default_accuracy']:+.4f}** "
        f"(95% paired bootstrap over test rows: [{low:+.4f}, {high:+.4f}]; one training seed "
        "each, so training noise is not in the interval)",
        "",
        f"![the search: dev metric per trial and the best so far]({NAME}_search.png)",
        "",
        "| trial | state | dev metric | test accuracy | epochs run | seconds | params |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in fig["tuning_trials"]:
        value = t["value"] if t["value"] is not None else t["last_reported"]
        shown = "" if value is None else f"{value:.4f}"
        if t["state"] == "pruned" and value is not None:
            shown += " (last before pruning)"
        acc = (t.get("test") or {}).get("accuracy")
        params = ", ".join(
            f"{k.split('.')[-1]}={v:.2e}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}"
            for k, v in t["params"].items()
        )
        lines.append(
            f"| {t['number']} | {t['state']} | {shown} | "
            f"{'' if acc is None else f'{acc:.4f}'} | {t.get('epochs_run') or ''} | "
            f"{'' if t['seconds'] is None else round(t['seconds'])} | {params} |"
        )
    lines += [
        "",
        f"Time: the default run {fig['default_run_seconds']} s; the {len(fig['tuning_trials'])} "
        f"trials {fig['tuning_trial_seconds_total']} s in all (each a full run: training, dev "
        "evaluations, the test evaluation and the saved artifact).",
        "",
        "Reading the figures:",
        "",
        f"- The default run stopped after {fig['default_steps']} optimizer steps: "
        f"{fig['default_stopped_because']}. With a dev split this small the plateau rule "
        "decides on noise, and the default learning rate is low for so few steps; the search "
        "found both (a higher learning rate, a fixed length). The gain is that of a "
        "240-row training set, chosen so that 13 runs fit in 30 minutes on this loaded machine, "
        "not a claim about SST-2 at full size.",
        f"- Pruned trials: {fig['tuning_trials_pruned']} of {len(fig['tuning_trials'])}. The "
        "median pruner judges from the second dev evaluation on, after three finished trials; "
        "a pruned trial has no test accuracy (it never finished).",
        "- The interval is a paired bootstrap over the test rows of one training seed per side; "
        "it leaves out the variation between seeds and the selection bias of taking the best "
        "of 12 trials on a dev split (it was chosen on dev, never on test).",
        "",
    ]
    return "\n".join(lines)


def section_tracking(args: Any, shared: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Train the default run logged to a real MLflow server; compare what it holds."""
    from modelyard.tracking.mlflow_sink import TRACKING, mlflow_key, read_back
    from modelyard.tracking.server import local_mlflow_server
    from modelyard.tracking.store import read_tracked

    cache = args.work / "scale" / "tracking.json"
    if cache.is_file():  # an earlier invocation measured it with this default run
        shared["default"] = run_default(args, shared["train"], shared["test"], None)
        figures, md = json.loads(cache.read_text(encoding="utf-8"))
        return figures, md
    with local_mlflow_server(args.work / "scale" / "mlflow") as uri:
        default = run_default(args, shared["train"], shared["test"], uri)
        run_dir = Path(default["run_dir"])
        run_id = json.loads((run_dir / TRACKING).read_text(encoding="utf-8"))["mlflow"]["run_id"]
        remote = read_back(uri, run_id)
    local = read_tracked(run_dir)
    expected = {mlflow_key(k): v for k, v in local.metrics.items()}
    last_steps: dict[str, float] = {}
    for step in local.steps:  # sorted by step: the last value of a key is the latest
        last_steps[mlflow_key(step.key)] = step.value
    mismatched = sorted(k for k, v in {**last_steps, **expected}.items() if remote.get(k) != v)
    shared["default"] = default  # the tuning section compares against this same run
    ok = int(not mismatched and len(expected) > 0)
    figures = {
        "tracking_roundtrip_ok": ok,
        "tracking_metrics_compared": len(expected) + len(last_steps),
        "tracking_mismatched": mismatched,
    }
    md = "\n".join(
        [
            "## Tracking round trip (MLflow)",
            "",
            f"A real `mlflow server` on 127.0.0.1 (SQLite store); the default run trained with "
            f"`tracking.mlflow_uri` set. {len(expected)} final metrics of metrics.json and the "
            f"latest value of {len(last_steps)} per-step series of history.jsonl read back "
            f"from the server: **tracking_roundtrip_ok = {ok}**"
            + (f" (mismatched: {', '.join(mismatched)})" if mismatched else "")
            + ".",
            "",
        ]
    )
    cache.write_text(json.dumps([figures, md]), encoding="utf-8")
    return figures, md


# tracking first: its default run (logged to MLflow) is the baseline the search is compared to
SECTIONS: dict[str, Section] = {"tracking": section_tracking, "tuning": section_tuning}


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=240, help="rows sampled from train.csv")
    parser.add_argument("--test-rows", type=int, default=300, help="rows sampled from test.csv")
    parser.add_argument("--trials", type=int, default=12, help="trials of the search")
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma list of: {', '.join(SECTIONS)}"
    )
    args = parser.parse_args()
    chosen = [s for s in args.sections.split(",") if s]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {sorted(SECTIONS)}")
    train, test = prepare(args.data_dir, args.work, args.rows, args.test_rows)
    shared: dict[str, Any] = {"train": train, "test": test}
    figures: dict[str, Any] = {}
    parts: dict[str, str] = {}
    for name in SECTIONS:  # in the table's order, not the command line's
        if name in chosen:
            figures[name], parts[name] = SECTIONS[name](args, shared)
    for name, section in figures.items():
        setup = {
            "train_file_rows": args.rows,
            "test_rows": args.test_rows,
            "machine": {**machine(), "load_average": list(os.getloadavg())},
        }
        markers = (f"<!-- {name}:start -->", f"<!-- {name}:end -->")
        body = f"{markers[0]}\n{parts[name].strip()}\n{markers[1]}\n"
        merge_results(args.results, {**section, f"{name}_setup": setup}, body, markers)
    shutil.rmtree(args.work / "scale" / "mlflow", ignore_errors=True)


if __name__ == "__main__":
    main()
