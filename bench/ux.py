"""What a new user meets: how fast help answers, whether the compression report tells the
truth, and how many installs README's tour needs after its first command.

    python bench/ux.py [--data-dir ../shared/data] [--quick]

- `help_seconds`: median wall time of `modelyard --help` and three subcommand helps, each in a
  fresh subprocess (`--repeats` times each, after one warm-up of the file cache).
- `pareto_consistent`: trains a small SST-2 run on the bundled backbone, compresses it (onnx,
  int8-dynamic) and reads `report.json`: 1 when every variant the report marks Pareto-optimal
  is undominated on the axes `accuracy_vs_latency.png` plots (accuracy up, batch-1 p50
  latency down).
- `variant_memory_distinct`: 1 when the int8 variant's reported memory is below the fp32
  parent's.
- `extras_needed_after_main_install`: README's stage table names the extra each command
  needs; the count of those that README's first install command does not bring (its extras,
  expanded through pyproject's self-references). Extras in parentheses are optional
  alternatives (e.g. the Ray backend) and are listed, not counted.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, base_parser, machine, read_csv, stratified_sample, write_results

HELPS = (("--help",), ("train", "--help"), ("compress", "--help"), ("serve", "--help"))
INT8 = "int8-dynamic"


def help_seconds(repeats: int) -> dict[str, Any]:
    """Return the median wall time of each help over `repeats` fresh subprocesses, and of all."""
    per: dict[str, list[float]] = {}
    for args in HELPS:
        command = [sys.executable, "-m", "modelyard", *args]
        subprocess.run(command, capture_output=True, check=True)  # warm the file cache
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(command, capture_output=True, check=True)
            per.setdefault(" ".join(args), []).append(time.perf_counter() - start)
    every = [t for times in per.values() for t in times]
    return {
        "help_seconds": round(statistics.median(every), 3),
        "help_seconds_per_command": {k: round(statistics.median(v), 3) for k, v in per.items()},
    }


def _expand(extras: set[str], table: dict[str, list[str]]) -> set[str]:
    """Return `extras` with every `modelyard[...]` self-reference of pyproject followed."""
    done: set[str] = set()
    todo = list(extras)
    while todo:
        extra = todo.pop()
        if extra in done:
            continue
        done.add(extra)
        for requirement in table.get(extra, []):
            match = re.fullmatch(r"modelyard\[([a-z0-9,_-]+)\]", requirement.strip())
            if match:
                todo += match.group(1).split(",")
    return done


def readme_extras(readme: str, pyproject: dict[str, Any]) -> dict[str, Any]:
    """Return the extras README's main command installs, those its stage table needs, and
    the count needed beyond the main install."""
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    main = next(b for b in blocks if "modelyard quickstart" in b)
    installed_raw = set()
    for spec in re.findall(r"pip install -e ['\"]?\.\[([a-z0-9,_-]+)\]", main):
        installed_raw |= set(spec.split(","))
    table = pyproject["project"]["optional-dependencies"]
    installed = _expand(installed_raw, table)
    needed: dict[str, list[str]] = {}
    optional: dict[str, list[str]] = {}
    header: list[str] | None = None
    for line in readme.splitlines():
        if not line.startswith("|"):
            header = None if not line.strip() else header
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if "extra" in cells and "command" in cells:
            header = cells
            continue
        if header is None or set(line) <= set("|-: "):
            continue
        row = dict(zip(header, cells, strict=False))
        extra_cell = row.get("extra", "")
        stage = row.get("stage", "")
        # `x` needs x; (`y`) is an optional alternative; "—" needs nothing
        inside = " ".join(re.findall(r"\(([^)]*)\)", extra_cell))
        outside = re.sub(r"\([^)]*\)", "", extra_cell)
        for name in re.findall(r"`([a-z0-9_-]+)`", outside):
            needed.setdefault(name, []).append(stage)
        for name in re.findall(r"`([a-z0-9_-]+)`", inside):
            optional.setdefault(name, []).append(stage)
    missing = sorted(set(needed) - installed)
    return {
        "main_install_extras": sorted(installed_raw),
        "main_install_expanded": sorted(installed),
        "readme_extras_needed": {k: sorted(set(v)) for k, v in sorted(needed.items())},
        "readme_extras_optional": {k: sorted(set(v)) for k, v in sorted(optional.items())},
        "extras_missing": missing,
        "extras_needed_after_main_install": len(missing),
    }


def _dominated(row: dict[str, Any], rows: list[dict[str, Any]]) -> bool:
    """Return True when another row is at least as accurate and as quick (batch-1 p50), and
    better on one: the axes of accuracy_vs_latency.png."""
    for other in rows:
        if other is row:
            continue
        as_good = (
            other["accuracy"] >= row["accuracy"]
            and other["latency_p50_ms"] <= row["latency_p50_ms"]
        )
        better = (
            other["accuracy"] > row["accuracy"] or other["latency_p50_ms"] < row["latency_p50_ms"]
        )
        if as_good and better:
            return True
    return False


def compression_truth(args: Any) -> dict[str, Any]:
    """Train a small SST-2 run, compress it, and check the report's Pareto marks and memory."""
    import modelyard
    from modelyard.api import compress
    from modelyard.recipe import build_recipe

    rows = 300 if args.quick else 800
    work = args.work / "ux"
    work.mkdir(parents=True, exist_ok=True)
    data = work / "sst2.csv"
    stratified_sample(read_csv(args.data_dir / "sst2" / "train.csv"), rows, 0).to_csv(
        data, index=False
    )
    recipe = build_recipe(
        {
            "run": {"name": "ux-sst2", "output_dir": str(work / "runs"), "seed": 0},
            "data": {"path": str(data), "split": {"dev": 0.1, "test": 0.25}},
            "model": {"backbone": "minilm-l6", "max_length": 64},
            "train": {"epochs": 1, "batch_size": 16, "lr": 8e-5, "checkpoint_every": None},
            "evaluate": {"speed": False},
        }
    )
    run = modelyard.train(recipe, overwrite=True, progress=False).run_dir
    quick = ["compress.rounds=1", "compress.latency_runs=10", "compress.speed_samples=64"]
    result = compress(
        run, methods=["onnx", INT8], overrides=quick, overwrite=True, output=work / "compressed"
    )
    variants = result.report["variants"]
    marked = [r["name"] for r in variants if r.get("pareto")]
    wrongly = [r["name"] for r in variants if r.get("pareto") and _dominated(r, variants)]
    parent = next(r for r in variants if r is variants[0])
    int8 = next(r for r in variants if r["name"].startswith(INT8))
    memory = {r["name"]: r.get("memory_mb") for r in variants}
    distinct = (
        int8.get("memory_mb") is not None
        and parent.get("memory_mb") is not None
        and int8["memory_mb"] < parent["memory_mb"]
    )
    return {
        "pareto_consistent": int(not wrongly),
        "pareto_marked": marked,
        "pareto_marked_but_dominated": wrongly,
        "variant_memory_distinct": int(distinct),
        "variant_memory_mb": memory,
        "variants": [
            {k: r.get(k) for k in ("name", "accuracy", "latency_p50_ms", "size_mb", "pareto")}
            for r in variants
        ],
        "train_rows": rows,
    }


def markdown(figures: dict[str, Any]) -> str:
    """Return the results as a short markdown page."""
    per = figures["help_seconds_per_command"]
    lines = [
        "# What a new user meets",
        "",
        f"Machine: {figures['machine'].get('cpu_model', '')}; {'quick' if figures['quick'] else 'full'} mode.",
        "",
        "| figure | value | goal |",
        "|---|---|---|",
        f"| help_seconds (median of {len(per)} helps) | {figures['help_seconds']} | <= 1.0 |",
        f"| pareto_consistent | {figures['pareto_consistent']} | 1 |",
        f"| variant_memory_distinct | {figures['variant_memory_distinct']} | 1 |",
        f"| extras_needed_after_main_install | {figures['extras_needed_after_main_install']} | 0 |",
        "",
        "## Help, per command (median seconds)",
        "",
        *[f"- `modelyard {k}`: {v}" for k, v in per.items()],
        "",
        "## Compression report",
        "",
        f"Pareto-marked: {', '.join(figures['pareto_marked']) or 'none'}; marked but dominated "
        f"on accuracy vs p50 latency: {', '.join(figures['pareto_marked_but_dominated']) or 'none'}.",
        "Memory per variant (MiB): "
        + ", ".join(f"{k} {v}" for k, v in figures["variant_memory_mb"].items())
        + ".",
        "",
        "## Extras",
        "",
        f"README's first command installs `{','.join(figures['main_install_extras'])}`; "
        f"the stage table still needs: {', '.join(figures['extras_missing']) or 'nothing'}"
        + "; optional alternatives: "
        + ", ".join(f"`{k}` ({', '.join(v)})" for k, v in figures["readme_extras_optional"].items())
        + ".",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rows and repetitions")
    parser.add_argument("--repeats", type=int, default=None, help="runs of each help")
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 5)
    figures: dict[str, Any] = {"quick": args.quick, "machine": machine()}
    figures.update(help_seconds(repeats))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    with open(ROOT / "pyproject.toml", "rb") as handle:
        figures.update(readme_extras(readme, tomllib.load(handle)))
    figures.update(compression_truth(args))
    name = "ux-quick" if args.quick else "ux"
    write_results(args.results, name, figures, markdown(figures))
    print(markdown(figures))


if __name__ == "__main__":
    main()
