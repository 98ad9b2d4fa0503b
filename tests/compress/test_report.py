"""The Pareto front and the pick within an accuracy budget, on rows made by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelyard.compress.report import (
    mark_pareto,
    markdown,
    pareto_consistent,
    pick_within_budget,
    plot,
)


def row(name: str, accuracy: float, latency: float, throughput: float) -> dict[str, Any]:
    return {
        "name": name,
        "accuracy": accuracy,
        "latency_p50_ms": latency,
        "throughput_b32_per_s": throughput,
    }


def test_dominated_rows_are_off_the_front() -> None:
    rows = mark_pareto(
        [
            row("parent", 0.90, 10.0, 100.0),
            row("fast", 0.89, 3.0, 400.0),
            row("worse", 0.88, 4.0, 300.0),  # fast beats it on every axis
            row("tie", 0.90, 10.0, 100.0),  # equal to parent: neither dominates the other
        ]
    )
    assert {r["name"]: r["pareto"] for r in rows} == {
        "parent": True,
        "fast": True,
        "worse": False,
        "tie": True,
    }


def test_the_front_is_computed_on_the_plotted_axes() -> None:
    # the case of the issue: onnx is quicker at batch 1 than the parent and distill:3 and as
    # accurate, so neither is on the batch-1 front although each wins on batch-32 throughput
    rows = mark_pareto(
        [
            row("parent", 0.86, 28.0, 81.0),
            row("onnx", 0.86, 9.7, 99.0),
            row("int8", 0.86, 6.5, 142.0),
            row("distill:3", 0.84, 14.7, 149.0),
            row("bf16", 0.86, 45.0, 12.0),
        ]
    )
    on_b1 = {r["name"] for r in rows if r["pareto"]}
    on_b32 = {r["name"] for r in rows if r["pareto_b32"]}
    assert on_b1 == {"int8"}
    assert on_b32 == {"int8", "distill:3"}
    assert pareto_consistent(rows)
    for flag, speed, faster in (
        ("pareto", "latency_p50_ms", min),
        ("pareto_b32", "throughput_b32_per_s", max),
    ):
        for marked in (r for r in rows if r[flag]):
            assert not any(
                o["accuracy"] >= marked["accuracy"]
                and faster(o[speed], marked[speed]) == o[speed] != marked[speed]
                for o in rows
            )


def test_an_inconsistent_marking_is_caught() -> None:
    rows = mark_pareto([row("parent", 0.86, 28.0, 81.0), row("onnx", 0.86, 9.7, 99.0)])
    rows[0]["pareto"] = True  # what the old three-axis rule said of the parent
    assert not pareto_consistent(rows)


def test_budget_pick_is_the_fastest_within_the_drop() -> None:
    rows = [
        row("parent", 0.90, 10.0, 100.0),
        row("a", 0.895, 5.0, 200.0),
        row("b", 0.85, 2.0, 900.0),
    ]
    assert pick_within_budget(rows, 0.90, 0.01)["name"] == "a"
    assert [r["within_budget"] for r in rows] == [True, True, False]
    assert pick_within_budget(rows, 0.90, 0.06)["name"] == "b"
    assert pick_within_budget(rows[1:], 0.99, 0.01) is None


def test_markdown_and_plot(tmp_path: Path) -> None:
    rows = mark_pareto([row("parent", 0.9, 10.0, 100.0), row("int8|x", 0.89, 3.0, 400.0)])
    report = {
        "parent": "runs/a",
        "test_data": "t.csv",
        "test_rows": 2,
        "speed_texts": 2,
        "threads": 1,
        "rounds": 1,
        "price_per_cpu_hour": 0.05,
        "max_accuracy_drop": 0.01,
        "best": "int8|x",
        "variants": rows,
        "failed": {"distill:9": "too many layers"},
    }
    text = markdown(report)
    assert "**int8|x**" in text and "distill:9 failed: too many layers" in text
    assert plot(rows, tmp_path / "p.png").stat().st_size > 1000
