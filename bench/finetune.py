"""Fine-tuning benchmark: modelyard against a plain transformers.Trainer, same data and budget.

    python bench/finetune.py [--data-dir ../shared/data]

SST-2: a stratified, seeded 8,000-row sample of train.csv, 2 epochs, max length 64,
evaluated on test.csv, through modelyard (bf16 autocast where the CPU has it, and fp32)
and through transformers.Trainer with dynamic padding as in its tutorials. Each variant
runs in its own process so its peak RSS is its own. TREC and AG News: modelyard defaults.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    base_parser,
    flops_per_text,
    machine,
    measure_peaks,
    mfu_of,
    read_csv,
    run_json_subprocess,
    stratified_sample,
    write_results,
)

SEED = 42
HYPER = {
    "epochs": 2,
    "batch_size": 32,
    "lr": 5e-5,
    "weight_decay": 0.01,
    "warmup_ratio": 0.06,
    "max_length": 64,
}


def run_ours(
    train: Path, test: Path, out: Path, precision: str, defaults: bool, max_steps: int | None = None
) -> dict[str, Any]:
    """Train with modelyard and return accuracy, speed and memory."""
    import modelyard
    from modelyard.evaluation import peak_rss_mb

    recipe: dict[str, Any] = {
        # speed chunks must not overwrite the full run that other benchmarks start from
        "run": {
            "name": f"{train.parent.name}-{precision}" + ("-speed" if max_steps else ""),
            "output_dir": str(out),
            "seed": SEED,
        },
        "data": {"train": str(train), "test": str(test)},
        "train": {"precision": precision, "checkpoint_every": None},
        "evaluate": {"speed": False},
    }
    if not defaults:
        recipe["data"]["split"] = {"dev": 0.0, "test": 0.0}
        recipe["model"] = {"max_length": HYPER["max_length"]}
        recipe["train"].update(
            {k: HYPER[k] for k in ("epochs", "batch_size", "lr", "weight_decay", "warmup_ratio")}
        )
        recipe["train"]["max_steps"] = max_steps
    from modelyard.recipe import build_recipe

    result = modelyard.train(build_recipe(recipe), overwrite=True, progress=False)
    if max_steps:
        return {"samples_per_s": result.training["samples_per_s"]}
    return {
        "accuracy": result.metrics["accuracy"],
        "macro_f1": result.metrics["macro_f1"],
        "samples_per_s": result.training["samples_per_s"],
        "train_seconds": result.training["train_seconds"],
        "precision": result.training["precision"],
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


class _Rows:
    def __init__(self, enc: dict[str, list[Any]], labels: list[int]) -> None:
        self.enc, self.labels = enc, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**{k: v[i] for k, v in self.enc.items()}, "labels": self.labels[i]}


def run_trainer(train: Path, test: Path, out: Path, max_steps: int | None = None) -> dict[str, Any]:
    """Fine-tune with a plain transformers.Trainer the way its tutorials do; return the same figures."""
    import numpy as np
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from common import read_csv as _read
    from modelyard.evaluation import peak_rss_mb
    from modelyard.models import resolve_backbone

    set_seed(SEED)
    folder = str(resolve_backbone("minilm-l6"))
    tr, te = _read(train), _read(test)
    labels = sorted(tr["label"].unique())
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=len(labels))

    def rows(frame: Any) -> _Rows:
        enc = tok(list(frame["text"]), truncation=True, max_length=HYPER["max_length"])
        return _Rows(dict(enc), [labels.index(x) for x in frame["label"]])

    total_steps = -(-len(tr) // HYPER["batch_size"]) * HYPER["epochs"]
    args = TrainingArguments(
        output_dir=str(out / "trainer"),
        per_device_train_batch_size=HYPER["batch_size"],
        num_train_epochs=HYPER["epochs"],
        learning_rate=HYPER["lr"],
        weight_decay=HYPER["weight_decay"],
        warmup_steps=int(HYPER["warmup_ratio"] * total_steps),
        seed=SEED,
        use_cpu=True,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        logging_strategy="no",
        max_steps=max_steps or -1,
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=rows(tr), data_collator=DataCollatorWithPadding(tok)
    )
    output = trainer.train()
    if max_steps:  # a speed chunk: no evaluation
        return {"samples_per_s": round(output.metrics["train_samples_per_second"], 2)}
    pred = trainer.predict(rows(te))
    acc = float((np.argmax(pred.predictions, axis=1) == pred.label_ids).mean())
    return {
        "accuracy": acc,
        "samples_per_s": round(output.metrics["train_samples_per_second"], 2),
        "train_seconds": round(output.metrics["train_runtime"], 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def child(args: Any) -> None:
    """Run one variant in this process and print its figures as JSON."""
    train, test, out = Path(args.train), Path(args.test), Path(args.out)
    if args.variant == "trainer":
        figures = run_trainer(train, test, out, args.max_steps)
    else:
        figures = run_ours(train, test, out, args.variant, args.defaults, args.max_steps)
    print(json.dumps(figures))


def prepare(data_dir: Path, work: Path, name: str, rows: int | None) -> tuple[Path, Path]:
    """Write the (sampled) training file of a dataset into the work folder; return train and test paths."""
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    train = read_csv(data_dir / name / "train.csv")
    if rows:
        train = stratified_sample(train, rows, SEED)
    train.to_csv(folder / "train.csv", index=False)
    return folder / "train.csv", data_dir / name / "test.csv"


def variant(
    name: str,
    train: Path,
    test: Path,
    work: Path,
    defaults: bool = False,
    max_steps: int | None = None,
) -> dict[str, Any]:
    """Run one variant in a fresh process and return its figures.

    A full run's figures are cached in the work folder, so an interrupted benchmark resumes
    where it stopped; throughput chunks (max_steps) are always measured afresh.
    """
    cache = work / "cache" / f"{train.parent.name}-{name}{'-defaults' if defaults else ''}.json"
    if max_steps is None and cache.is_file():
        return dict(json.loads(cache.read_text(encoding="utf-8")))
    args = [
        __file__,
        "--child",
        name,
        "--train",
        str(train),
        "--test",
        str(test),
        "--out",
        str(work / "runs"),
    ]
    if max_steps:
        args += ["--max-steps", str(max_steps)]
    start = time.perf_counter()
    figures = run_json_subprocess([*args, *(["--defaults"] if defaults else [])])
    figures["wall_seconds"] = round(time.perf_counter() - start, 1)
    print(f"{train.parent.name} {name}: {figures}", file=sys.stderr, flush=True)
    if max_steps is None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(figures), encoding="utf-8")
    return figures


def interleaved_speed(
    train: Path, test: Path, work: Path, rounds: int, steps: int
) -> dict[str, Any]:
    """Return training throughput of ours and Trainer measured in alternating short chunks.

    The machine is shared, so long runs one after the other see different neighbours;
    alternating chunks of the same length see the same ones, and the median ratio holds.
    """
    ours: list[float] = []
    trainer: list[float] = []
    for r in range(rounds):
        order = ("auto", "trainer") if r % 2 == 0 else ("trainer", "auto")
        for name in order:
            value = variant(name, train, test, work, max_steps=steps)["samples_per_s"]
            (ours if name == "auto" else trainer).append(value)
    ratios = [a / b for a, b in zip(ours, trainer, strict=True)]
    return {
        "rounds": rounds,
        "steps_per_chunk": steps,
        "ours_samples_per_s": ours,
        "trainer_samples_per_s": trainer,
        "ratios": [round(x, 3) for x in ratios],
        "median_ratio": round(statistics.median(ratios), 2),
    }


def add_speed_mfu(speed: dict[str, Any], train: Path, peaks: dict[str, float]) -> None:
    """Add each arm's training MFU to the interleaved `speed` figures: samples/s times the
    training FLOPs of the mean sample (forward and backward, real tokens), over the peak of
    the format the arm trains in (ours: the default precision, bf16 where the CPU has it;
    the Trainer as its tutorials run it: fp32)."""
    import torch

    from modelyard.evaluation.utilisation import TRAINING_FLOPS_FACTOR
    from modelyard.models import resolve_backbone
    from modelyard.models.device import select_dtype

    texts = list(read_csv(train)["text"])
    flops = TRAINING_FLOPS_FACTOR * flops_per_text(
        resolve_backbone("minilm-l6"), texts, HYPER["max_length"]
    )
    ours_fmt = "bf16" if select_dtype("auto", torch.device("cpu")) == torch.bfloat16 else "fp32"
    median = statistics.median
    speed["peak_gflops"] = peaks
    speed["ours_format"], speed["trainer_format"] = ours_fmt, "fp32"
    speed["ours_mfu"] = mfu_of(median(speed["ours_samples_per_s"]), flops, peaks.get(ours_fmt))
    speed["trainer_mfu"] = mfu_of(median(speed["trainer_samples_per_s"]), flops, peaks["fp32"])


def markdown(fig: dict[str, Any]) -> str:
    """Return the benchmark's figures as a markdown report."""
    s = fig["sst2"]
    sp = fig["sst2_interleaved_speed"]
    lines = [
        "# Fine-tuning benchmark",
        "",
        f"Machine: {fig['machine']}",
        "",
        *([f"Note: {fig['note']}", ""] if fig.get("note") else []),
        "## SST-2: 8,000-row stratified sample, 2 epochs, max length 64, batch 32, lr 5e-5",
        "",
        "Test = the 872 sentences of `sst2/test.csv` (GLUE dev). Each variant runs in its own process.",
        "",
        "| variant | test accuracy | train samples/s (full run) | train s | peak RSS MB |",
        "|---|---|---|---|---|",
    ]
    for name in ("ours", "ours_fp32", "trainer"):
        if name not in s:
            continue
        v = s[name]
        lines.append(
            f"| {name} | {v['accuracy']:.4f} | {v['samples_per_s']} | {v['train_seconds']} | {v['peak_rss_mb']} |"
        )
    lines += [
        "",
        "`ours` = modelyard defaults on this CPU (length-grouped dynamic padding, bf16 autocast when the CPU",
        "has AVX-512-BF16/AMX); `ours_fp32` = the same in fp32; `trainer` = `transformers.Trainer` with",
        "`DataCollatorWithPadding` (dynamic padding, shuffled batches) as in its tutorials, fp32.",
        "",
        "### Training throughput, interleaved",
        "",
        "The machine is shared, so the full runs above ran beside different neighbours. Throughput is",
        f"therefore also measured in {sp['rounds']} alternating rounds of {sp['steps_per_chunk']} optimizer",
        "steps each (ours, Trainer, Trainer, ours, ...) on the same sample:",
        "",
        f"- ours samples/s: {sp['ours_samples_per_s']}",
        f"- Trainer samples/s: {sp['trainer_samples_per_s']}",
        f"- ratios: {sp['ratios']}; **median speed-up {sp['median_ratio']}x** (`train_speedup_vs_trainer`)",
        f"- MFU (median samples/s x training FLOPs of the mean sample, over the peak of the "
        f"arm's format {sp.get('peak_gflops')}): ours {sp.get('ours_mfu')} "
        f"({sp.get('ours_format')}), Trainer {sp.get('trainer_mfu')} ({sp.get('trainer_format')})",
        f"- full-run ratio for reference: {fig.get('full_run_speedup_vs_trainer')}x",
        "",
        "## Recipe defaults: max length 128, 10% dev split for early stopping",
        "",
        "| dataset | training rows | test accuracy | macro-F1 | samples/s |",
        "|---|---|---|---|---|",
    ]
    for name in ("trec", "ag_news"):
        if name in fig:
            v = fig[name]
            lines.append(
                f"| {name} | {v.get('train_rows', '')} | {v['accuracy']:.4f} | {v['macro_f1']:.4f} | {v['samples_per_s']} |"
            )
    return "\n".join(lines) + "\n"


def accuracy_runs(args: Any, train: Path, test: Path) -> dict[str, Any]:
    """Return the full SST-2 runs of every variant and, unless skipped, TREC and AG News."""
    variants = [("ours", "auto"), ("trainer", "trainer")] + (
        [("ours_fp32", "fp32")] if args.with_fp32 else []
    )
    sst2 = {name: variant(key, train, test, args.work) for name, key in variants}
    ratio = sst2["ours"]["samples_per_s"] / sst2["trainer"]["samples_per_s"]
    fig: dict[str, Any] = {
        "machine": machine(),
        "sst2": sst2,
        "sst2_accuracy": sst2["ours"]["accuracy"],
        "sst2_trainer_accuracy": sst2["trainer"]["accuracy"],
        "full_run_speedup_vs_trainer": round(ratio, 2),
        "peak_rss_mb": sst2["ours"]["peak_rss_mb"],
        "trainer_peak_rss_mb": sst2["trainer"]["peak_rss_mb"],
    }
    if "ours_fp32" in sst2:
        fig["sst2_fp32_accuracy"] = sst2["ours_fp32"]["accuracy"]
    if not args.skip_defaults:
        for entry in args.defaults_datasets.split(","):
            name, _, rows = entry.partition(":")
            tr, te = prepare(args.data_dir, args.work, name, int(rows) if rows else None)
            fig[name] = variant("auto", tr, te, args.work, defaults=True)
            fig[name]["train_rows"] = len(read_csv(tr))
            fig[f"{name}_accuracy"] = fig[name]["accuracy"]
            fig[f"{name}_macro_f1"] = fig[name]["macro_f1"]
    return fig


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--child", dest="variant", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--train", help=argparse.SUPPRESS)
    parser.add_argument("--test", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--defaults", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--max-steps", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=8000, help="SST-2 training sample size")
    parser.add_argument(
        "--skip-defaults", action="store_true", help="skip the TREC and AG News runs"
    )
    parser.add_argument(
        "--with-fp32", action="store_true", help="also a full fp32 run of modelyard"
    )
    parser.add_argument(
        "--defaults-datasets",
        default="trec,ag_news:4000",
        help="datasets trained with modelyard defaults, NAME[:ROWS] for a stratified training sample",
    )
    parser.add_argument("--speed-rounds", type=int, default=3, help="interleaved throughput rounds")
    parser.add_argument(
        "--speed-steps", type=int, default=40, help="optimizer steps per throughput chunk"
    )
    parser.add_argument(
        "--speed-only",
        action="store_true",
        help="only the throughput phase, merged into finetune.json",
    )
    parser.add_argument("--note", default="", help="a caveat printed at the top of the report")
    args = parser.parse_args()
    if args.variant:
        child(args)
        return
    train, test = prepare(args.data_dir, args.work, "sst2", args.rows)
    if args.speed_only:
        fig = json.loads((args.results / "finetune.json").read_text(encoding="utf-8"))
    else:
        fig = accuracy_runs(args, train, test)
    peaks = measure_peaks(2)
    speed = interleaved_speed(train, test, args.work, args.speed_rounds, args.speed_steps)
    add_speed_mfu(speed, train, peaks)
    if args.note:
        fig["note"] = args.note
    fig["sst2_interleaved_speed"] = speed
    fig["train_speedup_vs_trainer"] = speed["median_ratio"]
    write_results(args.results, "finetune", fig, markdown(fig))


if __name__ == "__main__":
    main()
