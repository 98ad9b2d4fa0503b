"""`compress` end to end on the tiny run: artifacts, report, Pareto front, budget, CLI, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from modelyard.cli import app
from modelyard.compress import compress, compress_config
from modelyard.errors import ArtifactError, RecipeError, UnknownPluginError
from modelyard.registry.manifest import parent_of, verify_manifest
from tests.compress.conftest import FAST


@pytest.fixture(scope="module")
def result(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("compressed") / "out"
    return compress(
        trained_run,
        methods=["onnx", "int8-dynamic", "torch-int8", "distill:1"],
        output=out,
        max_accuracy_drop=0.05,
        price_per_cpu_hour=0.1,
        overrides=FAST,
    )


def test_every_variant_is_an_artifact_naming_its_parent(result: Any, trained_run: Path) -> None:
    assert set(result.variants) == {"onnx", "int8-dynamic", "torch-int8", "distill:1"}
    for path in result.variants.values():
        manifest = verify_manifest(path)
        assert not Path(manifest["parent"]).is_absolute()  # no machine path in the artifact
        assert parent_of(path, manifest) == trained_run.resolve()
    assert not (result.output_dir / ".work").exists()


def test_report_has_every_figure(result: Any) -> None:
    rows = result.report["variants"]
    assert rows[0]["name"] == "parent (fp32 PyTorch)" and len(rows) == 5
    for row in rows:
        for key in (
            "accuracy",
            "macro_f1",
            "size_mb",
            "latency_p50_ms",
            "throughput_b32_per_s",
            "memory_mb",
            "cost_per_million",
            "pareto",
            "speedup_b32",
            "size_ratio",
        ):
            assert key in row, key
        assert row["throughput_b32_per_s"] > 0 and row["cost_per_million"] > 0
    assert rows[0]["speedup_b32"] == 1.0 and rows[0]["accuracy_drop"] == 0
    assert any(r["pareto"] for r in rows)
    on_disk = json.loads((result.output_dir / "report.json").read_text())
    assert on_disk["variants"] == rows
    markdown = (result.output_dir / "report.md").read_text()
    assert "| int8-dynamic |" in markdown and "Pareto" in markdown
    assert (result.output_dir / "accuracy_vs_latency.png").read_bytes()[:4] == b"\x89PNG"


def test_cost_follows_the_price_and_the_throughput(result: Any) -> None:
    row = result.report["variants"][1]
    threads = result.report["threads"]
    expected = 1e6 / row["throughput_b32_per_s"] / 3600 * threads * 0.1
    assert row["cost_per_million"] == pytest.approx(expected, rel=1e-3)


def test_budget_picks_the_fastest_variant_within_it(result: Any) -> None:
    rows = result.report["variants"]
    parent = rows[0]["accuracy"]
    fitting = [r for r in rows if r["accuracy"] >= parent - 0.05]
    fastest = max(fitting, key=lambda r: r["throughput_b32_per_s"])
    assert result.report["best"] == fastest["name"]
    assert result.best == Path(fastest["path"])


def test_existing_output_is_not_clobbered(result: Any, trained_run: Path) -> None:
    with pytest.raises(ArtifactError, match="--overwrite"):
        compress(trained_run, methods=["onnx"], output=result.output_dir, overrides=FAST)


def test_a_variant_cannot_be_the_parent(result: Any) -> None:
    with pytest.raises(ArtifactError, match="starts from a PyTorch run"):
        compress(result.variants["onnx"], methods=["onnx"])


def test_unknown_method_lists_the_known_ones(trained_run: Path, tmp_path: Path) -> None:
    with pytest.raises(
        UnknownPluginError, match=r"unknown compression method 'int3'; available: .*int8-dynamic"
    ):
        compress(trained_run, methods=["int3"], output=tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_bad_options_are_reported_together(trained_run: Path) -> None:
    with pytest.raises(RecipeError) as info:
        compress_config(
            {}, ["compress.rounds=0", "compress.price_per_cpu_hour=-1", "compress.colour=red"]
        )
    text = str(info.value)
    assert "compress.rounds" in text and "compress.price_per_cpu_hour" in text
    assert "compress.colour: unknown key; allowed keys here:" in text
    with pytest.raises(RecipeError, match="only compress"):
        compress_config({}, ["train.lr=1"])


def test_cli_compresses_and_prints_json(trained_run: Path, tmp_path: Path) -> None:
    args = [
        "compress",
        str(trained_run),
        "--methods",
        "onnx",
        "--output",
        str(tmp_path / "c"),
        "--json",
        *FAST,
    ]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    report = json.loads(run.output)
    assert [r["name"] for r in report["variants"]][1:] == ["onnx"]


@pytest.mark.slow  # a process of its own
def test_cli_errors_exit_2_without_traceback(trained_run: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    cmd = [sys.executable, "-c", "from modelyard.cli import main; main()"]
    proc = subprocess.run(
        [
            *cmd,
            "compress",
            str(trained_run),
            "--methods",
            "prune-heads:2",
            "--output",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "between 0 and 1" in proc.stderr


def test_cli_lists_the_methods_and_needs_a_run() -> None:
    listed = CliRunner().invoke(app, ["compress", "--list"])
    assert listed.exit_code == 0
    for spec in ("int8-dynamic", "prune-heads:0.3", "distill:3", "torch-int8"):
        assert spec in listed.output
    missing = CliRunner().invoke(app, ["compress"])
    assert missing.exit_code != 0 and "RUN" in str(missing.exception)


def test_an_interrupted_compress_leaves_nothing_that_blocks_a_plain_rerun(tmp_path: Path) -> None:
    from modelyard.compress.sweep import output_dir

    run = tmp_path / "run"
    out = tmp_path / "run-compressed"
    (out / ".work" / "int8").mkdir(parents=True)
    (out / ".int8.tmp123").mkdir()
    assert output_dir(run, None, overwrite=False) == out and list(out.iterdir()) == []
    (out / "int8").mkdir()
    with pytest.raises(ArtifactError, match="already holds files"):
        output_dir(run, None, overwrite=False)
