"""Task benchmark: token classification (CoNLL-2003 NER) through modelyard against a plain
transformers.Trainer with AutoModelForTokenClassification, same data and budget.

    nice -n 5 python bench/tasks.py [--data-dir ../shared/data] [--quick]

A seeded sample of CoNLL-2003 train sentences (ner_conll2003/train.jsonl, BIO tags), the
default backbone, the same epochs, learning rate, batch size, warmup, weight decay and maximum
length for both; no dev split (both train the planned length and keep the final weights).
Entity-level F1 (seqeval) on a seeded sample of the test file (eng.testb; FULL["test_rows"],
None for all of it) for both, every word scored (words cut off by the maximum length count as
O). Each run is its own process.

Both arms train with `--seeds N` training seeds (the data sample stays the same; the seed sets
the head's initialisation, the batch order and dropout), one full run each, interleaved on the
shared machine: ours then Trainer for the first seed, Trainer then ours for the second, and so
on. `ner_test_f1` is our mean F1 over the seeds, `ner_f1_minus_trainer` the difference of the
two means. `ner_train_speedup_vs_trainer` is the median over seeds of the ratio of the two
adjacent runs' training throughput: training samples over the wall time of the whole training
loop (ours: every step, the end-of-epoch checkpoint and evaluation; Trainer: `train_runtime`).
After each seed's pair, an ablation arm trains ours with the word-embedding table trained
(`train.freeze_word_embeddings: false`, as Trainer trains it): `ner_*_table_trained`.
Then `modelyard compress` makes the ONNX fp32 and int8-dynamic variants of our first seed's
run and scores their entity F1 on the same test sample (`ner_int8_f1_drop`: the parent's F1
minus the int8 variant's, both scored there).
int8-dynamic smooths the products first (compress.quantize.smooth_alpha); the same model is
also quantized without smoothing, in a second report (`ner_int8_unsmoothed_*`).
`--reuse-training RESULTS.json` keeps the training runs and figures of an earlier run of this
benchmark (their folders must still exist) and redoes only the compression step.
`--rows N` trains both on N sentences instead of FULL["rows"] (0: the whole train file).
Training MFU (`summary.mfu_*`): each arm's median samples/s times the FLOPs of a training
sentence's real word pieces (forward + backward), over the GEMM peak of the format the arm
trains in, measured at the start of the run.
`--quick` is a CI-sized smoke run (a few dozen sentences) written to tasks_quick.{json,md}.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import base_parser, machine, measure_peaks, mfu_of, run_json_subprocess, write_results

SEED = 42
# the budget of the recorded run: 1,000 sentences (200 gave F1 near 0.3, too noisy to compare);
# --rows changes it. One seed's F1 moved by about 0.01 between runs, as much as the gap the goal
# allows, so both arms train with several seeds and the means are compared.
FULL = {
    "rows": 1000,
    "test_rows": 500,
    "epochs": 2,
    "batch_size": 16,
    "lr": 3e-4,
    "weight_decay": 0.01,
    "warmup_ratio": 0.1,
    "max_length": 128,
    "seeds": 3,
}
# an ablation arm: modelyard's defaults but with the word-embedding table trained, as
# Trainer trains it (token classification freezes it by default)
TABLE_ARM = "ours_table"
TABLE_TRAINED = {"freeze_word_embeddings": False}
COMPRESS_SECONDS = 240  # the compression step took 144 s under a load average of 5
QUICK = {**FULL, "rows": 48, "test_rows": 64, "epochs": 1, "seeds": 2}


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
    train: Path,
    test: Path,
    out: Path,
    hyper: dict[str, Any],
    seed: int,
    train_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train with modelyard (`task: token-classification`, its defaults, changed by
    `train_extra`) and return F1, speed and memory."""
    import modelyard
    from modelyard.evaluation import peak_rss_mb
    from modelyard.recipe import build_recipe

    suffix = "-table" if train_extra else ""
    recipe = {
        "task": "token-classification",
        "run": {"name": f"ner-seed{seed}{suffix}", "output_dir": str(out), "seed": seed},
        "data": {"train": str(train), "test": str(test), "split": {"dev": 0.0, "test": 0.0}},
        "model": {"backbone": "minilm-l6", "max_length": hyper["max_length"]},
        "train": {
            **{k: hyper[k] for k in ("epochs", "batch_size", "lr", "weight_decay", "warmup_ratio")},
            "checkpoint_every": None,
            **(train_extra or {}),
        },
    }
    built = build_recipe(recipe)
    load = _load()
    result = modelyard.train(built, overwrite=True, progress=False)
    m, t = result.metrics, result.training
    grouped = built.train.group_by_length
    return {
        "batches": f"grouped in windows of {built.train.group_window}" if grouped else "random",
        "word_embeddings": "frozen" if built.train.freeze_word_embeddings else "trained",
        # the whole training loop, as Trainer's train_runtime counts its own
        "samples_per_s": round(t["train_samples"] / t["wall_seconds"], 2),
        "loop_seconds": t["wall_seconds"],
        "step_samples_per_s": t["samples_per_s"],  # the optimizer steps alone
        "load": [load, _load()],
        "f1": m["f1"],
        "precision": m["precision"],
        "recall": m["recall"],
        "macro_f1": m["macro_f1"],
        "per_type_f1": {k: v["f1"] for k, v in m["per_type"].items()},
        "truncated_sentences": m["truncated_sentences"],
        "train_seconds": t["train_seconds"],
        "steps": t["steps"],
        "autocast": t["precision"],
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "run_dir": str(result.run_dir),
    }


def _load() -> float:
    """Return the one-minute load average (how busy the shared machine was)."""
    return round(os.getloadavg()[0], 2)


class _Rows:
    def __init__(self, enc: Any, labels: list[list[int]]) -> None:
        self.enc, self.labels = enc, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.enc["input_ids"][i], "labels": self.labels[i]}


def run_compress(run: Path) -> dict[str, Any]:
    """Compress our run with onnx and int8-dynamic and return each row of the report (entity
    F1 on the run's test file, speed-up, size) with its parity figures; then int8-dynamic
    again without smoothing (compress.quantize.smooth_alpha=0), in its own report, to show
    what smoothing changes (its speed-up is against that report's own parent timing)."""
    figures = _compress_rows(run, ["onnx", "int8-dynamic"], [], "compressed")
    plain = _compress_rows(
        run, ["int8-dynamic"], ["compress.quantize.smooth_alpha=0"], "compressed-unsmoothed"
    )
    figures["unsmoothed"] = plain
    return figures


def _compress_rows(
    run: Path, methods: list[str], overrides: list[str], suffix: str
) -> dict[str, Any]:
    from modelyard import api

    result = api.compress(
        run,
        methods=methods,
        output=run.parent / f"{run.name}-{suffix}",
        overwrite=True,
        overrides=overrides,
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
            for key in ("smooth_alpha", "smoothed_products"):
                if key in details:
                    figures[key] = details[key]
        rows[row["name"]] = figures
    return {
        "variants": rows,
        "failed": result.report["failed"],
        "threads": result.report["threads"],
        "rounds": result.report["rounds"],
        "speed_texts": result.report["speed_texts"],
    }


def run_trainer(
    train: Path, test: Path, out: Path, hyper: dict[str, Any], seed: int
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

    set_seed(seed)
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
        seed=seed,
        use_cpu=True,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        logging_strategy="no",
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=rows(tr),
        data_collator=DataCollatorForTokenClassification(tok),
    )
    load = _load()
    output = trainer.train()
    figures = {
        "samples_per_s": round(output.metrics["train_samples_per_second"], 2),
        "loop_seconds": round(output.metrics["train_runtime"], 3),
        "load": [load, _load()],
    }
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
    paths = (Path(args.train), Path(args.test), Path(args.out))
    if args.child == "trainer":
        print(json.dumps(run_trainer(*paths, hyper, args.seed)))
        return
    extra = TABLE_TRAINED if args.child == TABLE_ARM else None
    print(json.dumps(run_ours(*paths, hyper, args.seed, extra)))


def variant(
    name: str, train: Path, test: Path, work: Path, hyper: dict[str, Any], seed: int
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
        "--seed",
        str(seed),
    ]
    start = time.perf_counter()
    figures = run_json_subprocess(args)
    figures["wall_seconds"] = round(time.perf_counter() - start, 1)
    print(f"{name} seed {seed}: {figures}", file=sys.stderr, flush=True)
    return figures


PARENT_ROW = "parent (fp32 PyTorch)"


def compressed_variants(run: Path) -> dict[str, Any]:
    """Compress our run in a fresh process; return its figures (see `run_compress`)."""
    start = time.perf_counter()
    figures = run_json_subprocess([__file__, "--child", "compress", "--out", str(run)])
    figures["wall_seconds"] = round(time.perf_counter() - start, 1)
    print(f"compress: {figures}", file=sys.stderr, flush=True)
    return figures


def interleaved_runs(
    train: Path, test: Path, work: Path, hyper: dict[str, Any], until: datetime | None = None
) -> list[dict[str, Any]]:
    """Return one pair of full runs (ours, Trainer) a training seed, in alternating order,
    each followed by our run with the word-embedding table trained (TABLE_ARM).

    With `until`, no further pair starts when the slowest pair so far, plus the compression
    step after them, would end after that time (the first pair always runs).
    """
    pairs: list[dict[str, Any]] = []
    longest = 0.0
    for i in range(hyper["seeds"]):
        end = datetime.now(UTC) + timedelta(seconds=longest + COMPRESS_SECONDS)
        if pairs and until is not None and end > until:
            print(f"stopping after {len(pairs)} seed(s): --until {until}", file=sys.stderr)
            break
        seed, start = SEED + i, time.perf_counter()
        order = ("ours", "trainer") if i % 2 == 0 else ("trainer", "ours")
        runs = {name: variant(name, train, test, work, hyper, seed) for name in order}
        # the ablation runs after the pair, so that ours and Trainer stay adjacent
        runs[TABLE_ARM] = variant(TABLE_ARM, train, test, work, hyper, seed)
        pairs.append({"seed": seed, "first": order[0], **runs})
        longest = max(longest, time.perf_counter() - start)
    return pairs


def summarise(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the means and spreads of F1 over the seeds and the per-seed speed ratios."""

    def values(arm: str, key: str) -> list[float]:
        return [float(p[arm][key]) for p in pairs]

    def spread(xs: list[float]) -> float:
        return round(statistics.stdev(xs), 4) if len(xs) > 1 else 0.0

    ours_f1, trainer_f1 = values("ours", "f1"), values("trainer", "f1")
    gaps = [a - b for a, b in zip(ours_f1, trainer_f1, strict=True)]
    ratios = [
        a / b
        for a, b in zip(
            values("ours", "samples_per_s"), values("trainer", "samples_per_s"), strict=True
        )
    ]
    table = _table_summary(pairs) if all(TABLE_ARM in p for p in pairs) else {}
    return {
        **table,
        "seeds": [p["seed"] for p in pairs],
        "ours_f1": ours_f1,
        "trainer_f1": trainer_f1,
        "ours_f1_mean": round(statistics.mean(ours_f1), 4),
        "trainer_f1_mean": round(statistics.mean(trainer_f1), 4),
        "ours_f1_sd": spread(ours_f1),
        "trainer_f1_sd": spread(trainer_f1),
        "f1_gaps": [round(g, 4) for g in gaps],
        "f1_gap_mean": round(statistics.mean(gaps), 4),
        "ours_samples_per_s": values("ours", "samples_per_s"),
        "trainer_samples_per_s": values("trainer", "samples_per_s"),
        "speed_ratios": [round(r, 3) for r in ratios],
        "speed_ratio_median": round(statistics.median(ratios), 3),
    }


def _table_summary(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the ablation arm's F1 and speed against the same seed's Trainer run."""
    f1 = [float(p[TABLE_ARM]["f1"]) for p in pairs]
    gaps = [a - float(p["trainer"]["f1"]) for a, p in zip(f1, pairs, strict=True)]
    ratios = [
        float(p[TABLE_ARM]["samples_per_s"]) / float(p["trainer"]["samples_per_s"]) for p in pairs
    ]
    return {
        "table_f1": f1,
        "table_f1_mean": round(statistics.mean(f1), 4),
        "table_f1_gap_mean": round(statistics.mean(gaps), 4),
        "table_speed_ratios": [round(r, 3) for r in ratios],
        "table_speed_ratio_median": round(statistics.median(ratios), 3),
    }


def markdown(fig: dict[str, Any]) -> str:
    """Return the benchmark's figures as a markdown report."""
    h, d, s = fig["hyper"], fig["data"], fig["summary"]
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
        f"micro over entities). {h['seeds_run']} training seed(s) a side ({h['seeds']} planned; "
        "--until stops adding seeds at a deadline), the runs interleaved "
        "(ours first for the first seed, Trainer first for the next, ...).",
        "",
        "| seed | arm (in run order) | test entity F1 | precision | recall | train samples/s (loop) | loop s | load 1 min (start, end) | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for pair in fig["runs"]:
        order = ("ours", "trainer") if pair["first"] == "ours" else ("trainer", "ours")
        for arm in (*order, TABLE_ARM) if TABLE_ARM in pair else order:
            r = pair[arm]
            label = {
                "ours": f"modelyard ({r.get('autocast')}, defaults)",
                "trainer": "transformers.Trainer (fp32)",
                TABLE_ARM: f"modelyard ({r.get('autocast')}, word embeddings trained)",
            }[arm]
            lines.append(
                f"| {pair['seed']} | {label} | {r['f1']:.4f} | {r['precision']:.4f} | "
                f"{r['recall']:.4f} | {r['samples_per_s']} | {r['loop_seconds']} | {r['load']} | "
                f"{r['peak_rss_mb']} |"
            )
    first = fig["runs"][0]["ours"]
    lines += [
        "",
        f"Mean test entity F1: modelyard {s['ours_f1_mean']} (sd {s['ours_f1_sd']}), Trainer "
        f"{s['trainer_f1_mean']} (sd {s['trainer_f1_sd']}); per-seed differences {s['f1_gaps']}.",
        f"Training speed, ours/Trainer per seed (adjacent full runs): {s['speed_ratios']}, median "
        f"{s['speed_ratio_median']}. Our optimizer steps alone ran at "
        f"{[p['ours']['step_samples_per_s'] for p in fig['runs']]} samples/s.",
        *(
            [
                f"Training MFU (median samples/s x {s['training_flops_per_sentence']:,} FLOPs "
                "of a sentence's real word pieces, forward + backward, over the GEMM peak of the "
                f"arm's format measured at the start, {s['peak_gflops']} GFLOP/s): ours "
                f"{s['mfu_ours']} ({s['mfu_ours_format']}), Trainer {s['mfu_trainer']} "
                f"({s['mfu_trainer_format']})."
            ]
            if "mfu_ours" in s
            else []
        ),
        f"modelyard per type (seed {fig['runs'][0]['seed']}): {first['per_type_f1']}; entity "
        f"macro-F1 {first['macro_f1']}.",
        *(
            [
                f"Ablation, modelyard with the word-embedding table trained (run after each "
                f"pair): mean F1 {s['table_f1_mean']}, minus Trainer {s['table_f1_gap_mean']}; "
                f"speed / the same seed's Trainer run {s['table_speed_ratios']}, median "
                f"{s['table_speed_ratio_median']}.",
            ]
            if "table_f1" in s
            else []
        ),
        "",
        *compression_lines(fig["compressed"]),
        "| figure | value | goal | met |",
        "|---|---|---|---|",
    ]
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


def _variant_row(name: str, row: dict[str, Any]) -> str:
    return (
        f"| {name} | {row['f1']:.4f} | {row['size_mb']} | {row['latency_p50_ms']} | "
        f"{row['throughput_b32_per_s']} | {row['speedup_b32']} | "
        f"{_sig(row.get('max_abs_logit_diff'))} | {row.get('span_agreement', '—')} |"
    )


def compression_lines(comp: dict[str, Any]) -> list[str]:
    """Return the markdown table of the compressed variants (and of int8 without smoothing,
    measured in its own report, when the run made it)."""
    lines = [
        f"Compression (`modelyard compress`, {comp['threads']} thread(s), medians of "
        f"{comp['rounds']} interleaved rounds on {comp['speed_texts']} test texts; entity F1 on "
        "the same test sample):",
        "",
        "| variant | entity F1 | size MiB | p50 ms (b1) | texts/s (b32) | speed-up b32 | max logit gap | span agreement |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [_variant_row(name, row) for name, row in comp["variants"].items()]
    plain = comp.get("unsmoothed", {}).get("variants", {})
    if plain:
        parent = f"own report, parent F1 {plain[PARENT_ROW]['f1']:.4f}, speed-up vs its own timing"
        lines.append(_variant_row(f"int8-dynamic unsmoothed ({parent})", plain["int8-dynamic"]))
    lines += [f"- {name} failed: {error}" for name, error in comp["failed"].items()]
    return [*lines, ""]


def training_flops_per_sentence(run_dir: Path, train: Path, max_length: int) -> float:
    """Return the mean training FLOPs (forward + backward) of one sentence of `train` through
    the encoder of `run_dir`: its real word pieces only, cut at `max_length`."""
    from transformers import AutoConfig

    from modelyard.evaluation.utilisation import TransformerShape, model_flops
    from modelyard.models.build import load_tokenizer

    words = [r["tokens"] for r in read_jsonl(train)]
    tokenizer = load_tokenizer(run_dir)
    ids = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
    shape = TransformerShape.from_config(AutoConfig.from_pretrained(str(run_dir)))
    lengths = [len(x) for x in ids["input_ids"]]
    return model_flops(shape, lengths, training=True) / max(len(lengths), 1)


def add_mfu(
    fig: dict[str, Any], pairs: list[dict[str, Any]], peaks: dict[str, float], train: Path
) -> None:
    """Add the training MFU of each arm's median samples/s to `fig`, each against the peak of
    the format it trained in (ours: bf16 autocast where the CPU has it; Trainer: fp32)."""
    first = pairs[0]["ours"]
    flops = training_flops_per_sentence(Path(first["run_dir"]), train, FULL["max_length"])
    ours_fmt = "bf16" if first.get("autocast") == "bfloat16" else "fp32"
    formats = {"ours": ours_fmt, "trainer": "fp32", TABLE_ARM: ours_fmt}
    fig["training_flops_per_sentence"] = round(flops)
    fig["peak_gflops"] = peaks
    for arm, fmt in formats.items():
        speeds = [float(p[arm]["samples_per_s"]) for p in pairs if arm in p]
        if speeds:
            fig[f"mfu_{arm}"] = mfu_of(statistics.median(speeds), flops, peaks.get(fmt))
            fig[f"mfu_{arm}_format"] = fmt


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
    parser.add_argument(
        "--child", choices=["ours", "trainer", TABLE_ARM, "compress"], help=argparse_hidden()
    )
    for name in ("--train", "--test", "--out", "--hyper"):
        parser.add_argument(name, help=argparse_hidden())
    parser.add_argument("--seed", type=int, default=SEED, help=argparse_hidden())
    parser.add_argument(
        "--seeds", type=int, default=None, help=f"training seeds a side (default {FULL['seeds']})"
    )
    parser.add_argument(
        "--reuse-training",
        type=Path,
        default=None,
        help="a tasks JSON this benchmark wrote: keep its training runs and figures (their run "
        "folders must still exist) and redo only the compression step",
    )
    parser.add_argument(
        "--until",
        type=lambda v: datetime.fromisoformat(v).astimezone(UTC),
        default=None,
        help="start no further seed pair that would end the benchmark after this time "
        "(ISO 8601, e.g. 2026-12-07T14:25+00:00); at least one pair runs",
    )
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    hyper = dict(QUICK if args.quick else FULL)
    if args.rows is not None:
        hyper["rows"] = args.rows or None
    if args.seeds:
        hyper["seeds"] = args.seeds
    started, load_start = time.perf_counter(), [round(x, 2) for x in os.getloadavg()]
    reused: dict[str, Any] | None = None
    if args.reuse_training:
        reused = json.loads(args.reuse_training.read_text(encoding="utf-8"))
        hyper, sizes, pairs = reused["hyper"], reused["data"], reused["runs"]
    else:
        train, test, sizes = prepare(args.data_dir, args.work, hyper)
        peaks = measure_peaks(2)  # the threads each training process runs on
        pairs = interleaved_runs(train, test, args.work, hyper, args.until)
        hyper["seeds_run"] = len(pairs)
    summary = summarise(pairs)
    if reused is None:
        add_mfu(summary, pairs, peaks, train)
    compressed = compressed_variants(Path(pairs[0]["ours"]["run_dir"]))
    variants = compressed["variants"]
    parent_f1 = variants[PARENT_ROW]["f1"]
    unsmoothed = compressed["unsmoothed"]["variants"]
    figures = {
        "ner_test_f1": summary["ours_f1_mean"],
        "ner_f1_minus_trainer": summary["f1_gap_mean"],
        "ner_train_speedup_vs_trainer": summary["speed_ratio_median"],
        "ner_int8_f1_drop": round(parent_f1 - variants["int8-dynamic"]["f1"], 4),
        "ner_onnx_f1_drop": round(parent_f1 - variants["onnx"]["f1"], 4),
        "ner_int8_speedup_b32": variants["int8-dynamic"]["speedup_b32"],
        "ner_onnx_speedup_b32": variants["onnx"]["speedup_b32"],
        "ner_trainer_test_f1": summary["trainer_f1_mean"],
        # the ablation arm: our defaults with the word-embedding table trained
        "ner_f1_minus_trainer_table_trained": summary.get("table_f1_gap_mean"),
        "ner_train_speedup_table_trained": summary.get("table_speed_ratio_median"),
        # int8-dynamic without smoothing (the behaviour before), from its own compress report
        "ner_int8_unsmoothed_f1_drop": round(
            unsmoothed[PARENT_ROW]["f1"] - unsmoothed["int8-dynamic"]["f1"], 4
        ),
        "ner_int8_unsmoothed_speedup_b32": unsmoothed["int8-dynamic"]["speedup_b32"],
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
        "summary": summary,
        "runs": pairs,
        "compressed": compressed,
        "machine": machine(),
        "load_start": load_start,
        "load_end": [round(x, 2) for x in os.getloadavg()],
        "wall_minutes": round((time.perf_counter() - started) / 60, 1),
        "reused_training": None
        if reused is None
        else {
            "from": str(args.reuse_training),
            "date": reused["machine"]["date"],
            "load_start": reused["load_start"],
            "wall_minutes": reused["wall_minutes"],
        },
        "notes": [
            "ner_train_speedup_vs_trainer: the median over seeds of ours/Trainer training "
            "throughput, each from a full run of the budget, the two runs of a seed adjacent and "
            "their order alternating; throughput is training samples over the wall time of the "
            "whole training loop (ours includes its end-of-epoch checkpoints; Trainer's is its "
            "train_runtime). Each run is its own process with 2 torch threads.",
            "ner_test_f1 and ner_f1_minus_trainer: means over the training seeds (the data "
            "sample is the same for all).",
            "ner_int8_f1_drop and ner_onnx_f1_drop: `modelyard compress` scores the parent "
            "(fp32 PyTorch) of the first seed's run and each variant on the same test sample "
            "with the same code; the parent's F1 there can differ slightly from that run's F1, "
            "which was measured under its training precision (bf16 autocast where the CPU has it).",
            "modelyard trains with its defaults beyond the shared budget: batches grouped by "
            "length in windows of 2 (train.group_window: each window is 32 random sentences "
            "sorted by length and cut into a short and a long batch; wider windows cost entity "
            "F1, see docs/tasks.md), the word-embedding table frozen "
            "(train.freeze_word_embeddings), dropout masks drawn from integer bits "
            "(FastDropout), bf16 autocast where the CPU has fast bf16 (precision auto) and "
            "torch's fused AdamW; its token loss is the summed cross-entropy over the average "
            "labelled pieces of a batch, so every labelled piece weighs the same in short and "
            "long batches. Trainer runs its defaults as its tutorial does: fp32, random batches, "
            "every weight trained, fused AdamW (adamw_torch_fused), the mean over each batch's "
            "labelled pieces.",
            "ner_*_table_trained: an ablation arm, modelyard's defaults but with the "
            "word-embedding table trained as Trainer trains it, run after each seed's pair "
            "(so not adjacent to Trainer's run in every seed); its ratio is to that seed's "
            "Trainer run.",
            "Both score every test word: words past the maximum length count as O.",
            "int8-dynamic smooths each matrix product's inputs first (SmoothQuant, "
            "compress.quantize.smooth_alpha 0.9, calibrated on 256 training sentences); "
            "ner_int8_unsmoothed_*: the same model quantized without smoothing, in a second "
            "compress report whose speed-up is against its own timing of the parent.",
        ],
    }
    if reused is not None:
        fig["notes"].insert(
            0,
            "Training runs and their figures (F1, speed) are those of the run of "
            f"{reused['machine']['date']} (--reuse-training); only the compression step ran here.",
        )
    name = "tasks_quick" if args.quick else "tasks"
    write_results(args.results, name, fig, markdown(fig))
    print(json.dumps(figures))


def argparse_hidden() -> str:
    """Return the help text of an option the benchmark passes to its own child processes."""
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
