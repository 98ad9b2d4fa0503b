"""Helpers shared by the benchmarks: dataset folders, seeded samples, result files."""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "bench" / "work"


def base_parser(description: str) -> argparse.ArgumentParser:
    """Return an argument parser with the options every benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA, help="folder of the shared datasets"
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="where JSON and markdown go")
    parser.add_argument(
        "--work", type=Path, default=WORK, help="scratch folder for samples and runs"
    )
    return parser


def read_csv(path: Path) -> pd.DataFrame:
    """Return a text,label CSV with every cell as a string."""
    return pd.read_csv(path, keep_default_na=False, dtype=str)


def stratified_sample(frame: pd.DataFrame, n: int, seed: int, label: str = "label") -> pd.DataFrame:
    """Return n rows drawn per class in proportion to the class sizes, seeded."""
    if n >= len(frame):
        return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    from sklearn.model_selection import train_test_split

    if len(frame) - n < frame[label].nunique():
        # too few rows left out for a stratified split: drop a random handful instead
        return frame.sample(n=n, random_state=seed).reset_index(drop=True)

    sample, _ = train_test_split(frame, train_size=n, stratify=frame[label], random_state=seed)
    return sample.reset_index(drop=True)


def run_json_subprocess(args: list[str]) -> dict[str, Any]:
    """Run a Python module in a fresh process (its own peak RSS) and return the JSON it prints last."""
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# instruction-set extensions that decide what int8 and bf16 kernels can gain on a CPU
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")


def cpu_description() -> dict[str, Any]:
    """Return the CPU model name and which of ISA_FLAGS it has."""
    from modelyard.models.device import cpu_info

    model, flags = cpu_info()
    return {"cpu_model": model, "cpu_isa": [f for f in ISA_FLAGS if f in flags]}


def machine() -> dict[str, Any]:
    """Return a short description of the machine the figures were measured on."""
    import torch

    from modelyard.models.device import cpu_supports_fast_bf16

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": torch.get_num_threads(),
        **cpu_description(),
        "cpu_fast_bf16": cpu_supports_fast_bf16(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_results(results: Path, name: str, figures: dict[str, Any], markdown: str) -> None:
    """Write `<name>.json` and `<name>.md` into the results folder."""
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    (results / f"{name}.md").write_text(markdown, encoding="utf-8")


def update_limits(results: Path, keys: dict[str, Any], section: str, line: str) -> None:
    """Read-modify-write `limits.json` (only `keys` change) and the `section` of `limits.md`
    (bench/limits.py writes the head; other benchmarks their own sections)."""
    results.mkdir(parents=True, exist_ok=True)
    path = results / "limits.json"
    figures = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    figures.update(keys)
    md = results / "limits.md"
    text = (
        md.read_text(encoding="utf-8")
        if md.is_file()
        else "# Measured against the machine's limit\n"
    )
    sections = text.rstrip("\n").split("\n## ")
    kept = [x.rstrip("\n") for x in sections[:1] + sections[1:] if not x.startswith(section)]
    write_results(results, "limits", figures, "\n\n## ".join([*kept, f"{section}\n\n{line}\n"]))


def measure_peaks(threads: int) -> dict[str, float]:
    """Return the GEMM peak (GFLOP/s) of every number format this CPU multiplies natively, at
    `threads` threads: the denominators of the MFU figures a benchmark writes beside its
    ratios (measure them in the same run as the throughput they divide)."""
    from modelyard.evaluation.utilisation import peak_table

    return peak_table(threads)


def flops_per_text(run_dir: Path, texts: list[str], max_length: int | None = None) -> float:
    """Return the mean forward FLOPs of one of `texts` through the encoder in `run_dir` (a run
    or a backbone folder): real tokens only, cut at `max_length` (default: the run's)."""
    from transformers import AutoConfig

    from modelyard.evaluation.utilisation import TransformerShape, model_flops
    from modelyard.models.build import load_tokenizer
    from modelyard.registry.records import read_recipe

    shape = TransformerShape.from_config(AutoConfig.from_pretrained(str(run_dir)))
    max_length = max_length or read_recipe(run_dir).model.max_length
    ids = load_tokenizer(Path(run_dir))(texts, truncation=True, max_length=max_length)["input_ids"]
    return model_flops(shape, [len(x) for x in ids]) / max(len(texts), 1)


def mfu_of(
    items_per_s: float | None, flops_per_item: float, peak_gflops: float | None
) -> float | None:
    """Return the share of `peak_gflops` that `items_per_s` items of `flops_per_item` use
    (None when either is unknown)."""
    if not items_per_s or not peak_gflops:
        return None
    return round(items_per_s * flops_per_item / (peak_gflops * 1e9), 4)
