"""Training-methods benchmark: PEFT and freezing vs full fine-tuning, zero-shot, few-shot,
adversarial and continual training.

    python bench/methods.py [--data-dir ../shared/data] [--quick] [--parts sst2,fewshot,...]

sst2: the foundation benchmark's 8,000-row stratified SST-2 sample, 2 epochs, max length
64, batch 32: full, LoRA, IA3, BitFit, linear probe (each in its own process for its own
peak RSS), and zero-shot. fewshot: k = 8, 16, 32, 64 per class on SST-2 and TREC, seeds
0-2: SetFit-style vs plain fine-tuning vs zero-shot. adversarial: FGM vs plain (the full
run above) under seeded noise. continual: AG News, World+Sports then Business+Sci/Tech:
naive, rehearsal and EWC. Every variant's figures are cached in the work folder, so an
interrupted run continues where it stopped (--fresh to start over).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import base_parser, machine, read_csv, run_json_subprocess, stratified_sample
from methods_report import SST2_METHODS, summarise, write_report

SEED = 42
BASE = {"epochs": 2, "batch_size": 32, "weight_decay": 0.01, "warmup_ratio": 0.06}
# learning rates chosen a priori from each method's paper/defaults, not tuned on the test set
METHOD_TRAIN: dict[str, dict[str, Any]] = {
    "full": {"lr": 5e-5},
    "lora": {
        "lr": 1e-3,
        "lora": {"rank": 8, "alpha": 16, "target_modules": ["query", "key", "value", "dense"]},
    },
    "ia3": {"lr": 5e-3},
    "bitfit": {"lr": 1e-3},
    "linear-probe": {"lr": 1e-2},
    "fgm": {"lr": 5e-5, "adversarial": {"method": "fgm", "epsilon": 0.1}},
}
DESCRIPTIONS = {
    "sst2": {
        "positive": ["a positive review", "a great, enjoyable movie", "I loved it"],
        "negative": ["a negative review", "a bad, boring movie", "I hated it"],
    },
    "trec": {
        "ABBR": ["what does this abbreviation or acronym stand for"],
        "DESC": ["a question asking for a description, definition or reason"],
        "ENTY": ["a question about a thing, object, animal, food, color or other entity"],
        "HUM": ["a question about a person, who someone is"],
        "LOC": ["a question about a place, where something is, a city or country"],
        "NUM": ["a question asking for a number, date, amount, how many or when"],
    },
}
PHASES = (["World", "Sports"], ["Business", "Sci/Tech"])
# reduced configuration: at most this many contrastive pairs per SetFit run (the shared
# 2-core machine ran 5-7x slower than on a quiet day); SST-2 up to k=32 and TREC k=8 keep
# all 20 pairs per example, larger k get fewer (SST-2 k=64: 10; TREC k=16/32/64: 13/6/3)
PAIR_BUDGET = 1280


def recipe(
    name: str, train: Path, test: Path, out: Path, max_length: int, **train_cfg: Any
) -> dict[str, Any]:
    """Return a recipe dict for one run of the benchmark."""
    return {
        "run": {"name": name, "output_dir": str(out), "seed": train_cfg.pop("seed", SEED)},
        "data": {"train": str(train), "test": str(test), "split": {"dev": 0.0, "test": 0.0}},
        "model": {"max_length": max_length},
        "train": {"checkpoint_every": None, **train_cfg},
        "evaluate": {"speed": False},
    }


def train_run(spec: dict[str, Any], keep: bool = True) -> dict[str, Any]:
    """Train one recipe and return its test figures and training summary (deleting the run unless `keep`)."""
    import shutil

    import modelyard
    from modelyard.recipe import build_recipe

    result = modelyard.train(build_recipe(spec), overwrite=True, progress=False)
    if not keep:
        shutil.rmtree(result.run_dir)
    t = result.training
    return {
        "run_dir": str(result.run_dir),
        "accuracy": result.metrics["accuracy"],
        "macro_f1": result.metrics["macro_f1"],
        "trainable_pct": t["trainable_pct"],
        "trainable_parameters": t["trainable_parameters"],
        "samples_per_s": t["samples_per_s"],
        "train_seconds": t["train_seconds"],
        "peak_rss_mb": t["peak_rss_mb"],
        "weights_mb": round(t["weights_bytes"] / 2**20, 2),
        "artifact_mb": round(t["artifact_bytes"] / 2**20, 2),
    }


def child_method(args: Any) -> dict[str, Any]:
    """Train one SST-2 method (or FGM) in this process; return its figures."""
    cfg = json.loads(args.config)
    spec = recipe(
        cfg["name"],
        Path(cfg["train"]),
        Path(cfg["test"]),
        Path(cfg["out"]),
        64,
        method="full" if cfg["method"] == "fgm" else cfg["method"],
        **BASE,
        **METHOD_TRAIN[cfg["method"]],
    )
    if cfg.get("max_steps"):
        spec["train"]["max_steps"] = cfg["max_steps"]
    return train_run(spec)


def child_zeroshot(args: Any) -> dict[str, Any]:
    """Build and evaluate a zero-shot classifier; return accuracy and the majority-class share."""
    import pandas as pd
    import yaml

    from modelyard.methods import zeroshot

    cfg = json.loads(args.config)
    labels = Path(cfg["out"]) / f"{cfg['dataset']}-labels.yaml"
    labels.parent.mkdir(parents=True, exist_ok=True)
    labels.write_text(yaml.safe_dump(DESCRIPTIONS[cfg["dataset"]]), encoding="utf-8")
    out = Path(cfg["out"]) / f"{cfg['dataset']}-zeroshot"
    metrics = zeroshot(labels, cfg["test"], out, max_length=64, overwrite=True)
    test = pd.read_csv(cfg["test"], keep_default_na=False, dtype=str)
    return {
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "majority": float(test["label"].value_counts(normalize=True).max()),
        "weights_mb": round((out / "model.safetensors").stat().st_size / 2**20, 2),
    }


def child_fewshot(args: Any) -> dict[str, Any]:
    """Run SetFit-style and plain fine-tuning for every k of one dataset and seed; return accuracies."""
    cfg = json.loads(args.config)
    frame, out, seed = read_csv(Path(cfg["train"])), Path(cfg["out"]), cfg["seed"]
    figures: dict[str, Any] = {}
    for k in cfg["ks"]:
        sample = frame.groupby("label", group_keys=False).sample(n=k, random_state=seed)
        path = out / f"{cfg['dataset']}-k{k}-s{seed}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        sample.to_csv(path, index=False)
        test, name = Path(cfg["test"]), f"{cfg['dataset']}-k{k}-s{seed}"
        setfit = recipe(f"{name}-setfit", path, test, out, 64, method="setfit", seed=seed)
        setfit["train"]["setfit"] = {"pairs_per_example": setfit_pairs(cfg["pairs"], len(sample))}
        plain = recipe(
            f"{name}-finetune",
            path,
            test,
            out,
            64,
            method="full",
            seed=seed,
            epochs=10,
            batch_size=8,
            lr=1e-4,
            warmup_ratio=0.1,
        )
        figures[str(k)] = {
            "setfit": train_run(setfit, keep=False)["accuracy"],
            "finetune": train_run(plain, keep=False)["accuracy"],
        }
        print(f"{name}: {figures[str(k)]}", file=sys.stderr, flush=True)
    return figures


def setfit_pairs(per_example: int, examples: int) -> int:
    """Return the pairs per example, capped so one run draws at most PAIR_BUDGET pairs."""
    return max(2, min(per_example, PAIR_BUDGET // examples))


def child_robustness(args: Any) -> dict[str, Any]:
    """Evaluate a run with --robustness on the test file; return clean and noisy accuracies."""
    import modelyard

    cfg = json.loads(args.config)
    out = Path(cfg["run"]) / "evaluations" / "robustness"
    metrics = modelyard.evaluate(cfg["run"], cfg["test"], output=out, robustness=True)
    return metrics["robustness"]


def child_continual(args: Any) -> dict[str, Any]:
    """Run the two AG News phases with naive, rehearsal and EWC continuation; return accuracies."""
    import modelyard

    cfg = json.loads(args.config)
    out, files = Path(cfg["out"]), {k: Path(v) for k, v in cfg["files"].items()}
    phase1 = recipe("ag-phase1", files["train1"], files["test1"], out, 64, **BASE, lr=5e-5)
    phase1["train"].update(epochs=1, memory={"rehearsal_rows": cfg["rehearsal"], "fisher": True})
    first = train_run(phase1)
    result: dict[str, Any] = {"phase1": {"accuracy_phase1": first["accuracy"]}}
    for strategy in ("naive", "rehearsal", "ewc"):
        spec = recipe(f"ag-phase2-{strategy}", files["train2"], files["test2"], out, 64, **BASE)
        spec["train"].update(
            epochs=1, lr=5e-5, continual={"from_run": first["run_dir"], "strategy": strategy}
        )
        second = train_run(spec)
        old = modelyard.evaluate(second["run_dir"], files["test1"])["accuracy"]
        both = modelyard.evaluate(second["run_dir"], files["test_all"])["accuracy"]
        result[strategy] = {
            "accuracy_phase1_after": old,
            "accuracy_phase2": second["accuracy"],
            "accuracy_all": both,
            "retention": old / first["accuracy"],
        }
        print(f"continual {strategy}: {result[strategy]}", file=sys.stderr, flush=True)
    return result


def _method_model(name: str, labels: list[str]) -> Any:
    from modelyard.methods import TRAINING_METHODS
    from modelyard.models import build_classifier, resolve_backbone
    from modelyard.recipe import build_recipe

    cfg = {k: v for k, v in METHOD_TRAIN[name].items() if k != "lr"}
    spec = build_recipe({"data": {"path": "unused.csv"}, "train": {"method": name, **cfg}})
    model = build_classifier(resolve_backbone("minilm-l6"), labels)
    return TRAINING_METHODS.get(name).prepare(model, spec).train()


def _timed_steps(model: Any, batches: list[Any], dtype: Any) -> float:
    import time

    import torch

    from modelyard.models.device import autocast

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    start = time.perf_counter()
    for batch, labels in batches:
        with autocast(torch.device("cpu"), dtype):
            logits = model(**batch).logits
        torch.nn.functional.cross_entropy(logits.float(), labels).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return sum(len(labels) for _, labels in batches) / (time.perf_counter() - start)


def child_speed(args: Any) -> dict[str, Any]:
    """Time training steps of every SST-2 method on the same batches, interleaved; return medians."""
    import statistics

    import numpy as np
    import torch

    from modelyard.models import load_tokenizer, resolve_backbone
    from modelyard.models.device import select_dtype
    from modelyard.models.encoding import collate, encode_texts, epoch_batches

    cfg = json.loads(args.config)
    frame = read_csv(Path(cfg["train"]))
    labels = sorted(frame["label"].unique())
    ids, _, _ = encode_texts(
        load_tokenizer(resolve_backbone("minilm-l6")), list(frame["text"]), None, 64
    )
    y = torch.tensor([labels.index(v) for v in frame["label"]])
    lengths = np.array([len(i) for i in ids])
    index = epoch_batches(lengths, 32, SEED, 0, True)[: cfg["steps"]]
    batches = [(collate(ids, None, i, 0), y[i]) for i in index]
    dtype = select_dtype("auto", torch.device("cpu"))
    models = {name: _method_model(name, labels) for name in cfg["methods"]}
    rates: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(cfg["rounds"]):
        for name, model in models.items():
            rates[name].append(_timed_steps(model, batches, dtype))
    return {
        name: {"median": round(statistics.median(v), 2), "all": [round(x, 2) for x in v]}
        for name, v in rates.items()
    }


CHILDREN = {
    "method": child_method,
    "zeroshot": child_zeroshot,
    "fewshot": child_fewshot,
    "robustness": child_robustness,
    "continual": child_continual,
    "speed": child_speed,
}


class Bench:
    """Runs variants in fresh processes and caches each one's figures in the work folder."""

    def __init__(self, work: Path, fresh: bool, offline: bool = False) -> None:
        self.work, self.cache, self.offline = work, work / "figures", offline
        self.cache.mkdir(parents=True, exist_ok=True)
        if fresh:
            for path in self.cache.glob("*.json"):
                path.unlink()

    def run(self, key: str, child: str, config: dict[str, Any]) -> dict[str, Any]:
        """Return the cached figures of `key`, or run `child` with `config` and cache them."""
        path = self.cache / f"{key}.json"
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
        if self.offline:
            raise RuntimeError(f"{key}: not run yet")
        figures = run_json_subprocess([__file__, "--child", child, "--config", json.dumps(config)])
        path.write_text(json.dumps(figures, indent=2), encoding="utf-8")
        print(f"{key}: {figures}", file=sys.stderr, flush=True)
        return figures


def sample_file(
    data_dir: Path,
    work: Path,
    name: str,
    rows: int | None,
    labels: list[str] | None = None,
    split: str = "train",
) -> Path:
    """Write a seeded stratified sample of a dataset split (optionally only some labels); return its path."""
    frame = read_csv(data_dir / name / f"{split}.csv")
    if labels is not None:
        frame = frame[frame["label"].isin(labels)]
    if rows:
        frame = stratified_sample(frame, rows, SEED)
    tag = "-".join(lab.replace("/", "") for lab in labels) if labels else "all"
    path = work / "data" / f"{name}-{split}-{tag}-{rows or 'all'}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def part_sst2(bench: Bench, args: Any, figures: dict[str, Any]) -> None:
    """Train every SST-2 method, then zero-shot."""
    train = sample_file(args.data_dir, args.work, "sst2", 400 if args.quick else 8000)
    test = args.data_dir / "sst2" / "test.csv"
    out = str(args.work / "runs")
    for name in SST2_METHODS:
        config = {
            "name": f"sst2-{name}",
            "method": name,
            "train": str(train),
            "test": str(test),
            "out": out,
        }
        if args.quick:
            config["max_steps"] = 4
        figures.setdefault("sst2", {})[name] = bench.run(f"sst2-{name}", "method", config)
    zs = {"dataset": "sst2", "test": str(test), "out": out}
    figures["sst2"]["zeroshot"] = bench.run("sst2-zeroshot", "zeroshot", zs)


def part_fewshot(bench: Bench, args: Any, figures: dict[str, Any]) -> None:
    """Few-shot curves on SST-2 and TREC."""
    ks = [8, 16] if args.quick else [8, 16, 32, 64]
    seeds = [0] if args.quick else [0, 1, 2]
    for dataset in ("sst2", "trec"):
        test = args.data_dir / dataset / "test.csv"
        if args.quick:
            test = sample_file(args.data_dir, args.work, dataset, 100, split="test")
        out = str(args.work / "fewshot")
        curves = figures.setdefault("fewshot", {}).setdefault(dataset, {"seeds": {}})
        for seed in seeds:
            config = {
                "dataset": dataset,
                "train": str(args.data_dir / dataset / "train.csv"),
                "test": str(test),
                "out": out,
                "seed": seed,
                "ks": ks,
                "pairs": 4 if args.quick else 20,
            }
            curves["seeds"][str(seed)] = bench.run(f"fewshot-{dataset}-s{seed}", "fewshot", config)
        zs = {"dataset": dataset, "test": str(test), "out": out}
        curves["zeroshot"] = bench.run(f"fewshot-{dataset}-zeroshot", "zeroshot", zs)["accuracy"]


def part_adversarial(bench: Bench, args: Any, figures: dict[str, Any]) -> None:
    """FGM training on the SST-2 sample, and robustness of FGM and plain full fine-tuning."""
    train = sample_file(args.data_dir, args.work, "sst2", 400 if args.quick else 8000)
    test = args.data_dir / "sst2" / "test.csv"
    config = {
        "name": "sst2-fgm",
        "method": "fgm",
        "train": str(train),
        "test": str(test),
        "out": str(args.work / "runs"),
    }
    if args.quick:
        config["max_steps"] = 4
    fgm = bench.run("sst2-fgm", "method", config)
    plain = figures["sst2"]["full"]
    figures["adversarial"] = {
        "fgm": {
            **fgm,
            "robustness": bench.run(
                "robust-fgm", "robustness", {"run": fgm["run_dir"], "test": str(test)}
            ),
        },
        "plain": {
            "robustness": bench.run(
                "robust-plain", "robustness", {"run": plain["run_dir"], "test": str(test)}
            )
        },
    }


def part_continual(bench: Bench, args: Any, figures: dict[str, Any]) -> None:
    """AG News in two phases of two classes each."""
    rows, test_rows = (200, 200) if args.quick else (2000, 1000)
    files = {
        "train1": sample_file(args.data_dir, args.work, "ag_news", rows, PHASES[0]),
        "train2": sample_file(args.data_dir, args.work, "ag_news", rows, PHASES[1]),
        "test1": sample_file(args.data_dir, args.work, "ag_news", test_rows, PHASES[0], "test"),
        "test2": sample_file(args.data_dir, args.work, "ag_news", test_rows, PHASES[1], "test"),
        "test_all": sample_file(args.data_dir, args.work, "ag_news", 2 * test_rows, None, "test"),
    }
    config = {
        "out": str(args.work / "continual"),
        "files": {k: str(v) for k, v in files.items()},
        "rehearsal": 40 if args.quick else 200,
    }
    figures["continual"] = bench.run("continual", "continual", config)


def part_speed(bench: Bench, args: Any, figures: dict[str, Any]) -> None:
    """Training samples/s of every SST-2 method, timed side by side (A B C D E, repeated)."""
    train = sample_file(args.data_dir, args.work, "sst2", 400 if args.quick else 8000)
    config = {
        "train": str(train),
        "methods": list(SST2_METHODS),
        "steps": 3 if args.quick else 20,
        "rounds": 2 if args.quick else 5,
    }
    figures["speed"] = bench.run("speed", "speed", config)


PARTS = {
    "sst2": part_sst2,
    "fewshot": part_fewshot,
    "adversarial": part_adversarial,
    "continual": part_continual,
    "speed": part_speed,
}


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--child", default=None, help="internal: run one variant")
    parser.add_argument("--config", default="{}", help="internal: JSON config of the variant")
    parser.add_argument("--quick", action="store_true", help="tiny slices, to check the script")
    parser.add_argument("--fresh", action="store_true", help="ignore cached variant figures")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated parts to run")
    parser.add_argument(
        "--report-only", action="store_true", help="write the report from cached figures only"
    )
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](args)))
        return
    args.work = args.work / ("methods-quick" if args.quick else "methods")
    bench = Bench(args.work, args.fresh, offline=args.report_only)
    figures: dict[str, Any] = {"machine": machine(), "quick": args.quick}
    for part in args.parts.split(","):
        try:
            if part == "adversarial" and "sst2" not in figures:
                part_sst2(bench, args, figures)
            PARTS[part](bench, args, figures)
        except RuntimeError as exc:
            # one failing part must not lose the figures of the others
            figures.setdefault("errors", {})[part] = str(exc)[-2000:]
            print(f"part {part} failed: {exc}", file=sys.stderr, flush=True)
    earlier = args.work / "earlier.json"
    if earlier.is_file():
        # variants carried over from an earlier run's cache: the report says which
        figures["earlier_figures"] = json.loads(earlier.read_text(encoding="utf-8"))
    figures.update(summarise(figures))
    write_report(args.results, "methods-quick" if args.quick else "methods", figures)


if __name__ == "__main__":
    main()
