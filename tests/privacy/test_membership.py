"""The membership-inference audit: its statistics against scikit-learn, and on real runs."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

import modelyard
from modelyard.cli import EXIT_USER_ERROR, main
from modelyard.errors import DataError
from modelyard.privacy.attacks import attack_summary, auc_rows, tpr_at_fpr_rows
from modelyard.privacy.membership import audit_membership
from modelyard.recipe import build_recipe
from tests.conftest import make_rows, write_csv


def test_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    m, n = rng.integers(0, 20, 300).astype(float), rng.integers(0, 18, 200).astype(float)
    expected = roc_auc_score(np.r_[np.ones(300), np.zeros(200)], np.r_[m, n])
    assert auc_rows(m, n) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_tpr_at_low_fpr_matches_the_roc_curve(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m, n = rng.normal(0.8, 1, 700), rng.normal(0, 1, 900)
    fpr, tpr, _ = roc_curve(
        np.r_[np.ones(700), np.zeros(900)], np.r_[m, n], drop_intermediate=False
    )
    assert tpr_at_fpr_rows(m, n, 0.01) == pytest.approx(tpr[fpr <= 0.01].max())


def test_summary_extremes_and_intervals() -> None:
    rng = np.random.default_rng(1)
    same = attack_summary(rng.normal(size=400), rng.normal(size=400), resamples=300)
    assert same["auc_ci"][0] < 0.5 < same["auc_ci"][1]
    assert same["auc_ci"][0] <= same["auc"] <= same["auc_ci"][1]
    apart = attack_summary(rng.normal(10, 1, 50), rng.normal(size=50), resamples=100)
    assert apart["auc"] == 1.0 and apart["tpr_at_fpr"] == 1.0
    small = attack_summary(rng.normal(0.5, 1, 60), rng.normal(size=60), resamples=300)
    large = attack_summary(rng.normal(0.5, 1, 2000), rng.normal(size=2000), resamples=300)
    assert np.diff(large["auc_ci"])[0] < np.diff(small["auc_ci"])[0] / 3
    with pytest.raises(ValueError, match="at least 2"):
        attack_summary(np.array([1.0]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="finite"):
        attack_summary(np.array([1.0, np.nan]), np.array([0.0, 1.0]))


def _random_labels(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [
        (text, rng.choice(["account", "billing", "shipping"])) for text, _ in make_rows(n, seed)
    ]


def _memoriser(
    tmp: Path, tiny_backbone: Path, name: str, rows: Path, test: Path, epochs: int
) -> Path:
    recipe = {
        "run": {"name": name, "output_dir": str(tmp / "runs"), "seed": 1},
        "data": {"train": str(rows), "test": str(test), "split": {"dev": 0.0, "test": 0.0}},
        "model": {"backbone": str(tiny_backbone), "max_length": 32},
        "train": {
            "epochs": epochs,
            "batch_size": 8,
            "lr": 5e-3,
            "warmup_ratio": 0.0,
            "precision": "fp32",
            "num_threads": 1,
            "checkpoint_every": None,
        },
        "evaluate": {"speed": False},
    }
    return modelyard.train(build_recipe(recipe), progress=False).run_dir


@pytest.fixture(scope="module")
def memorised(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> dict[str, Path]:
    """A run trained to memorise random labels (members are easy to tell apart), and a reference."""
    tmp = tmp_path_factory.mktemp("mia")
    files = {
        "members": write_csv(tmp / "members.csv", _random_labels(80, 0)),
        "non_members": write_csv(tmp / "non_members.csv", _random_labels(80, 1)),
        "reference_rows": write_csv(tmp / "reference.csv", _random_labels(80, 2)),
    }
    files["run"] = _memoriser(
        tmp, tiny_backbone, "target", files["members"], files["non_members"], 40
    )
    files["reference"] = _memoriser(
        tmp, tiny_backbone, "reference", files["reference_rows"], files["non_members"], 10
    )
    return files


def test_audit_finds_memorised_members(memorised: dict[str, Path]) -> None:
    report = audit_membership(
        memorised["run"],
        memorised["members"],
        memorised["non_members"],
        reference=memorised["reference"],
        resamples=200,
    )
    assert report["members"]["n"] == 80 and report["non_members"]["n"] == 80
    assert set(report["attacks"]) == {"loss", "confidence", "loss_calibrated"}
    loss = report["attacks"]["loss"]
    assert loss["auc"] > 0.7 and loss["auc_ci"][0] > 0.55
    assert report["max_auc"] == max(a["auc"] for a in report["attacks"].values())
    out = Path(report["report_dir"])
    assert json.loads((out / "audit.json").read_text())["max_auc"] == report["max_auc"]
    assert "| loss |" in (out / "audit.md").read_text()
    # the audit writes beside the run, outside its manifest: the run still verifies
    assert modelyard.predict(memorised["run"], ["refund"])


def test_audit_input_errors(memorised: dict[str, Path], tmp_path: Path) -> None:
    few = write_csv(tmp_path / "few.csv", make_rows(5))
    with pytest.raises(DataError, match="5 row\\(s\\); an audit needs at least 10"):
        audit_membership(memorised["run"], few, memorised["non_members"], resamples=100)
    odd = write_csv(tmp_path / "odd.csv", [(f"text {i}", "refunds") for i in range(12)])
    with pytest.raises(DataError, match="label 'refunds' was never seen in training"):
        audit_membership(memorised["run"], memorised["members"], odd, resamples=100)


def test_audit_cli(
    memorised: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def run(args: list[str]) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["modelyard", *args])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    base = ["privacy", "audit", str(memorised["run"]), "--members", str(memorised["members"])]
    code, out, err = run(
        [
            *base,
            "--non-members",
            str(memorised["non_members"]),
            "--bootstrap",
            "100",
            "--output",
            str(tmp_path / "audit"),
            "--json",
        ]
    )
    assert code == 0, err
    assert json.loads(out)["attacks"]["loss"]["auc"] > 0.7
    assert (tmp_path / "audit" / "audit.md").is_file()
    code, _, err = run([*base, "--non-members", str(tmp_path / "missing.csv")])
    assert code == EXIT_USER_ERROR and "missing.csv" in err and "Traceback" not in err
