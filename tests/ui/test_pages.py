"""The pieces behind the pages: run summaries, filters, curves, recipe diff, chart geometry,
and labelling through the app by two people at once."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from modelyard.data.load import read_table
from modelyard.ui import charts
from modelyard.ui.details import read_history
from modelyard.ui.pages import recipe_diff
from modelyard.ui.runs import RunIndex, filter_runs
from tests.ui.conftest import ui_app
from tests.ui.test_security import csrf_of, login
from tests.ui.workspace import Workspace


@pytest.mark.slow  # the shared workspace
def test_summaries_come_from_the_run_files(workspace: Workspace) -> None:
    runs = {r.ref: r for r in RunIndex(workspace.runs).all()}
    assert set(runs) == {"tiny", "tiny-quick"}
    metrics = json.loads((workspace.run / "metrics.json").read_text(encoding="utf-8"))
    tiny = runs["tiny"]
    assert tiny.metrics["accuracy"] == metrics["test"]["accuracy"]
    assert (tiny.status, tiny.task, tiny.method, tiny.dataset) == (
        "finished", "classification", "full", "train.csv",
    )  # fmt: skip


@pytest.mark.slow  # the shared workspace
def test_filters_and_sorting(workspace: Workspace) -> None:
    runs = RunIndex(workspace.runs).all()
    by_accuracy = filter_runs(runs, {"sort": "accuracy", "order": "desc"})
    values = [r.metrics["accuracy"] for r in by_accuracy]
    assert values == sorted(values, reverse=True)
    assert [r.ref for r in filter_runs(runs, {"q": "quick"})] == ["tiny-quick"]
    assert filter_runs(runs, {"method": "lora"}) == []


def test_history_keeps_the_last_entry_of_a_repeated_step(tmp_path: Path) -> None:
    lines = [
        {"step": 1, "epoch": 0, "loss": 2.0},
        {"step": 2, "epoch": 0, "loss": 1.5},
        {"step": 2, "epoch": 0, "dev": {"accuracy": 0.5}},
        {"step": 2, "epoch": 0, "loss": 1.4},  # a resumed run repeats step 2
    ]
    text = "\n".join(json.dumps(x) for x in lines) + '\n{"step": 3, "lo'  # a line in progress
    (tmp_path / "history.jsonl").write_text(text, encoding="utf-8")
    history = read_history(tmp_path)
    assert history["loss"] == [(1, 2.0), (2, 1.4)]
    assert history["dev"] == [(2, {"accuracy": 0.5})]


def test_line_chart_aligns_series_on_one_axis() -> None:
    chart = charts.line_chart("t", "x", "y", [("a", [(1, 0.5), (3, 0.2)]), ("b", [(2, 0.4)])])
    assert chart["data"] == [[1, 2, 3], [0.5, None, 0.2], [None, 0.4, None]]
    nan = charts.line_chart("t", "x", "y", [("a", [(1, float("nan"))])])
    assert nan["data"][1] == [None]


def test_recipe_diff_lists_only_differing_keys() -> None:
    a = {"train": {"lr": 1e-3, "epochs": 2}, "run": {"name": "a"}}
    b = {"train": {"lr": 3e-3, "epochs": 2}, "run": {"name": "b"}}
    assert recipe_diff([a, b]) == [("run.name", ["a", "b"]), ("train.lr", [1e-3, 3e-3])]


def test_axis_ticks_are_round_and_inside() -> None:
    axis = charts.axis([0.61, 0.93], 0, 100)
    ticks = [label for _, label in axis.ticks()]
    assert ticks and all(float(t) * 100 % 5 == pytest.approx(0, abs=1e-6) for t in ticks)
    assert all(0 <= x <= 100 for x, _ in axis.ticks())


def test_scatter_labels_do_not_overlap() -> None:
    points = [{"name": n, "x": 1.0, "y": 0.5, "pareto": False} for n in ("a", "b", "c")]
    placed = charts.scatter(points, "x", "y", "x", "y")["points"]
    assert len({p["ly"] for p in placed}) == 3


@pytest.mark.slow  # the shared workspace
def test_two_people_deciding_at_once_both_land(workspace: Workspace) -> None:
    import pandas as pd

    issues = pd.read_csv(
        workspace.runs / "audit" / "tiny" / "label_issues.csv", dtype=str, keep_default_na=False
    )
    picks = [i for i in range(len(issues)) if issues["file"][i] == str(workspace.train_csv)][2:8]
    clients = []
    for key in (workspace.admin_key, workspace.predict_key):
        client = TestClient(ui_app(workspace), base_url="http://127.0.0.1")
        login(client, key)
        clients.append((client, csrf_of(client)))
    errors: list[str] = []

    def decide(person: int, mine: list[int]) -> None:
        client, token = clients[person]
        for i in mine:
            row = int(issues["row"][i])
            current = read_table(workspace.train_csv)["label"].iloc[row - 1]
            answer = client.post(
                "/labels/audit/tiny/decide",
                data={
                    "csrf_token": token,
                    "issue": str(i),
                    "action": "accept",
                    "expected": current,
                },
                headers={"HX-Request": "true"},
            )
            if answer.status_code != 200:
                errors.append(answer.text)

    people = [
        threading.Thread(target=decide, args=(0, picks[0::2])),
        threading.Thread(target=decide, args=(1, picks[1::2])),
    ]
    for person in people:
        person.start()
    for person in people:
        person.join(timeout=120)
    assert errors == []
    labels = read_table(workspace.train_csv)["label"]
    for i in picks:
        assert labels.iloc[int(issues["row"][i]) - 1] == issues["suggested_label"][i]
