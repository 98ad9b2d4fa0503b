"""Task benchmark: token classification (CoNLL-2003 NER) through modelyard against a plain
transformers.Trainer with AutoModelForTokenClassification, same data and budget.

    nice -n 5 python bench/tasks.py [--data-dir ../shared/data] [--quick]

A seeded sample of CoNLL-2003 train sentences (ner_conll2003/train.jsonl, BIO tags), the
default backbone, the same epochs, learning rate, batch size, warmup, weight decay and maximum
length for both; no dev split (both train the planned length and keep the final weights).
Entity-level F1 (seqeval) on a seeded sample of the test file (eng.testb; FULL["test_rows"],
None for all of it) for both, every word scored (words cut off by the maximum length count as
O). Each run is its own process. Training speed is compared in alternating short chunks (ours,
Trainer, Trainer, ours, ...) because the machine is shared. Then `modelyard compress` makes the
ONNX fp32 and int8-dynamic variants of our run and scores their entity F1 on the same test
sample (`ner_int8_f1_drop`: the parent's F1 minus the int8 variant's, both scored there).
`--rows N` trains both on N sentences instead of FULL["rows"] (0: the whole train file).
`--quick` is a CI-sized smoke run (a few dozen sentences) written to tasks_quick.{json,md}.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import base_parser, machine, run_json_subprocess, write_results

SEED = 42
# the budget of the recorded run: 1,000 sentences (200 gave F1 near 0.3, too noisy to compare)
# to finish within about 40 minutes on a 2-core machine shared with other work (training ran
# at 1.5 to 3 sentences per second under that load); --rows changes it
FULL = {
    "rows": 1000,
    "test_rows": 500,
    "epochs": 2,
    "batch_size": 16,
    "lr": 3e-4,
    "weight_decay": 0.01,
    "warmup_ratio": 0.1,
    "max_length": 128,
    "speed_rounds": 1,
    "speed_steps": 6,
}
QUICK = {**FULL, "rows": 48, "test_rows": 64, "epochs": 1, "speed_rounds": 1, "speed_steps": 2}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Return the sentences of a JSONL file of {tokens, tags}."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows as JSONL; return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def prepare(data_dir: Path, work: Path, hyper: dict[str, Any]) -> tuple[Path, Path, dict[str, int]]:
    """Write the seeded training sample (and test sample in quick mode); return both paths and sizes."""
    source = data_dir / "ner_conll2003"
    train = read_jsonl(source / "train.jsonl")
    random.Random(SEED).shuffle(train)
    train = train[: hyper["rows"]]
    test = read_jsonl(source / "test.jsonl")
    if hyper["test_rows"] and hyper["test_rows"] < len(test):
        test = random.Random(SEED).sample(test, hyper["test_rows"])
    folder = work / "tasks"
    sizes = {
        "train_sentences": len(train),
        "train_tokens": sum(len(r["tokens"]) for r in train),
        "test_sentences": len(test),
        "test_tokens": sum(len(r["tokens"]) for r in test),
    }
    return (
        write_jsonl(folder / "train.jsonl", train),
        write_jsonl(folder / "test.jsonl", test),
        sizes,
    )


def run_ours(
    train: Path, test: Path, out: Path, hyper: dict[str, Any], steps: int | None
) -> dict[str, Any]:
    """Train with modelyard (`task: token-classification`) and return F1, speed and memory."""
    import modelyard
    from modelyard.evaluation import peak_rss_mb
    from modelyard.recipe import build_recipe

    recipe = {
        "task": "token-classification",
        "run": {"name": "ner" + ("-speed" if steps else ""), "output_dir": str(out), "seed": SEED},
        "data": {"train": str(train), "test": str(test), "split": {"dev": 0.0, "test": 0.0}},
        "model": {"backbone": "minilm-l6", "max_length": hyper["max_length"]},
        "train": {
            **{k: hyper[k] for k in ("epochs", "batch_size", "lr", "weight_decay", "warmup_ratio")},
            "checkpoint_every": None,
            "max_steps": steps,
        },
    }
    result = modelyard.train(build_recipe(recipe), overwrite=True, progress=False)
    figures = {"samples_per_s": result.training["samples_per_s"]}
    if steps:
        return figures
    m = result.metrics
    return {
        **figures,
        "f1": m["f1"],
        "precision": m["precision"],
        "recall": m["recall"],
        "macro_f1": m["macro_f1"],
        "per_type_f1": {k: v["f1"] for k, v in m["per_type"].items()},
        "truncated_sentences": m["truncated_sentences"],
        "train_seconds": result.training["train_seconds"],
        "steps": result.training["steps"],
        "autocast": result.training["precision"],
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "run_dir": str(result.run_dir),
    }


class _Rows:
    def __init__(self, enc: Any, labels: list[list[int]]) -> None:
        self.enc, self.labels = enc, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.enc["input_ids"][i], "labels": self.labels[i]}


def run_compress(run: Path) -> dict[str, Any]:
    """Compress our run with onnx and int8-dynamic and return each row of the report (entity
    F1 on the run's test file, speed-up, size) with its parity figures."""
    from modelyard import api

    result = api.compress(
        run,
        methods=["onnx", "int8-dynamic"],
        output=run.parent / f"{run.name}-compressed",
        overwrite=True,
        log=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    keys = (
        "accuracy",
        "precision",
        "recall",
        "macro_f1",
        "size_mb",
        "latency_p50_ms",
        "throughput_b32_per_s",
        "speedup_b32",
        "size_ratio",
    )
    rows = {}
    for row in result.report["variants"]:
        figures = {("f1" if k == "accuracy" else k): row.get(k) for k in keys}
        record = Path(row["path"]) / "compression.json"
        if record.is_file() and row["path"] != str(run):
            details = json.loads(record.read_text(encoding="utf-8"))
            figures["max_abs_logit_diff"] = details["max_abs_logit_diff"]
            figures["span_agreement"] = details["span_agreement"]
        rows[row["name"]] = figures
    return {
        "variants": rows,
        "failed": result.report["failed"],
        "threads": result.report["threads"],
        "rounds": result.report["rounds"],
        "speed_texts": result.report["speed_texts"],
    }


def run_trainer(
    train: Path, test: Path, out: Path, hyper: dict[str, Any], steps: int | None
) -> dict[str, Any]:
    """Fine-tune with transformers.Trainer the way its token-classification tutorial does
    (first sub-token labelled, DataCollatorForTokenClassification); return the same figures."""
    import numpy as np
    from seqeval.metrics import f1_score, precision_score, recall_score
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from modelyard.evaluation import peak_rss_mb
    from modelyard.models import resolve_backbone

    set_seed(SEED)
    folder = str(resolve_backbone("minilm-l6"))
    tr, te = read_jsonl(train), read_jsonl(test)
    tags = [
        "O",
        *sorted({t for r in tr + te for t in r["tags"] if t != "O"}, key=lambda t: (t[2:], t[0])),
    ]
    index = {t: i for i, t in enumerate(tags)}
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForTokenClassification.from_pretrained(
        folder, num_labels=len(tags), use_safetensors=True, local_files_only=True
    )

    def rows(sentences: list[dict[str, Any]]) -> _Rows:
        enc = tok(
            [s["tokens"] for s in sentences],
            is_split_into_words=True,
            truncation=True,
            max_length=hyper["max_length"],
        )
        labels = []
        for i, s in enumerate(sentences):
            previous, row = None, []
            for word in enc.word_ids(i):
                row.append(-100 if word is None or word == previous else index[s["tags"][word]])
                previous = word
            labels.append(row)
        return _Rows(enc, labels)

    total = -(-len(tr) // hyper["batch_size"]) * hyper["epochs"]
    args = TrainingArguments(
        output_dir=str(out / "trainer"),
        per_device_train_batch_size=hyper["batch_size"],
        per_device_eval_batch_size=32,
        num_train_epochs=hyper["epochs"],
        learning_rate=hyper["lr"],
        weight_decay=hyper["weight_decay"],
        warmup_steps=int(hyper["warmup_ratio"] * total),
        seed=SEED,
        use_cpu=True,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        logging_strategy="no",
        max_steps=steps or -1,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=rows(tr),
        data_collator=DataCollatorForTokenClassification(tok),
    )
    output = trainer.train()
    figures = {"samples_per_s": round(output.metrics["train_samples_per_second"], 2)}
    if steps:
        return figures
    test_rows = rows(te)
    pred = trainer.predict(test_rows)
    best = np.argmax(pred.predictions, axis=-1)
    gold, predicted = [], []
    for i, s in enumerate(te):
        words = [int(best[i][p]) for p, label in enumerate(test_rows.labels[i]) if label != -100]
        # words past the maximum length are O, as modelyard scores them
        predicted.append([tags[w] for w in words] + ["O"] * (len(s["tags"]) - len(words)))
        gold.append(s["tags"])
    return {
        **figures,
        "f1": round(float(f1_score(gold, predicted)), 6),
        "precision": round(float(precision_score(gold, predicted)), 6),
        "recall": round(float(recall_score(gold, predicted)), 6),
        "train_seconds": round(output.metrics["train_runtime"], 1),
        "steps": int(output.global_step),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def child(args: Any) -> None:
    """Run one variant in this process and print its figures as JSON."""
    if args.child == "compress":
        print(json.dumps(run_compress(Path(args.out))))
        return
    hyper = json.loads(args.hyper)
    run = run_trainer if args.child == "trainer" else run_ours
    print(json.dumps(run(Path(args.train), Path(args.test), Path(args.out), hyper, args.max_steps)))


def variant(
    name: str, train: Path, test: Path, work: Path, hyper: dict[str, Any], steps: int | None = None
) -> dict[str, Any]:
    """Run one variant in a fresh process (its own peak RSS) and return its figures."""
    args = [
        __file__,
        "--child",
        name,
        "--train",
        str(train),
        "--test",
        str(test),
        "--out",
        str(work / "tasks" / "runs"),
        "--hyper",
        json.dumps(hyper),
    ]
    if steps:
        args += ["--max-steps", str(steps)]
    start = time.perf_counter()
    figures = run_json_subprocess(args)
    figures["wall_seconds"] = round(time.perf_counter() - start, 1)
    print(f"{name}{' speed' if steps else ''}: {figures}", file=sys.stderr, flush=True)
    return figures


PARENT_ROW = "parent (fp32 PyTorch)"


def compressed_variants(run: Path) -> dict[str, Any]:
    """Compress our run in a fresh process; return its figures (see `run_compress`)."""
    start = time.perf_counter()
    figures = run_json_subprocess([__file__, "--child", "compress", "--out", str(run)])
    figures["wall_seconds"] = round(time.perf_counter() - start, 1)
    print(f"compress: {figures}", file=sys.stderr, flush=True)
    return figures


def interleaved_speed(train: Path, test: Path, work: Path, hyper: dict[str, Any]) -> dict[str, Any]:
    """Return training throughput of ours and Trainer measured in alternating short chunks."""
    ours: list[float] = []
    trainer: list[float] = []
    for r in range(hyper["speed_rounds"]):
        for name in ("ours", "trainer") if r % 2 == 0 else ("trainer", "ours"):
            value = variant(name, train, test, work, hyper, hyper["speed_steps"])["samples_per_s"]
            (ours if name == "ours" else trainer).append(value)
    ratios = [a / b for a, b in zip(ours, trainer, strict=True)]
    return {
        "rounds": hyper["speed_rounds"],
        "steps_per_chunk": hyper["speed_steps"],
        "ours_samples_per_s": ours,
        "trainer_samples_per_s": trainer,
        "ratios": [round(x, 3) for x in ratios],
        "median_ratio": round(statistics.median(ratios), 3),
    }


def markdown(fig: dict[str, Any]) -> str:
    """Return the benchmark's figures as a markdown report."""
    h, d, o, t, s = fig["hyper"], fig["data"], fig["ours"], fig["trainer"], fig["speed"]
    goals = fig["goals"]
    lines = [
        "# Task benchmark: token classification (CoNLL-2003 NER)"
        + (" (quick)" if fig["quick"] else ""),
        "",
        f"Machine: {fig['machine']}",
        f"Load average (1, 5, 15 min) at start {fig['load_start']}, at end {fig['load_end']}; "
        f"wall time {fig['wall_minutes']} min.",
        "",
        f"Data: `ner_conll2003/train.jsonl` seeded sample of {d['train_sentences']} sentences "
        f"({d['train_tokens']} tokens); test: a seeded sample of {d['test_sentences']} sentences "
        f"of `test.jsonl` (eng.testb, {d['test_tokens']} tokens). Backbone minilm-l6; {h['epochs']} epochs, batch "
        f"{h['batch_size']}, lr {h['lr']}, warmup {h['warmup_ratio']}, weight decay "
        f"{h['weight_decay']}, max length {h['max_length']}; no dev split. Entity-level F1 (seqeval, "
        "micro over entities).",
        "",
        "| variant | test entity F1 | precision | recall | train samples/s (full run) | train s | peak RSS MB |",
        "|---|---|---|---|---|---|---|",
        f"| modelyard ({o['autocast']}) | {o['f1']:.4f} | {o['precision']:.4f} | {o['recall']:.4f} | "
        f"{o['samples_per_s']} | {o['train_seconds']} | {o['peak_rss_mb']} |",
        f"| transformers.Trainer (fp32) | {t['f1']:.4f} | {t['precision']:.4f} | {t['recall']:.4f} | "
        f"{t['samples_per_s']} | {t['train_seconds']} | {t['peak_rss_mb']} |",
        "",
        f"modelyard per type: {o['per_type_f1']}; entity macro-F1 {o['macro_f1']}.",
        "",
        f"Speed, alternating chunks of {s['steps_per_chunk']} steps ({s['rounds']} rounds): ours "
        f"{s['ours_samples_per_s']} samples/s, Trainer {s['trainer_samples_per_s']}; ratios "
        f"{s['ratios']}, median {s['median_ratio']}.",
        "",
        "| figure | value | goal | met |",
        "|---|---|---|---|",
    ]
    lines.insert(
        -3,
        f"Full runs, one after the other: ours/Trainer = {fig['figures'].get('ner_train_speedup_full_runs')}.",
    )
    lines.insert(-3, "")
    lines[-2:-2] = compression_lines(fig["compressed"])
    for key, goal in goals.items():
        value = fig["figures"].get(key)
        met = "—" if value is None else ("yes" if goal["met"] else "no")
        lines.append(
            f"| `{key}` | {value if value is not None else 'not measured'} | {goal['goal']} | {met} |"
        )
    lines += ["", *[f"- {n}" for n in fig["notes"]], ""]
    return "\n".join(lines)


def _sig(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def compression_lines(comp: dict[str, Any]) -> list[str]:
    """Return the markdown table of the compressed variants."""
    lines = [
        f"Compression (`modelyard compress`, {comp['threads']} thread(s), medians of "
        f"{comp['rounds']} interleaved rounds on {comp['speed_texts']} test texts; entity F1 on "
        "the same test sample):",
        "",
        "| variant | entity F1 | size MiB | p50 ms (b1) | texts/s (b32) | speed-up b32 | max logit gap | span agreement |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in comp["variants"].items():
        lines.append(
            f"| {name} | {row['f1']:.4f} | {row['size_mb']} | {row['latency_p50_ms']} | "
            f"{row['throughput_b32_per_s']} | {row['speedup_b32']} | "
            f"{_sig(row.get('max_abs_logit_diff'))} | {row.get('span_agreement', '—')} |"
        )
    lines += [f"- {name} failed: {error}" for name, error in comp["failed"].items()]
    return [*lines, ""]


def main() -> None:
    """Run the benchmark (or, with --child, one variant) and write bench/results/tasks.*."""
    parser = base_parser(__doc__ or "")
    parser.add_argument("--quick", action="store_true", help="a CI-sized smoke run")
    parser.add_argument(
        "--rows",
        type=int,
        default=None,
        help=f"training sentences for both (default {FULL['rows']}; 0: the whole train file)",
    )
    parser.add_argument("--child", choices=["ours", "trainer", "compress"], help=argparse_hidden())
    for name in ("--train", "--test", "--out", "--hyper"):
        parser.add_argument(name, help=argparse_hidden())
    parser.add_argument("--max-steps", type=int, default=None, help=argparse_hidden())
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    hyper = dict(QUICK if args.quick else FULL)
    if args.rows is not None:
        hyper["rows"] = args.rows or None
    started, load_start = time.perf_counter(), [round(x, 2) for x in os.getloadavg()]
    train, test, sizes = prepare(args.data_dir, args.work, hyper)
    ours = variant("ours", train, test, args.work, hyper)
    trainer = variant("trainer", train, test, args.work, hyper)
    speed = interleaved_speed(train, test, args.work, hyper)
    compressed = compressed_variants(Path(ours["run_dir"]))
    variants = compressed["variants"]
    parent_f1 = variants[PARENT_ROW]["f1"]
    figures = {
        "ner_test_f1": ours["f1"],
        "ner_f1_minus_trainer": round(ours["f1"] - trainer["f1"], 4),
        "ner_train_speedup_vs_trainer": speed["median_ratio"],
        "ner_int8_f1_drop": round(parent_f1 - variants["int8-dynamic"]["f1"], 4),
        "ner_onnx_f1_drop": round(parent_f1 - variants["onnx"]["f1"], 4),
        "ner_int8_speedup_b32": variants["int8-dynamic"]["speedup_b32"],
        "ner_onnx_speedup_b32": variants["onnx"]["speedup_b32"],
        # the same ratio from the two full runs, one after the other: a second, noisier reading
        "ner_train_speedup_full_runs": round(ours["samples_per_s"] / trainer["samples_per_s"], 3),
    }
    goals = {
        "ner_f1_minus_trainer": {
            "goal": ">= -0.005",
            "met": figures["ner_f1_minus_trainer"] >= -0.005,
        },
        "ner_train_speedup_vs_trainer": {
            "goal": ">= 1.5",
            "met": figures["ner_train_speedup_vs_trainer"] >= 1.5,
        },
        "ner_int8_f1_drop": {"goal": "<= 0.01", "met": figures["ner_int8_f1_drop"] <= 0.01},
    }
    fig = {
        "quick": bool(args.quick),
        "figures": figures,
        "goals": goals,
        "hyper": hyper,
        "data": sizes,
        "ours": ours,
        "trainer": trainer,
        "speed": speed,
        "compressed": compressed,
        "machine": machine(),
        "load_start": load_start,
        "load_end": [round(x, 2) for x in os.getloadavg()],
        "wall_minutes": round((time.perf_counter() - started) / 60, 1),
        "notes": [
            "ner_int8_f1_drop and ner_onnx_f1_drop: `modelyard compress` scores the parent "
            "(fp32 PyTorch) and each variant on the same test sample with the same code; the "
            "parent's F1 there can differ slightly from ner_test_f1, which the training run "
            "measured under its own precision (bf16 autocast where the CPU has it).",
            "modelyard trains with its defaults beyond the shared budget: length-grouped "
            "batches and bf16 autocast where the CPU has fast bf16 (precision auto); Trainer "
            "runs fp32 with random batches, as its tutorial does.",
            "Both score every test word: words past the maximum length count as O.",
            "On a machine this loaded, speed readings swing several-fold between minutes: "
            "compare ner_train_speedup_vs_trainer (alternating chunks) with "
            "ner_train_speedup_full_runs (the full runs, one after the other); when they "
            "disagree on which side is faster, the speedup is not established.",
        ],
    }
    name = "tasks_quick" if args.quick else "tasks"
    write_results(args.results, name, fig, markdown(fig))
    print(json.dumps(figures))


def argparse_hidden() -> str:
    """Return the help text of an option the benchmark passes to its own child processes."""
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
