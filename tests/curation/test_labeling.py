"""The labelling loop on a tiny trained run: `label next` and `label import`, API and CLI;
and a run with PII redaction and augmentation switched on."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import modelyard
from modelyard.cli import EXIT_USER_ERROR, main
from modelyard.curation.active import STRATEGIES
from modelyard.curation.api import label_import, label_next, scan_pii, simulate_al
from modelyard.errors import DataError, RecipeError
from modelyard.recipe import build_recipe
from tests.conftest import make_rows, write_csv


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("labeling")
    rows = make_rows(260, seed=9)
    train = write_csv(tmp / "train.csv", rows[:120])
    pool_rows = [(t, "") for t, _ in rows[120:200]] + [rows[200], (rows[0][0], ""), ("   ", "")]
    pool = write_csv(tmp / "pool.csv", pool_rows)
    recipe = build_recipe(
        {
            "run": {"name": "al", "output_dir": str(tmp / "runs"), "seed": 7},
            "data": {
                "path": str(train),
                "redact_pii": True,
                "augment": {"n": 1, "operations": ["swap"]},
            },
            "model": {"backbone": str(tiny_backbone), "max_length": 32},
            "train": {
                "epochs": 3,
                "batch_size": 8,
                "lr": 5e-3,
                "precision": "fp32",
                "num_threads": 1,
            },
            "evaluate": {"speed": False},
        }
    )
    result = modelyard.train(recipe, progress=False)
    return {
        "tmp": tmp,
        "run": result.run_dir,
        "train": train,
        "pool": pool,
        "rows": rows,
        "result": result,
    }


def test_run_reports_redaction_and_augmentation(project: dict[str, Any]) -> None:
    report = json.loads((project["run"] / "data_report.json").read_text())
    assert report["augmented_rows"] > 0 and report["pii_redacted"] == {}
    assert report["split_sizes"]["train"] == report["rows"]["train"] + report["augmented_rows"]
    card = (project["run"] / "MODEL_CARD.md").read_text()
    assert "Personal data was replaced before training (data.redact_pii): none found" in card
    assert "Augmented training rows" in card


@pytest.mark.parametrize("strategy", STRATEGIES.names())
def test_label_next_picks_k_new_unlabelled_rows(project: dict[str, Any], strategy: str) -> None:
    out = project["tmp"] / f"next-{strategy}.csv"
    batch = label_next(project["run"], project["pool"], out, k=10, strategy=strategy)
    picked = pd.read_csv(out, keep_default_na=False, dtype=str)
    assert batch.picked == len(picked) == 10 and picked["text"].is_unique
    assert batch.candidates == 80 and batch.skipped_labelled == 2 and batch.skipped_empty == 1
    train_texts = {t for t, _ in project["rows"][:120]}
    assert not set(picked["text"]) & (train_texts | {project["rows"][200][0]})
    assert list(picked["al_rank"]) == [str(i) for i in range(1, 11)]
    assert (picked["label"] == "").all() and "predicted_label" in picked.columns


def test_label_next_errors(project: dict[str, Any]) -> None:
    with pytest.raises(DataError, match="k=500 rows from 80"):
        label_next(project["run"], project["pool"], project["tmp"] / "x.csv", k=500)
    with pytest.raises(DataError, match="no column 'body'"):
        label_next(project["run"], project["pool"], project["tmp"] / "x.csv", text_column="body")


def test_label_next_min_words_skips_short_rows(project: dict[str, Any]) -> None:
    out = project["tmp"] / "next-long.csv"
    pool = pd.read_csv(project["pool"], keep_default_na=False, dtype=str)
    words = pool["text"].str.split().str.len()
    fresh = pool["label"].eq("") & pool["text"].str.strip().ne("")
    fresh &= ~pool["text"].isin({t for t, _ in project["rows"][:120]})
    short = int((fresh & words.lt(7)).sum())
    assert 0 < short < 70  # the fixture has rows on both sides of the cut
    batch = label_next(project["run"], project["pool"], out, k=10, min_words=7)
    picked = pd.read_csv(out, keep_default_na=False, dtype=str)
    assert batch.picked == 10 and batch.skipped_short == short
    assert batch.candidates == 80 - short and (picked["text"].str.split().str.len() >= 7).all()
    assert label_next(project["run"], project["pool"], out, k=3).skipped_short == 0
    with pytest.raises(DataError, match="80 candidate.* 0 have at least 40 words.*--min-words"):
        label_next(project["run"], project["pool"], out, k=3, min_words=40)


def test_label_import_merges_new_labelled_rows(project: dict[str, Any]) -> None:
    tmp, rows = project["tmp"], project["rows"]
    into = write_csv(tmp / "into.csv", rows[:30])
    new = write_csv(tmp / "new.csv", [rows[40], rows[41], (rows[42][0], ""), rows[0], rows[40]])
    result = label_import(new, into, tmp / "merged.csv")
    merged = pd.read_csv(tmp / "merged.csv", keep_default_na=False, dtype=str)
    assert (result.added, result.skipped_unlabelled, result.skipped_known) == (2, 1, 1)
    assert len(merged) == 32 and list(merged["text"][-2:]) == [rows[40][0], rows[41][0]]
    assert len(pd.read_csv(into)) == 30  # --output leaves --into as it was
    typo = write_csv(tmp / "typo.csv", [(rows[50][0], "biling")])
    with pytest.raises(DataError, match="'biling' do not occur.*--allow-new-labels"):
        label_import(typo, into)
    assert label_import(typo, into, allow_new_labels=True).labels_added == ["biling"]
    assert len(pd.read_csv(into)) == 31


def _cli(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["modelyard", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_label_next_and_import(
    project: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = project["tmp"] / "cli-next.csv"
    args = [
        "label",
        "next",
        str(project["run"]),
        "--pool",
        str(project["pool"]),
        "--min-words",
        "7",
        "--k",
        "5",
        "--strategy",
        "entropy",
        "--output",
        str(out),
    ]
    code, text, _ = _cli(args, monkeypatch, capsys)
    assert code == 0 and "wrote 5 rows" in text and "shorter than 7 words" in text
    assert out.is_file()
    code, _, err = _cli(
        [*args[:-6], "--strategy", "smart", "--output", str(out)], monkeypatch, capsys
    )
    assert (
        code == EXIT_USER_ERROR
        and "unknown query strategy 'smart'" in err
        and "Traceback" not in err
    )
    labelled = pd.read_csv(out, keep_default_na=False, dtype=str).assign(label="billing")
    labelled.to_csv(out, index=False)
    into = write_csv(project["tmp"] / "cli-into.csv", project["rows"][:10])
    code, text, _ = _cli(
        ["label", "import", str(out), "--into", str(into), "--json"], monkeypatch, capsys
    )
    assert code == 0 and json.loads(text)["added"] == 5


def test_cli_scan_pii(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_csv(tmp_path / "d.csv", [("mail a@b.com", "x"), ("EMP-123456 here", "y")])
    code, text, _ = _cli(
        ["data", "scan-pii", str(data), "--pattern", r"EMP=EMP-\d{6}", "--json"],
        monkeypatch,
        capsys,
    )
    assert code == 0 and json.loads(text)["counts"] == {"email": 1, "EMP": 1}
    code, _, err = _cli(["data", "scan-pii", str(data), "--pattern", "nope"], monkeypatch, capsys)
    assert code == EXIT_USER_ERROR and "NAME=REGEX" in err
    with pytest.raises(RecipeError, match="not a valid regular expression"):
        scan_pii(data, patterns={"BAD": "("})


def test_simulate_al_files(tmp_path: Path, tiny_backbone: Path) -> None:
    data = write_csv(tmp_path / "pool.csv", make_rows(150, seed=1))
    test = write_csv(tmp_path / "test.csv", make_rows(60, seed=2))
    out = tmp_path / "sim"
    summary = simulate_al(
        data,
        test,
        out,
        ["random", "margin"],
        seeds=2,
        start=10,
        step=20,
        max_labels=70,
        backbone=str(tiny_backbone),
        max_length=32,
    )
    curves = pd.read_csv(out / "curves.csv")
    assert set(curves["strategy"]) == {"random", "margin"} and set(curves["labels"]) == {
        10,
        30,
        50,
        70,
    }
    assert (out / "curves.png").stat().st_size > 1000
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    long_only = simulate_al(
        data,
        test,
        tmp_path / "sim-long",
        ["random"],
        seeds=1,
        start=10,
        step=20,
        max_labels=30,
        backbone=str(tiny_backbone),
        max_length=32,
        min_words=7,
    )
    long_rows = sum(len(t.split()) >= 7 for t, _ in make_rows(150, seed=1))
    assert long_only["min_words"] == 7 and long_only["pool_rows"] == long_rows < 150
    assert long_only["pool_rows_before_min_words"] == 150 and summary["min_words"] == 0
    with pytest.raises(DataError, match=f"pool has {long_rows} rows with at least 7 words"):
        simulate_al(
            data,
            test,
            out,
            ["random"],
            seeds=1,
            max_labels=149,
            min_words=7,
            backbone=str(tiny_backbone),
        )
    with pytest.raises(DataError, match="pool has 150 rows"):
        simulate_al(
            data, test, out, ["random"], seeds=1, max_labels=500, backbone=str(tiny_backbone)
        )
