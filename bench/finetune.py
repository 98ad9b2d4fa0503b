"""Fine-tuning benchmark: modelyard against a plain transformers.Trainer, same data and budget.

    python bench/finetune.py [--data-dir ../shared/data]

SST-2: a stratified, seeded 8,000-row sample of train.csv, 2 epochs, max length 64,
evaluated on test.csv, through modelyard (bf16 autocast where the CPU has it, and fp32)
and through transformers.Trainer with dynamic padding as in its tutorials. Each variant
runs in its own process so its peak RSS is its own. TREC and AG News: modelyard defaults.
"""

from __future__ import annotations

import json
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

SEED = 42
HYPER = {
    "epochs": 2,
    "batch_size": 32,
    "lr": 5e-5,
    "weight_decay": 0.01,
    "warmup_ratio": 0.06,
    "max_length": 64,
}


def run_ours(train: Path, test: Path, out: Path, precision: str, defaults: bool) -> dict[str, Any]:
    """Train with modelyard and return accuracy, speed and memory."""
    import modelyard
    from modelyard.evaluation import peak_rss_mb

    recipe: dict[str, Any] = {
        "run": {"name": f"{train.parent.name}-{precision}", "output_dir": str(out), "seed": SEED},
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
    from modelyard.recipe import build_recipe

    result = modelyard.train(build_recipe(recipe), overwrite=True, progress=False)
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


def run_trainer(train: Path, test: Path, out: Path) -> dict[str, Any]:
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
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=rows(tr), data_collator=DataCollatorWithPadding(tok)
    )
    output = trainer.train()
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
        figures = run_trainer(train, test, out)
    else:
        figures = run_ours(train, test, out, args.variant, args.defaults)
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
    name: str, train: Path, test: Path, work: Path, defaults: bool = False
) -> dict[str, Any]:
    """Run one variant in a fresh process and return its figures."""
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
    start = time.perf_counter()
    figures = run_json_subprocess([*args, *(["--defaults"] if defaults else [])])
    figures["wall_seconds"] = round(time.perf_counter() - start, 1)
    print(f"{train.parent.name} {name}: {figures}", file=sys.stderr, flush=True)
    return figures


def markdown(fig: dict[str, Any]) -> str:
    """Return the benchmark's figures as a markdown report."""
    s = fig["sst2"]
    lines = [
        "# Fine-tuning benchmark",
        "",
        f"Machine: {fig['machine']}",
        "",
        "## SST-2 (8,000-row stratified sample, 2 epochs, max length 64, batch 32, lr 5e-5; test = 872 GLUE dev)",
        "",
        "| variant | test accuracy | train samples/s | train s | peak RSS MB |",
        "|---|---|---|---|---|",
    ]
    for name in ("ours", "ours_fp32", "trainer"):
        v = s[name]
        lines.append(
            f"| {name} | {v['accuracy']:.4f} | {v['samples_per_s']} | {v['train_seconds']} | {v['peak_rss_mb']} |"
        )
    lines += [
        "",
        f"Speed-up of modelyard over transformers.Trainer: **{fig['train_speedup_vs_trainer']}x** "
        f"(fp32 alone: {fig['train_speedup_fp32_vs_trainer']}x).",
        "",
        "## Defaults (3 epochs, max length 128, dev split 10% for early stopping)",
        "",
        "| dataset | test accuracy | macro-F1 | samples/s |",
        "|---|---|---|---|",
    ]
    for name in ("trec", "ag_news"):
        v = fig[name]
        lines.append(
            f"| {name} | {v['accuracy']:.4f} | {v['macro_f1']:.4f} | {v['samples_per_s']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--child", dest="variant", default=None, help=argparse_hidden())
    parser.add_argument("--train"), parser.add_argument("--test"), parser.add_argument("--out")
    parser.add_argument("--defaults", action="store_true")
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--skip-defaults", action="store_true", help="only the SST-2 comparison")
    args = parser.parse_args()
    if args.variant:
        child(args)
        return
    train, test = prepare(args.data_dir, args.work, "sst2", args.rows)
    sst2 = {
        name: variant(key, train, test, args.work)
        for name, key in (("ours", "auto"), ("trainer", "trainer"), ("ours_fp32", "fp32"))
    }
    fig: dict[str, Any] = {
        "machine": machine(),
        "sst2": sst2,
        "sst2_accuracy": sst2["ours"]["accuracy"],
        "sst2_trainer_accuracy": sst2["trainer"]["accuracy"],
        "sst2_fp32_accuracy": sst2["ours_fp32"]["accuracy"],
        "train_speedup_vs_trainer": round(
            sst2["ours"]["samples_per_s"] / sst2["trainer"]["samples_per_s"], 2
        ),
        "train_speedup_fp32_vs_trainer": round(
            sst2["ours_fp32"]["samples_per_s"] / sst2["trainer"]["samples_per_s"], 2
        ),
        "peak_rss_mb": sst2["ours"]["peak_rss_mb"],
        "trainer_peak_rss_mb": sst2["trainer"]["peak_rss_mb"],
    }
    if not args.skip_defaults:
        for name in ("trec", "ag_news"):
            tr, te = prepare(args.data_dir, args.work, name, None)
            fig[name] = variant("auto", tr, te, args.work, defaults=True)
            fig[f"{name}_accuracy"] = fig[name]["accuracy"]
            fig[f"{name}_macro_f1"] = fig[name]["macro_f1"]
    write_results(
        args.results,
        "finetune",
        fig,
        markdown(fig) if not args.skip_defaults else json.dumps(fig, indent=2),
    )


def argparse_hidden() -> str:
    return "internal: run one variant (auto, fp32, trainer) and print JSON"


if __name__ == "__main__":
    main()
