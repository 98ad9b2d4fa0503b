"""How close modelyard's training and inference come to this machine's arithmetic peak
(issue 29, parts 1 to 3): model FLOP utilisation (MFU) per number format.

    python bench/limits.py [--data-dir ../shared/data] [--rows 2000] [--sentences 512]

1. The GEMM peak of every format the CPU multiplies natively (fp32; bf16 with AVX-512-BF16
   or AMX; int8 with VNNI or AMX), two threads, best of five products.
2. Training: one epoch of the default recipe on an SST-2 sample (precision auto: bf16 where
   the CPU has it); the loop's real (unpadded) tokens per second times the FLOPs per token of
   the sample's length mix, forward + backward, over the peak of the format it trained in;
   then 10 profiled steps of the trained model on the same batches, their time split by kind
   of work (matrix products, dtype casts, dropout masks, fills, optimizer, the rest) and the
   matrix products' own utilisation.
3. Inference at batch 32 over SST-2 test sentences: the PyTorch run (fp32), its ONNX fp32
   export, ONNX Runtime int8 (dynamic) and PyTorch bf16, interleaved round by round (median
   of three), each against the peak of its format; twice: the whole list in one call (the
   backend sorts it by length and runs 32 rows at a time: the headline keys) and as
   requests of 32 texts in the file's order (keys ending `_requests`). Each format's headline
   is its fastest variant. The int8 / fp32 throughput ratio is the compression goal (>= 2.5x
   on a CPU with VNNI or AMX).

FLOPs count real tokens only (padding is no useful work). Writes bench/results/limits.json
(keys merged: other benchmarks add theirs) and limits.md.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import base_parser, machine, read_csv
from finetune import SEED, prepare

THREADS = 2
BATCH = 32
ROUNDS = 3
VARIANTS = {
    "torch": "fp32",
    "onnx": "fp32",
    "int8-dynamic": "int8",
    "bf16": "bf16",
}


def best(infer: dict[str, Any], fmt: str, suffix: str = "") -> dict[str, Any]:
    """Return the figures of the fastest variant in number format `fmt` (calls by `suffix`),
    with its name under `variant`."""
    name = max(
        (n for n, f in VARIANTS.items() if f == fmt and n + suffix in infer),
        key=lambda n: infer[n + suffix]["texts_per_s"],
    )
    return {"variant": name, **infer[name + suffix]}


def lengths(tokenizer: Any, texts: list[str], max_length: int) -> list[int]:
    """Return the real token count of each text as the model sees it (special tokens in)."""
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    return [len(ids) for ids in enc["input_ids"]]


def train_probe(data_dir: Path, work: Path, rows: int, peaks: dict[str, float]) -> dict[str, Any]:
    """Train one epoch on `rows` SST-2 rows; return tokens/s, FLOP/s and MFU of the loop."""
    import torch

    import modelyard
    from modelyard.evaluation.utilisation import TransformerShape, mfu, model_flops
    from modelyard.models.device import select_dtype
    from modelyard.recipe import build_recipe
    from modelyard.registry import load_run

    train, test = prepare(data_dir, work / f"rows-{rows}", "sst2", rows)
    recipe = build_recipe(
        {
            "run": {"name": "limits-train", "output_dir": str(work / "runs"), "seed": SEED},
            "data": {"train": str(train), "test": str(test)},
            "train": {"epochs": 1, "num_threads": THREADS},
            "evaluate": {"speed": False},
        }
    )
    result = modelyard.train(recipe, overwrite=True, progress=False)
    t = result.training
    run = load_run(result.run_dir)
    shape = TransformerShape.from_config(run.model.config)
    lens = lengths(run.tokenizer, list(read_csv(train)["text"]), recipe.model.max_length)
    flops_per_token = model_flops(shape, lens, training=True) / sum(lens)
    dtype = select_dtype(recipe.train.precision, torch.device("cpu"))
    fmt = "bf16" if dtype == torch.bfloat16 else "fp32"
    achieved = t["tokens_per_s"] * flops_per_token
    return {
        "format": fmt,
        "tokens_per_s": t["tokens_per_s"],
        "samples_per_s": t["samples_per_s"],
        "train_seconds": t["train_seconds"],
        "mean_tokens_per_text": round(sum(lens) / len(lens), 1),
        "achieved_gflops": round(achieved / 1e9, 1),
        "mfu": round(mfu(achieved, 1.0, peaks[fmt]), 4),
        "run_dir": str(result.run_dir),
        "train_file": str(train),
        "max_length": recipe.model.max_length,
    }


# profiler operator names by kind of work, for the training step breakdown
_KINDS = {
    "matrix products": ("aten::mm", "aten::addmm", "aten::bmm", "aten::_scaled_dot_product"),
    "dtype casts": ("aten::copy_", "aten::to", "aten::_to_copy"),
    "dropout masks": ("aten::bernoulli_", "aten::native_dropout"),
    "fills (zeroed gradients)": ("aten::fill_", "aten::zero_"),
    "optimizer": ("aten::_fused_adamw_", "aten::_foreach"),
}


def step_breakdown(
    run_dir: Path, train: Path, recipe_max_length: int, peaks: dict[str, float]
) -> dict[str, Any]:
    """Profile 10 training steps of the trained run on real length-grouped batches of 32
    (the default recipe's precision and fused AdamW); return ms per step by kind of work and
    the FLOP utilisation of the matrix products alone."""
    import numpy as np
    import torch
    from torch.profiler import ProfilerActivity, profile

    from modelyard.evaluation.utilisation import TransformerShape, model_flops
    from modelyard.models.device import autocast, select_dtype
    from modelyard.models.encoding import collate, encode_texts, epoch_batches
    from modelyard.recipe import TrainConfig
    from modelyard.registry import load_run
    from modelyard.trainer.loop import make_optimizer

    torch.set_num_threads(THREADS)
    run = load_run(run_dir)
    model = run.model.train()
    cfg = TrainConfig()
    dtype = select_dtype(cfg.precision, torch.device("cpu"))
    optimizer = make_optimizer(model, cfg)
    texts = list(read_csv(train)["text"])
    ids, types, _ = encode_texts(run.tokenizer, texts, None, recipe_max_length)
    lens = np.array([len(x) for x in ids])
    batches = epoch_batches(lens, BATCH, SEED, 0, group_by_length=True)[:15]
    labels = torch.zeros(BATCH, dtype=torch.long)

    def step(index: Any) -> None:
        batch = collate(ids, types, index, run.tokenizer.pad_token_id or 0)
        with autocast(torch.device("cpu"), dtype):
            loss = model(**batch, labels=labels[: len(index)]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for index in batches[:5]:  # warm-up
        step(index)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for index in batches[5:]:
            step(index)
        wall = time.perf_counter() - start
    steps = len(batches) - 5
    by_kind = dict.fromkeys(_KINDS, 0.0)
    for event in prof.key_averages():
        for kind, prefixes in _KINDS.items():
            if event.key.startswith(prefixes):
                by_kind[kind] += event.self_cpu_time_total / 1e3 / steps
                break
    ms = {k: round(v, 1) for k, v in by_kind.items()}
    ms["everything else"] = round(wall * 1e3 / steps - sum(by_kind.values()), 1)
    real = [int(lens[i]) for index in batches[5:] for i in index]
    flops = model_flops(TransformerShape.from_config(model.config), real, training=True)
    fmt = "bf16" if dtype == torch.bfloat16 else "fp32"
    gemm_s = by_kind["matrix products"] / 1e3 * steps
    return {
        "ms_per_step": round(wall * 1e3 / steps, 1),
        "ms_by_kind": ms,
        "real_tokens_per_step": round(sum(real) / steps, 1),
        "matrix_product_mfu": round(flops / gemm_s / (peaks[fmt] * 1e9), 4),
        "step_mfu": round(flops / wall / (peaks[fmt] * 1e9), 4),
        "format": fmt,
    }


def infer_probe(
    run_dir: Path, texts: list[str], peaks: dict[str, float], work: Path
) -> dict[str, Any]:
    """Return per variant: texts/s at batch 32, achieved GFLOP/s and MFU against its format."""
    import torch

    from modelyard.api import compress
    from modelyard.backends import load_backend
    from modelyard.evaluation.utilisation import TransformerShape, model_flops
    from modelyard.registry import load_run

    torch.set_num_threads(THREADS)
    run = load_run(run_dir)
    shape = TransformerShape.from_config(run.model.config)
    lens = lengths(run.tokenizer, texts, run.max_length)
    flops = model_flops(shape, lens)
    made = compress(
        run_dir,
        methods=[m for m in VARIANTS if m != "torch"],
        output=work / "limits-variants",
        threads=THREADS,
        overwrite=True,
    )
    paths = {"torch": run_dir, **{m: Path(p) for m, p in made.variants.items()}}
    backends = {name: load_backend(paths[name]) for name in VARIANTS if name in paths}
    # requests: 32 texts a call in the file's order, as a client sends them; file: the whole
    # list in one call, which every backend sorts by length and runs 32 rows at a time
    # (`modelyard predict` on a file, or a serving batch drawn from a long queue)
    calls = {
        "requests": [texts[i : i + BATCH] for i in range(0, len(texts), BATCH)],
        "file": [texts],
    }
    seconds: dict[tuple[str, str], list[float]] = {
        (mode, name): [] for mode in calls for name in backends
    }
    for backend in backends.values():  # warm-up
        backend.predict_proba(calls["requests"][0])
    for _ in range(ROUNDS):
        for mode, name in seconds:
            start = time.perf_counter()
            for batch in calls[mode]:
                backends[name].predict_proba(batch)
            seconds[(mode, name)].append(time.perf_counter() - start)
    out: dict[str, Any] = {}
    for (mode, name), runs in seconds.items():
        median = statistics.median(runs)
        fmt = VARIANTS[name]
        key = name if mode == "file" else f"{name}_requests"
        out[key] = {
            "format": fmt,
            "mode": mode,
            "texts_per_s": round(len(texts) / median, 1),
            "achieved_gflops": round(flops / median / 1e9, 1),
            "mfu": round(flops / median / (peaks[fmt] * 1e9), 4) if fmt in peaks else None,
            "seconds": [round(s, 3) for s in runs],
        }
    out["mean_tokens_per_text"] = round(sum(lens) / len(lens), 1)
    return out


def breakdown_lines(b: dict[str, Any] | None) -> list[str]:
    """Return the markdown lines of the training step breakdown (none without one)."""
    if not b:
        return []
    return [
        f"Where a training step's time goes (10 profiled steps of 32 length-grouped rows, "
        f"{b['real_tokens_per_step']} real tokens a step, {b['format']}, fused AdamW): "
        f"{b['ms_per_step']} ms a step.",
        "",
        "| kind of work | ms per step |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in b["ms_by_kind"].items()),
        "",
        f"The matrix products alone run at {b['matrix_product_mfu']} of the {b['format']} "
        f"peak; the whole step at {b['step_mfu']}."
        + (
            " Even with every other kind of work removed, the step would stay below the 0.5 "
            "goal on these short batches."
            if b["matrix_product_mfu"] < 0.5
            else ""
        ),
        "",
    ]


def markdown(fig: dict[str, Any]) -> str:
    """Return the results as markdown."""
    m = fig["machine"]
    lines = [
        "# Limits: utilisation of the machine's arithmetic peak",
        "",
        f"CPU {m.get('cpu_model')}, ISA {', '.join(m.get('cpu_isa', []))}; {THREADS} threads; "
        f"load before {fig['load_before']}, after {fig['load_after']}.",
        "",
        "| format | GEMM peak GFLOP/s |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in fig["peak_gflops"].items()),
        "",
        f"Training (one epoch, {fig['train']['mean_tokens_per_text']} real tokens per text, "
        f"{fig['train']['format']}): {fig['train']['tokens_per_s']} tokens/s, "
        f"{fig['train']['achieved_gflops']} GFLOP/s, **train_mfu {fig['train_mfu']}** "
        "(goal 0.5).",
        "",
        *breakdown_lines(fig["train"].get("breakdown")),
        f"Inference at batch {BATCH} ({fig['infer']['mean_tokens_per_text']} real tokens per "
        "text):",
        "",
        "| variant | format | calls | texts/s | GFLOP/s | MFU |",
        "|---|---|---|---|---|---|",
    ]
    for suffix, calls in (
        ("", "the whole list (sorted, 32 rows a run)"),
        ("_requests", "32 texts each, file order"),
    ):
        for name in VARIANTS:
            r = fig["infer"].get(name + suffix)
            if r:
                lines.append(
                    f"| {name} | {r['format']} | {calls} | {r['texts_per_s']} | "
                    f"{r['achieved_gflops']} | {r['mfu']} |"
                )
    lines += [
        "",
        f"Each format's figures are its fastest variant's ({fig['infer_best']['fp32']} for "
        f"fp32, {fig['infer_best']['int8']} for int8 on the whole list). "
        f"int8 / fp32 throughput: {fig['int8_vs_fp32_throughput']} on the whole list, "
        f"{fig['int8_vs_fp32_throughput_requests']} in requests of 32 (goal >= 2.5 with VNNI "
        f"or AMX); infer_mfu_fp32 {fig['infer_mfu_fp32']}, infer_mfu_int8 "
        f"{fig['infer_mfu_int8']} (goal 0.6; requests of 32: "
        f"{fig['infer_mfu_fp32_requests']} and {fig['infer_mfu_int8_requests']}). A request of 32 "
        "texts in random order is cut into runs of similar length (`length_groups`), which "
        "pads less but runs smaller products than the sorted list.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Run the probes and merge the figures into bench/results/limits.json."""
    import os

    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000, help="SST-2 training rows")
    parser.add_argument("--sentences", type=int, default=512, help="test sentences inferred")
    args = parser.parse_args()
    from modelyard.evaluation.utilisation import peak_table

    work = args.work / "limits"
    load_before = [round(x, 2) for x in os.getloadavg()]
    peaks = peak_table(THREADS)
    train = train_probe(args.data_dir, work, args.rows, peaks)
    train["breakdown"] = step_breakdown(
        Path(train["run_dir"]), Path(train["train_file"]), train["max_length"], peaks
    )
    texts = list(read_csv(args.data_dir / "sst2" / "test.csv")["text"])[: args.sentences]
    infer = infer_probe(Path(train["run_dir"]), texts, peaks, work)
    fp32, int8 = best(infer, "fp32"), best(infer, "int8")
    fp32_req, int8_req = best(infer, "fp32", "_requests"), best(infer, "int8", "_requests")
    fig: dict[str, Any] = {
        "machine": machine(),
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "peak_gflops": peaks,
        "train": train,
        "train_mfu": train["mfu"],
        "infer": infer,
        # the fastest variant of each format stands for it: the one a user would deploy
        "infer_best": {"fp32": fp32["variant"], "int8": int8["variant"]},
        "infer_mfu_fp32": fp32["mfu"],
        "infer_mfu_int8": int8["mfu"],
        "int8_vs_fp32_throughput": round(int8["texts_per_s"] / fp32["texts_per_s"], 2),
        "infer_mfu_fp32_requests": fp32_req["mfu"],
        "infer_mfu_int8_requests": int8_req["mfu"],
        "int8_vs_fp32_throughput_requests": round(
            int8_req["texts_per_s"] / fp32_req["texts_per_s"], 2
        ),
    }
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / "limits.json"
    merged = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    merged.update(fig)
    path.write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")
    md = args.results / "limits.md"
    rest = md.read_text(encoding="utf-8").split("\n## ", 1) if md.is_file() else []
    tail = "\n## " + rest[1] if len(rest) == 2 else ""
    md.write_text(markdown(fig) + tail, encoding="utf-8")
    print(markdown(fig))


if __name__ == "__main__":
    main()
