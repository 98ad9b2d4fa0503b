"""The Python API: modelyard.explain, explain_file and evaluate_explanations."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import modelyard
from modelyard.errors import DataError
from modelyard.explainability import Explanation, Subject, as_subject
from modelyard.explainability.api import evaluate_explanations, explain_file
from modelyard.explainability.core import resolve_config
from modelyard.registry import LoadedRun
from tests.conftest import write_csv
from tests.explainability.conftest import KEY, key_rows
from tests.explainability.test_methods import ForwardOnly


def test_modelyard_explain_is_the_api_function_even_after_the_package_loads(
    key_run_dir: Path,
) -> None:
    import modelyard.explainability.api

    [exp] = modelyard.explain(key_run_dir, f"{KEY} late")
    assert isinstance(exp, Explanation) and exp.method == "ig" and exp.delta is not None
    assert set(exp.probabilities) == {"no", "yes"}
    assert json.loads(json.dumps(exp.to_dict()))["words"][0]["word"] == KEY


def test_the_recipe_explain_section_gives_the_defaults(key_run: LoadedRun) -> None:
    run = dataclasses.replace(key_run, recipe={"explain": {"method": "shapley", "samples": 3}})
    subject = Subject(as_subject(key_run).backend, run)
    assert resolve_config(subject).samples == 3
    assert resolve_config(subject, samples=5).samples == 5
    assert modelyard.explain(subject, KEY)[0].method == "shapley"


def test_explain_file_writes_json_html_and_the_global_view(
    key_run: LoadedRun, tmp_path: Path
) -> None:
    rows = [*key_rows(10, seed=4), ("", "no")]
    source = write_csv(tmp_path / "in.csv", rows)
    done = explain_file(key_run, source, tmp_path / "out", method="occlusion", global_min_count=1)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "explanations.html",
        "explanations.json",
        "global.json",
        "global.md",
        "global.png",
    ]
    payload = json.loads(done.files["json"].read_text())
    assert payload["skipped_empty"] == 1 and len(payload["explanations"]) == 10
    assert payload["explanations"][0]["text"] == rows[0][0]
    assert done.view.classes["yes"][0].word == KEY
    assert json.loads(done.files["global_json"].read_text())["classes"]["yes"][0]["word"] == KEY


def test_explain_file_reads_plain_text_one_per_line(key_run: LoadedRun, tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text(f"my {KEY}\n\nlate parcel\n", encoding="utf-8")
    done = explain_file(key_run, source, tmp_path / "out", method="gxi", max_rows=2)
    assert [e.text for e in done.explanations] == [f"my {KEY}"] and done.skipped_empty == 1


def test_explain_file_errors_name_the_file_and_the_fix(key_run: LoadedRun, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", key_rows(3, seed=0), header=("body", "label"))
    with pytest.raises(
        DataError, match=r"no column 'text'; columns are: body, label\. Pass --text-column"
    ):
        explain_file(key_run, source, tmp_path / "out")
    empty = write_csv(tmp_path / "empty.csv", [(" ", "no")])
    with pytest.raises(DataError, match=r"empty\.csv: no non-empty text to explain \(1 empty\)"):
        explain_file(key_run, empty, tmp_path / "out")
    with pytest.raises(DataError, match="input file not found"):
        explain_file(key_run, tmp_path / "missing.txt", tmp_path / "out")


def test_evaluate_writes_the_report_beside_the_run_by_default(
    key_run_dir: Path, tmp_path: Path
) -> None:
    data = write_csv(tmp_path / "held.csv", key_rows(8, seed=6))
    report, out = evaluate_explanations(
        key_run_dir, data, methods=["occlusion"], top_k_percent=(20,)
    )
    assert out == key_run_dir / "explanations" / "held"
    saved = json.loads((out / "faithfulness.json").read_text())
    assert set(saved["methods"]) == {"occlusion", "random"} and saved["n_texts"] == 8
    assert saved["settings"]["score"] == "log-odds"
    table = (out / "faithfulness.md").read_text()
    assert "| occlusion |" in table and "| random |" in table and "20%" in table
    assert report.ratio("occlusion", 20) > 1


def test_evaluate_uses_every_method_the_artifact_supports(
    key_run: LoadedRun, tmp_path: Path
) -> None:
    data = write_csv(tmp_path / "d.csv", key_rows(2, seed=6))
    report, _ = evaluate_explanations(
        ForwardOnly(key_run), data, output=tmp_path / "o", samples=2, top_k_percent=(50,)
    )
    assert set(report.methods) == {"occlusion", "shapley", "random"}
    report, _ = evaluate_explanations(key_run, data, output=tmp_path / "o", samples=2, steps=4)
    assert set(report.methods) == {"gxi", "ig", "occlusion", "shapley", "random"}
