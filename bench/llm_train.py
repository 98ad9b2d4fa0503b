"""Language-model benchmark: continued pre-training, masked-LM domain adaptation, instruction
fine-tuning, and training speed against trl's SFTTrainer.

    nice -n 5 python bench/llm_train.py [--data-dir ../shared/data] [--quick] [--parts clm,mlm,sft,speed]

clm: SmolLM2-135M-Instruct, full fine-tuning on tiny_shakespeare/train.txt (paragraphs packed
into blocks), perplexity on paragraphs of test.txt before and after. mlm: MiniLM-L6 masked-LM
on the unlabelled AG News train texts, then a classifier on a few hundred labels from it and
from the original backbone (same rows, seeds); accuracy gain with a paired bootstrap interval.
sft: LoRA on Dolly instruction rows, held-out loss and ROUGE-L before and after. speed: the
same LoRA fine-tuning by modelyard and by trl's SFTTrainer (same model, LoRA settings, rows,
max length, effective batch, precision), each in its own process, interleaved A B A B;
tokens/s counts only real (non-padding) tokens. Each part's figures are cached in the work
folder, so an interrupted run continues where it stopped (--fresh to start over).
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    base_parser,
    machine,
    measure_peaks,
    mfu_of,
    read_csv,
    run_json_subprocess,
    write_results,
)

SEED = 42
PARTS = ("clm", "mlm", "sft", "speed")
# sized for a quiet 2-core machine (about an hour for the four parts in turn); every part is
# cached in the work folder, so a run interrupted by a busy neighbour resumes
FULL = {
    "clm": {"steps": 30, "batch": 8, "max_length": 128, "test_docs": 60, "lr": 1e-4},
    "mlm": {
        "steps": 60,
        "batch": 32,
        "max_length": 64,
        "labels": 200,
        "test_rows": 400,
        "seeds": 3,
    },
    "sft": {
        "steps": 30,
        "batch": 4,
        "accum": 2,
        "max_length": 256,
        "train_rows": 300,
        "test_rows": 24,
        "new_tokens": 48,
        "lr": 5e-4,
    },
    "speed": {"steps": 4, "batch": 4, "accum": 2, "max_length": 256, "rows": 80, "repeats": 2},
}
QUICK = {
    "clm": {"steps": 2, "batch": 4, "max_length": 64, "test_docs": 10, "lr": 4e-4},
    "mlm": {"steps": 4, "batch": 16, "max_length": 32, "labels": 40, "test_rows": 40, "seeds": 1},
    "sft": {
        "steps": 1,
        "batch": 2,
        "accum": 1,
        "max_length": 128,
        "train_rows": 40,
        "test_rows": 4,
        "new_tokens": 8,
        "lr": 1e-3,
    },
    "speed": {"steps": 1, "batch": 2, "accum": 1, "max_length": 128, "rows": 20, "repeats": 1},
}
LORA = {"rank": 8, "alpha": 16.0, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}


def load_average() -> list[float]:
    """Return the 1, 5 and 15 minute load averages (the machine is shared)."""
    return [round(x, 2) for x in os.getloadavg()]


# ---------------------------------------------------------------- children (one process each)


def child_clm(cfg: dict[str, Any]) -> dict[str, Any]:
    """Continue pre-training SmolLM2 on Shakespeare; return test perplexity before and after."""
    import modelyard
    from modelyard.recipe import build_recipe

    recipe = {
        "task": "language-modeling",
        "run": {"name": "clm", "output_dir": cfg["out"], "seed": SEED},
        "data": {"train": cfg["train"], "test": cfg["test"], "split": {"dev": 0.0, "test": 0.0}},
        "model": {"backbone": "smollm2-135m", "max_length": cfg["max_length"]},
        "train": {
            "method": "full",
            "max_steps": cfg["steps"],
            "batch_size": cfg["batch"],
            "lr": cfg["lr"],
            "warmup_ratio": 0.1,
            "checkpoint_every": None,
        },
    }
    result = modelyard.train(build_recipe(recipe), overwrite=True, progress=False)
    before, after, t = result.metrics["before"], result.metrics["after"], result.training
    return {
        "clm_ppl_before": before["perplexity"],
        "clm_ppl_after": after["perplexity"],
        "clm_ppl_reduction": 1 - after["perplexity"] / before["perplexity"],
        "test_tokens": after["tokens"],
        "steps": t["steps"],
        "train_tokens": t["train_tokens"],
        "tokens_per_s": t["tokens_per_s"],
        "precision": t["precision"],
        "peak_rss_mb": t["peak_rss_mb"],
        "documents_split": result.data_report.get("train_documents_split", 0),
    }


def _classifier(
    name: str, backbone: str, train: str, test: str, out: str, seed: int
) -> dict[str, Any]:
    return {
        "run": {"name": name, "output_dir": out, "seed": seed},
        "data": {"train": train, "test": test, "split": {"dev": 0.0, "test": 0.0}},
        "model": {"backbone": backbone, "max_length": 64, "pooling": "mean"},
        "train": {"epochs": 5, "batch_size": 16, "lr": 1e-4, "checkpoint_every": None},
        "evaluate": {"speed": False},
    }


def child_mlm(cfg: dict[str, Any]) -> dict[str, Any]:
    """Masked-LM on unlabelled texts, then classifiers with and without it; return per-row correctness."""
    import modelyard
    from modelyard.recipe import build_recipe

    mlm = {
        "task": "language-modeling",
        "run": {"name": "mlm", "output_dir": cfg["out"], "seed": SEED},
        "data": {"path": cfg["unlabelled"], "split": {"dev": 0.0, "test": 0.05}},
        "model": {"backbone": "minilm-l6", "max_length": cfg["max_length"]},
        "train": {
            "method": "full",
            "max_steps": cfg["steps"],
            "batch_size": cfg["batch"],
            "lr": 5e-5,
            "checkpoint_every": None,
        },
    }
    adapted = modelyard.train(build_recipe(mlm), overwrite=True, progress=False)
    test = read_csv(Path(cfg["test"]))
    out: dict[str, Any] = {
        "mlm_loss_before": adapted.metrics["before"]["loss"],
        "mlm_loss_after": adapted.metrics["after"]["loss"],
        "mlm_tokens_per_s": adapted.training["tokens_per_s"],
        "correct": {},
    }
    for seed in range(cfg["seeds"]):
        for label, backbone in (("with", str(adapted.run_dir)), ("without", "minilm-l6")):
            spec = _classifier(
                f"cls-{label}-{seed}", backbone, cfg["labelled"], cfg["test"], cfg["out"], seed
            )
            run = modelyard.train(build_recipe(spec), overwrite=True, progress=False)
            preds = modelyard.predict(run.run_dir, test["text"].tolist())
            out["correct"][f"{label}-{seed}"] = [
                int(p["label"] == y) for p, y in zip(preds, test["label"], strict=True)
            ]
    return out


def child_sft(cfg: dict[str, Any]) -> dict[str, Any]:
    """LoRA instruction fine-tuning on Dolly rows; return held-out loss and ROUGE-L before and after."""
    import modelyard
    from modelyard.recipe import build_recipe

    recipe = {
        "task": "generation",
        "run": {"name": "sft", "output_dir": cfg["out"], "seed": SEED},
        "data": {"train": cfg["train"], "test": cfg["test"], "split": {"dev": 0.0, "test": 0.0}},
        "model": {"backbone": "smollm2-135m", "max_length": cfg["max_length"]},
        "train": {
            "method": "lora",
            "lora": LORA,
            "max_steps": cfg["steps"],
            "batch_size": cfg["batch"],
            "grad_accum": cfg["accum"],
            "lr": cfg["lr"],
            "warmup_ratio": 0.1,
            "checkpoint_every": None,
        },
        "generation": {
            "max_new_tokens": cfg["new_tokens"],
            "eval_samples": 3,
            "eval_max_rows": cfg["test_rows"],
        },
    }
    result = modelyard.train(build_recipe(recipe), overwrite=True, progress=False)
    before, after, t = result.metrics["before"], result.metrics["after"], result.training
    return {
        "sft_eval_loss_before": before["loss"],
        "sft_eval_loss_after": after["loss"],
        "sft_rougeL_before": before["rougeL"],
        "sft_rougeL_after": after["rougeL"],
        "sft_exact_match_before": before["exact_match"],
        "sft_exact_match_after": after["exact_match"],
        "generation_tokens_per_s": after["generation_tokens_per_s"],
        "samples": after["samples"],
        "steps": t["steps"],
        "train_tokens": t["train_tokens"],
        "tokens_per_s": t["tokens_per_s"],
        "precision": t["precision"],
        "peak_rss_mb": t["peak_rss_mb"],
        "data_report": result.data_report,
    }


def child_speed_modelyard(cfg: dict[str, Any]) -> dict[str, Any]:
    """Time modelyard's LoRA SFT on the speed rows; return real tokens/s and peak RSS."""
    import modelyard
    from modelyard.recipe import build_recipe

    recipe = {
        "task": "generation",
        "run": {"name": f"speed-{cfg['tag']}", "output_dir": cfg["out"], "seed": SEED},
        "data": {"train": cfg["train"], "split": {"dev": 0.0, "test": 0.05}},
        "model": {"backbone": "smollm2-135m", "max_length": cfg["max_length"]},
        "train": {
            "method": "lora",
            "lora": LORA,
            "max_steps": cfg["steps"],
            "batch_size": cfg["batch"],
            "grad_accum": cfg["accum"],
            "lr": 2e-4,
            "checkpoint_every": None,
        },
        "generation": {"eval_before": False, "eval_max_rows": 1, "max_new_tokens": 1},
    }
    result = modelyard.train(build_recipe(recipe), overwrite=True, progress=False)
    t = result.training
    return {
        "tokens_per_s": t["tokens_per_s"],
        "train_tokens": t["train_tokens"],
        "seconds": t["train_seconds"],
        "steps": t["steps"],
        "peak_rss_mb": t["peak_rss_mb"],
        "precision": t["precision"],
        "packing": t["packing"],
    }


def child_speed_trl(cfg: dict[str, Any]) -> dict[str, Any]:
    """Time trl's SFTTrainer on the same rows, LoRA settings and batch; return real tokens/s and peak RSS."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from modelyard.evaluation import peak_rss_mb
    from modelyard.models import resolve_backbone

    folder = str(resolve_backbone("smollm2-135m"))
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True)
    rows = [
        json.loads(line)
        for line in Path(cfg["train"]).read_text(encoding="utf-8").split("\n")
        if line.strip()
    ]
    data = Dataset.from_list(
        [
            {
                "prompt": [
                    {
                        "role": "user",
                        "content": f"{r['instruction']}\n\n{r['input']}"
                        if r["input"]
                        else r["instruction"],
                    }
                ],
                "completion": [{"role": "assistant", "content": r["output"]}],
            }
            for r in rows
        ]
    )
    counted = {"tokens": 0, "seconds": 0.0}

    class Clock(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            counted["start"] = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            counted["seconds"] += time.perf_counter() - counted["start"]

    config = SFTConfig(
        output_dir=str(Path(cfg["out"]) / f"trl-{cfg['tag']}"),
        use_cpu=True,
        max_length=cfg["max_length"],
        per_device_train_batch_size=cfg["batch"],
        gradient_accumulation_steps=cfg["accum"],
        max_steps=cfg["steps"],
        learning_rate=2e-4,
        logging_steps=1000,
        save_strategy="no",
        report_to=[],
        seed=SEED,
        dataloader_num_workers=0,
    )
    lora = LoraConfig(
        task_type="CAUSAL_LM",
        r=LORA["rank"],
        lora_alpha=LORA["alpha"],
        lora_dropout=LORA["dropout"],
        target_modules=LORA["target_modules"],
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=data,
        processing_class=tok,
        peft_config=lora,
        callbacks=[Clock()],
    )
    collate = trainer.data_collator

    def counting(features: Any) -> Any:
        batch = collate(features)
        mask = batch.get("attention_mask")
        counted["tokens"] += (
            int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
        )
        return batch

    trainer.data_collator = counting
    start = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - start
    return {
        "tokens_per_s": round(counted["tokens"] / max(counted["seconds"], 1e-9), 2),
        "train_tokens": counted["tokens"],
        "seconds": round(counted["seconds"], 2),
        "wall_seconds": round(wall, 2),
        "steps": cfg["steps"],
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "precision": "bf16" if config.bf16 else "fp32",
        "gradient_checkpointing": bool(config.gradient_checkpointing),
        "packing": bool(config.packing),
        "torch_threads": torch.get_num_threads(),
    }


CHILDREN = {
    "clm": child_clm,
    "mlm": child_mlm,
    "sft": child_sft,
    "speed-modelyard": child_speed_modelyard,
    "speed-trl": child_speed_trl,
}

# ---------------------------------------------------------------- parent: inputs, parts, report


def write_test_paragraphs(source: Path, target: Path, n: int) -> Path:
    """Write the first n blank-line-separated paragraphs of `source` to `target`."""
    paragraphs = [
        p for p in re.split(r"\n[ \t]*\n", source.read_text(encoding="utf-8")) if p.strip()
    ]
    target.write_text("\n\n".join(paragraphs[:n]) + "\n", encoding="utf-8")
    return target


def write_rows(source: Path, target: Path, n: int, seed: int) -> Path:
    """Write a seeded sample of n JSONL rows of `source` to `target`."""
    lines = [line for line in source.read_text(encoding="utf-8").split("\n") if line.strip()]
    chosen = sorted(random.Random(seed).sample(range(len(lines)), min(n, len(lines))))
    target.write_text("".join(lines[i] + "\n" for i in chosen), encoding="utf-8")
    return target


def run_child(name: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """Run one child in a fresh process and return its JSON."""
    return run_json_subprocess(
        [str(Path(__file__).resolve()), "--child", name, "--config", json.dumps(cfg)]
    )


def part_clm(args: Any, sizes: dict[str, Any], work: Path) -> dict[str, Any]:
    data = args.data_dir / "tiny_shakespeare"
    test = write_test_paragraphs(
        data / "test.txt", work / "shakespeare-test.txt", sizes["test_docs"]
    )
    return run_child(
        "clm",
        {**sizes, "train": str(data / "train.txt"), "test": str(test), "out": str(work / "runs")},
    )


def part_mlm(args: Any, sizes: dict[str, Any], work: Path) -> dict[str, Any]:
    from bootstrap import paired_gain

    frame = read_csv(args.data_dir / "ag_news" / "train.csv")
    labelled = frame.groupby("label", group_keys=False).sample(
        n=sizes["labels"] // frame["label"].nunique(), random_state=SEED
    )
    labelled.to_csv(work / "agnews-labelled.csv", index=False)
    frame[["text"]].to_csv(work / "agnews-unlabelled.csv", index=False)
    test = read_csv(args.data_dir / "ag_news" / "test.csv").sample(
        n=sizes["test_rows"], random_state=SEED
    )
    test.to_csv(work / "agnews-test.csv", index=False)
    cfg = {
        **sizes,
        "unlabelled": str(work / "agnews-unlabelled.csv"),
        "labelled": str(work / "agnews-labelled.csv"),
        "test": str(work / "agnews-test.csv"),
        "out": str(work / "runs"),
    }
    out = run_child("mlm", cfg)
    correct = out.pop("correct")
    seeds = range(sizes["seeds"])
    out.update(
        paired_gain(
            [correct[f"with-{s}"] for s in seeds], [correct[f"without-{s}"] for s in seeds], SEED
        )
    )
    out["labels"], out["test_rows"] = len(labelled), len(test)
    return out


def part_sft(args: Any, sizes: dict[str, Any], work: Path) -> dict[str, Any]:
    data = args.data_dir / "instructions"
    train = write_rows(data / "train.jsonl", work / "dolly-train.jsonl", sizes["train_rows"], SEED)
    test = write_rows(data / "test.jsonl", work / "dolly-test.jsonl", sizes["test_rows"], SEED)
    return run_child(
        "sft", {**sizes, "train": str(train), "test": str(test), "out": str(work / "runs")}
    )


def lora_flops_per_token(length: int) -> float:
    """Return the useful training FLOPs of one token of LoRA SFT on SmolLM2-135M in sequences
    of `length`: a forward pass (output head included) and the backward pass to the
    activations (about one more forward); the frozen weights get no gradients and the
    adapters' own are a rounding error. Recomputation for gradient checkpointing is not
    useful work and is not counted."""
    from transformers import AutoConfig

    from modelyard.evaluation.utilisation import TransformerShape
    from modelyard.models import resolve_backbone

    config = AutoConfig.from_pretrained(str(resolve_backbone("smollm2-135m")))
    shape = TransformerShape.from_config(config)
    forward = shape.forward_flops(length) / length + 2 * shape.hidden * int(config.vocab_size)
    return 2 * forward


def part_speed(args: Any, sizes: dict[str, Any], work: Path) -> dict[str, Any]:
    peaks = measure_peaks(2)
    rows = write_rows(
        args.data_dir / "instructions" / "train.jsonl",
        work / "dolly-speed.jsonl",
        sizes["rows"],
        SEED + 1,
    )
    cfg = {**sizes, "train": str(rows), "out": str(work / "runs")}
    runs: dict[str, list[dict[str, Any]]] = {"modelyard": [], "trl": []}
    for repeat in range(sizes["repeats"]):
        for side in ("modelyard", "trl"):  # interleaved: A B A B
            runs[side].append(
                {
                    **run_child(f"speed-{side}", {**cfg, "tag": f"{side}-{repeat}"}),
                    "load": load_average(),
                }
            )
    med = {side: _median([r["tokens_per_s"] for r in rs]) for side, rs in runs.items()}
    flops = lora_flops_per_token(sizes["max_length"])
    # the arms name their precision in their own words (modelyard "bfloat16", trl "bf16")
    formats = {"bfloat16": "bf16", "bf16": "bf16", "float32": "fp32", "fp32": "fp32"}
    mfus = {
        side: mfu_of(med[side], flops, peaks.get(formats.get(str(rs[0]["precision"]), "")))
        for side, rs in runs.items()
    }
    return {
        "peak_gflops": peaks,
        "lora_flops_per_token": round(flops),
        "modelyard_mfu": mfus["modelyard"],
        "trl_mfu": mfus["trl"],
        "runs": runs,
        "modelyard_tokens_per_s": med["modelyard"],
        "trl_tokens_per_s": med["trl"],
        "sft_tokens_per_s_ratio_vs_trl": round(med["modelyard"] / med["trl"], 3),
        "modelyard_peak_rss_mb": _median([r["peak_rss_mb"] for r in runs["modelyard"]]),
        "trl_peak_rss_mb": _median([r["peak_rss_mb"] for r in runs["trl"]]),
    }


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


PART_FNS = {"clm": part_clm, "mlm": part_mlm, "sft": part_sft, "speed": part_speed}


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few minutes: tiny step counts")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help="comma-separated: " + ",".join(PARTS)
    )
    parser.add_argument("--fresh", action="store_true", help="ignore cached part figures")
    parser.add_argument("--child", help=argparse_hidden())
    parser.add_argument("--config", help=argparse_hidden())
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](json.loads(args.config)), default=str))
        return
    sizes_all = QUICK if args.quick else FULL
    name = "llm_train-quick" if args.quick else "llm_train"
    work = args.work / name
    work.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {
        "machine": machine(),
        "load_start": load_average(),
        "quick": args.quick,
        "sizes": sizes_all,
        "parts": {},
    }
    for part in args.parts.split(","):
        cache = work / f"{part}.json"
        if cache.is_file() and not args.fresh:
            figures["parts"][part] = json.loads(cache.read_text(encoding="utf-8"))
            continue
        start = time.perf_counter()
        result = PART_FNS[part](args, sizes_all[part], work)
        result["seconds"] = round(time.perf_counter() - start, 1)
        result["load_after"] = load_average()
        cache.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
        figures["parts"][part] = result
        print(f"{part}: done in {result['seconds']} s", flush=True)
    figures["load_end"] = load_average()
    from llm_train_report import headline, markdown

    figures["headline"] = headline(figures["parts"])
    write_results(args.results, name, figures, markdown(figures))


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
