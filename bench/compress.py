"""Compression benchmark: every variant against fp32 PyTorch eager on the SST-2 model.

    python bench/compress.py [--data-dir ../shared/data] [--quick]

Starts from the run of the fine-tuning benchmark (`bench/work/runs/sst2-auto`), makes the
variants with `modelyard.compress.compress`, then measures all of them side by side in
this process on the same 872 SST-2 test sentences: accuracy, size on disk, batch-1 p50
latency and batch-32 throughput, in interleaved rounds (medians), with PyTorch and ONNX
Runtime both set to the same thread count. In the same run it quantizes the way a user
would without modelyard: Hugging Face Optimum's ORTQuantizer if it can be imported,
otherwise `onnxruntime.quantization.quantize_dynamic` on a plain `torch.onnx.export`ed
model run with default session options, and reports ours against it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import base_parser, flops_per_text, machine, measure_peaks, mfu_of, write_results

METHODS = [
    "onnx",
    "int8-dynamic",
    "int8-static",
    "torch-int8",
    "bf16",
    "prune-heads:0.3",
    "distill:3",
]
INT8 = ("int8-dynamic", "int8-static", "torch-int8")
PARENT = "parent (fp32 PyTorch)"


def overrides(args: Any) -> list[str]:
    """Return compress.* overrides: cheap in-pipeline timing (the benchmark times everything
    itself), the distillation transfer set, and short settings for --quick."""
    out = ["compress.rounds=1", "compress.latency_runs=5", "compress.speed_samples=32"]
    if args.unlabelled_rows:
        # more of SST-2's training phrases, without their labels: the teacher labels them
        out += [
            f"compress.distill.unlabelled={args.data_dir / 'sst2' / 'train.csv'}",
            f"compress.distill.max_unlabelled={args.unlabelled_rows}",
            f"compress.distill.epochs={args.distill_epochs}",
        ]
    if args.quick:
        out += [
            "compress.distill.epochs=0.05",
            "compress.distill.max_unlabelled=100",
            "compress.prune.recovery_steps=5",
            "compress.quantize.calibration_samples=32",
        ]
    return out


def user_int8(parent: Any, folder: Path, threads: int) -> tuple[Any, str]:
    """Quantize the way a user would without modelyard; return a classifier over it and how."""
    import warnings

    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from modelyard.compress.onnx_backend import OnnxClassifier

    if importlib.util.find_spec("optimum") is not None:
        how = "optimum is importable but this benchmark does not drive it; fell back to quantize_dynamic"
    else:
        how = (
            "optimum-onnx is not installed (it pins transformers 4.57, which cannot share an "
            "environment with transformers 5): onnxruntime.quantization.quantize_dynamic on a "
            "plain torch.onnx.export, default session options"
        )
    export, target = folder / "export", folder / "int8"
    export.mkdir(parents=True, exist_ok=True)
    target.mkdir(parents=True, exist_ok=True)
    batch = parent.tokenizer(
        ["a short one", "and a longer sentence"], padding=True, return_tensors="pt"
    )
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in batch]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(  # the model as loaded (default attention), as the tutorials do
            parent.model,
            (),
            str(export / "model.onnx"),
            kwargs={n: batch[n] for n in names},
            input_names=names,
            output_names=["logits"],
            opset_version=17,
            dynamo=False,
            dynamic_axes={
                **{n: {0: "batch", 1: "sequence"} for n in names},
                "logits": {0: "batch"},
            },
        )
    quantize_dynamic(
        str(export / "model.onnx"), str(target / "model.onnx"), weight_type=QuantType.QInt8
    )
    classifier = OnnxClassifier(
        target / "model.onnx", parent.tokenizer, parent.labels, parent.max_length, threads
    )
    options = ort.SessionOptions()  # what the ONNX Runtime docs show, with the same thread count
    options.intra_op_num_threads = threads
    classifier.session = ort.InferenceSession(
        str(target / "model.onnx"), options, providers=["CPUExecutionProvider"]
    )
    return classifier, how


def parent_train(parent: Any) -> Any:
    """Return the parent run's training rows (its recipe's data)."""
    from common import read_csv

    return read_csv(Path(parent.recipe["data"]["train"]))


class _Named:
    """A classifier with the attributes `quality` and the timing need."""

    def __init__(self, classifier: Any, path: Path) -> None:
        self.classifier, self.labels, self.path = classifier, classifier.labels, path

    def predict_proba(self, texts: list[str]) -> Any:
        return self.classifier.predict_proba(texts)


def measure(
    models: dict[str, tuple[Any, Path]], split: Any, rounds: int, latency_runs: int
) -> dict[str, dict[str, Any]]:
    """Score and time every model on `split`, interleaved over `rounds`; return figures per name."""
    from modelyard.compress.measure import SpeedRounds, quality, weights_size_mb

    rows = {}
    for name, (model, path) in models.items():
        metrics = quality(model, split)
        rows[name] = {
            "accuracy": metrics["accuracy"],
            "macro_f1": metrics["macro_f1"],
            "size_mb": weights_size_mb(path),
        }
        print(
            f"{name}: accuracy {metrics['accuracy']:.4f}, {rows[name]['size_mb']} MiB",
            file=sys.stderr,
            flush=True,
        )
    timing = SpeedRounds(split.texts, latency_runs, rounds)
    speeds = timing.run({name: model for name, (model, _) in models.items()})
    for name, row in rows.items():
        row.update(speeds[name])
        row["throughput_rounds"] = [r["throughput_b32_per_s"] for r in timing.samples[name]]
    return rows


def variant_format(name: str) -> str | None:
    """Return the number format a variant multiplies in, or None where its FLOPs are not the
    ones its config describes (pruned heads)."""
    if name.startswith("prune"):
        return None
    if "int8" in name:
        return "int8"
    if name in ("bf16", "fp16"):
        return name
    return "fp32"


def add_mfu(
    rows: dict[str, dict[str, Any]],
    paths: dict[str, Path],
    texts: list[str],
    peaks: dict[str, float],
) -> None:
    """Add `mfu_b32` to every row: batch-32 texts/s times the forward FLOPs of the mean test
    sentence through that variant's own config (a student has fewer layers), over the peak
    of its number format. Pruned variants get None: their config does not count the heads
    they lost."""
    for name, row in rows.items():
        fmt = variant_format(name)
        if fmt is None:
            row["mfu_b32"] = None
            continue
        # the user's int8 folder holds a graph only: its architecture is the parent's
        own = paths[name] if (paths[name] / "config.json").is_file() else paths[PARENT]
        flops = flops_per_text(own, texts)
        row["mfu_b32"] = mfu_of(row["throughput_b32_per_s"], flops, peaks.get(fmt))
        row["format"] = fmt


def headline(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Return the issue's six figures from the measured rows."""
    base = rows[PARENT]
    fitting = [n for n in INT8 if n in rows and base["accuracy"] - rows[n]["accuracy"] <= 0.01]
    best = max(
        fitting or [n for n in INT8 if n in rows], key=lambda n: rows[n]["throughput_b32_per_s"]
    )
    student = rows.get("distill:3")
    return {
        "int8_throughput_ratio_b32": round(
            rows[best]["throughput_b32_per_s"] / base["throughput_b32_per_s"], 2
        ),
        "int8_accuracy_drop": round(base["accuracy"] - rows[best]["accuracy"], 4),
        "int8_size_ratio": round(base["size_mb"] / rows[best]["size_mb"], 2),
        "distill3_speedup": round(student["throughput_b32_per_s"] / base["throughput_b32_per_s"], 2)
        if student
        else None,
        "distill3_accuracy_kept": round(student["accuracy"] / base["accuracy"], 4)
        if student
        else None,
        "ours_vs_user_int8_throughput_ratio": round(
            rows[best]["throughput_b32_per_s"]
            / rows["user int8 (ORT quantize_dynamic)"]["throughput_b32_per_s"],
            2,
        ),
        "best_int8_variant": best,
    }


def markdown(fig: dict[str, Any]) -> str:
    """Return the figures as a markdown report."""
    lines = [
        "# Compression benchmark (SST-2, MiniLM-L6 fine-tuned by bench/finetune.py)",
        "",
        f"Machine: {fig['machine']}",
        "",
        f"Test: {fig['test_rows']} SST-2 sentences; {fig['threads']} thread(s) for PyTorch and ONNX Runtime; "
        f"medians of {fig['rounds']} interleaved rounds (batch-1 latency over {fig['latency_runs']} calls per round).",
        "",
        f"MFU: batch-32 texts/s times the forward FLOPs of the mean test sentence (real tokens, "
        f"the variant's own layers), over the GEMM peak of its number format measured in this "
        f"run ({fig.get('peak_gflops')} GFLOP/s); none for pruned heads (not counted).",
        "",
        "| variant | accuracy | size MiB | p50 ms (b1) | texts/s (b32) | x fp32 (b32) | throughput per round | MFU (b32) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = fig["variants"][PARENT]["throughput_b32_per_s"]
    for name, v in fig["variants"].items():
        lines.append(
            f"| {name} | {v['accuracy']:.4f} | {v['size_mb']} | {v['latency_p50_ms']} | {v['throughput_b32_per_s']} "
            f"| {v['throughput_b32_per_s'] / base:.2f} | {', '.join(f'{x:.0f}' for x in v['throughput_rounds'])} "
            f"| {v.get('mfu_b32')} |"
        )
    goals = fig["goals"]
    lines += ["", "## Goals", ""] + [
        f"- {k}: **{'met' if ok else 'not met'}**" for k, ok in goals.items()
    ]
    isa = fig["machine"].get("cpu_isa")
    if isa is not None and not {"avx512_vnni", "avx_vnni", "amx_int8"} & set(isa):
        lines += [
            "",
            f"This CPU ({fig['machine'].get('cpu_model')}, {', '.join(isa) or 'no'} extensions) has no "
            "int8 dot-product instructions (VNNI or AMX), so int8 matrix products run on plain AVX2 "
            "and gain far less over fp32 than on CPUs that have them; the int8 throughput goal was "
            "set for such a CPU. Re-run there to check it.",
        ]
    lines += ["", "## Headline figures", ""]
    lines += [f"- `{k}`: {fig[k]}" for k in KEYS] + [
        f"- best int8 variant: {fig['best_int8_variant']}"
    ]
    lines += [
        "",
        f"User's alternative: {fig['user_alternative']}.",
        "",
        f"Distillation data: {fig['distill_transfer_set']}.",
        "",
        "Variant details (from compression.json):",
        "",
    ]
    lines += [f"- {name}: {details}" for name, details in fig["details"].items()]
    return "\n".join(lines) + "\n"


KEYS = (
    "int8_throughput_ratio_b32",
    "int8_accuracy_drop",
    "int8_size_ratio",
    "distill3_speedup",
    "distill3_accuracy_kept",
    "ours_vs_user_int8_throughput_ratio",
)


def goals(fig: dict[str, Any]) -> dict[str, bool]:
    """Return whether each goal of the issue was met."""
    return {
        "int8 >= 2.5x fp32 throughput at b32, <= 1.0 point drop, >= 3.5x smaller": fig[
            "int8_throughput_ratio_b32"
        ]
        >= 2.5
        and fig["int8_accuracy_drop"] <= 0.01
        and fig["int8_size_ratio"] >= 3.5,
        "3-layer student >= 1.8x faster, >= 97% of the teacher's accuracy": (
            fig["distill3_speedup"] or 0
        )
        >= 1.8
        and (fig["distill3_accuracy_kept"] or 0) >= 0.97,
        "ours at least as fast as the user's int8 at equal accuracy": fig[
            "ours_vs_user_int8_throughput_ratio"
        ]
        >= 1.0,
    }


def main() -> None:
    import json

    import torch

    from modelyard.backends import load_backend
    from modelyard.compress import compress
    from modelyard.data.labelled import labelled_split
    from modelyard.registry import load_run

    parser = base_parser(__doc__ or "")
    parser.add_argument(
        "--run", type=Path, default=None, help="parent run (default: work/runs/sst2-auto)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency-runs", type=int, default=100)
    parser.add_argument(
        "--unlabelled-rows",
        type=int,
        default=20000,
        help="SST-2 training phrases the teacher labels for distillation (0: training data only)",
    )
    parser.add_argument("--distill-epochs", type=float, default=2)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small slice and short training; figures go to the work folder",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = args.run or args.work / "runs" / "sst2-auto"
    if not (run / "manifest.json").is_file():
        raise SystemExit(f"{run} is not finished yet; run bench/finetune.py first")
    out = args.work / ("compress-quick" if args.quick else "compress")
    peaks = measure_peaks(args.threads)
    result = compress(
        run,
        methods=METHODS,
        data=args.data_dir / "sst2" / "test.csv",
        output=out,
        overwrite=True,
        threads=args.threads,
        overrides=overrides(args),
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    parent = load_run(run)
    split, _ = labelled_split(args.data_dir / "sst2" / "test.csv", "text", "label", parent.labels)
    if args.quick:
        split.texts, split.labels = split.texts[:96], split.labels[:96]
    user, how = user_int8(parent, out / "user", args.threads)
    models: dict[str, tuple[Any, Path]] = {PARENT: (load_backend(run), run)}
    models.update({name: (load_backend(path), path) for name, path in result.variants.items()})
    models["user int8 (ORT quantize_dynamic)"] = (
        _Named(user, out / "user" / "int8"),
        out / "user" / "int8",
    )
    rows = measure(
        models, split, 1 if args.quick else args.rounds, 5 if args.quick else args.latency_runs
    )
    paths = {name: path for name, (_, path) in models.items()}
    add_mfu(rows, paths, split.texts, peaks)
    fig: dict[str, Any] = {
        **headline(rows),
        "peak_gflops": peaks,
        "machine": machine(),
        "threads": args.threads,
        "test_rows": len(split),
        "rounds": args.rounds,
        "latency_runs": args.latency_runs,
        "user_alternative": how,
        "distill_transfer_set": (
            f"the run's {len(parent_train(parent))} training rows + up to {args.unlabelled_rows} "
            "unlabelled SST-2 training phrases labelled by the teacher"
        ),
        "variants": rows,
        "failed": result.report["failed"],
        "details": {
            n: json.loads((p / "compression.json").read_text()) for n, p in result.variants.items()
        },
    }
    fig["goals"] = goals(fig)
    print(json.dumps({k: fig[k] for k in (*KEYS, "best_int8_variant", "goals")}, indent=2))
    # a quick run checks the whole script but its figures are not results
    write_results(out if args.quick else args.results, "compress", fig, markdown(fig))


if __name__ == "__main__":
    main()
