"""Membership-inference audit of a trained run: can an attacker tell its training rows apart?

Three attacks, each a score per row where higher means "more likely a member":
- `loss`: minus the model's cross-entropy on the row (members are fitted, so their loss is low);
- `confidence`: the model's top probability (needs no label);
- `loss_calibrated`: the reference model's loss minus the target's (Watson et al., 2022), which
  removes how hard a row is on its own; needs a reference run trained without the rows.
AUC 0.5 is chance; the TPR at 1% FPR says how many members an attacker finds while rarely wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelyard.data.labelled import labelled_split_like
from modelyard.errors import DataError
from modelyard.fsutil import atomic_write_json, atomic_write_text
from modelyard.models.encoding import encode_split
from modelyard.models.predict import predict_logits
from modelyard.privacy.attacks import attack_summary
from modelyard.registry.run import LoadedRun, load_run

MIN_ROWS = 10
FPR = 0.01


def row_scores(
    run: LoadedRun, path: Path, text_column: str | None = None, label_column: str | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Return per-row cross-entropy loss, top probability and the texts of a labelled file.

    Raises DataError for an unreadable file, a missing column or a label the run does not know.
    """
    split, _ = labelled_split_like(path, run.recipe.data, run.labels, text_column, label_column)
    encoded = encode_split(run.tokenizer, split, run.max_length)
    device = next(run.model.parameters()).device
    logits = predict_logits(run.model, encoded, run.tokenizer.pad_token_id or 0, device, None)
    logp = torch.log_softmax(torch.from_numpy(logits).double(), dim=-1)
    labels = torch.tensor(encoded.labels)
    loss = -logp[torch.arange(len(labels)), labels].numpy()
    return loss, logp.exp().max(dim=-1).values.numpy(), split.texts


def _as_run(run: LoadedRun | str | Path) -> LoadedRun:
    return run if isinstance(run, LoadedRun) else load_run(run)


def _score_sets(
    target: LoadedRun,
    reference: LoadedRun | None,
    files: tuple[Path, Path],
    columns: tuple[str | None, str | None],
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[list[str]]]:
    scores: dict[str, list[np.ndarray]] = {"loss": [], "confidence": [], "loss_calibrated": []}
    texts = []
    for path in files:
        loss, conf, rows = row_scores(target, path, *columns)
        if len(rows) < MIN_ROWS:
            raise DataError(
                f"{path}: {len(rows)} row(s); an audit needs at least {MIN_ROWS} per side"
            )
        scores["loss"].append(-loss)
        scores["confidence"].append(conf)
        if reference is not None:
            scores["loss_calibrated"].append(row_scores(reference, path, *columns)[0] - loss)
        texts.append(rows)
    return {k: (v[0], v[1]) for k, v in scores.items() if v}, texts


def _privacy_record(run: LoadedRun) -> dict[str, Any] | None:
    path = run.path / "metrics.json"
    if "metrics.json" not in run.manifest.get("files", {}) or not path.is_file():
        return None
    try:  # unreadable when the run is encrypted at rest; the record is optional
        training = json.loads(path.read_text(encoding="utf-8")).get("training", {})
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None
    return training.get("privacy") if isinstance(training, dict) else None


def audit_membership(
    run: LoadedRun | str | Path,
    members: str | Path,
    non_members: str | Path,
    reference: LoadedRun | str | Path | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    resamples: int = 1000,
    seed: int = 0,
    output: str | Path | None = None,
) -> dict[str, Any]:
    """Attack the run with its training rows (`members`) against rows it never saw; return the report.

    Writes `audit.json` and `audit.md` to `output` (default `RUN/audits/<members>-vs-<non-members>/`,
    outside the run's manifest) and returns the same dict, with `report_dir`. Raises DataError
    for a bad file or fewer than 10 rows on a side, ArtifactError for a run that fails to load.
    """
    target = _as_run(run)
    ref = _as_run(reference) if reference is not None else None
    files = (Path(members), Path(non_members))
    scores, texts = _score_sets(target, ref, files, (text_column, label_column))
    report: dict[str, Any] = {
        "run": str(target.path),
        "reference": str(ref.path) if ref is not None else None,
        "members": {"file": str(files[0]), "n": len(texts[0])},
        "non_members": {"file": str(files[1]), "n": len(texts[1])},
        "texts_in_both": len(set(texts[0]) & set(texts[1])),
        "fpr": FPR,
        "bootstrap": {"resamples": resamples, "confidence": 0.95, "seed": seed},
        "attacks": {
            name: attack_summary(m, n, resamples=resamples, seed=seed, fpr=FPR)
            for name, (m, n) in scores.items()
        },
        "privacy": _privacy_record(target),
    }
    out = Path(output) if output else target.path / "audits" / f"{files[0].stem}-vs-{files[1].stem}"
    return _write(_with_strongest(report), out)


def _with_strongest(report: dict[str, Any]) -> dict[str, Any]:
    strongest = max(report["attacks"], key=lambda k: report["attacks"][k]["auc"])
    report["strongest_attack"], report["max_auc"] = strongest, report["attacks"][strongest]["auc"]
    return report


def _write(report: dict[str, Any], out: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "audit.json", report)
    atomic_write_text(out / "audit.md", audit_markdown(report))
    return {**report, "report_dir": str(out)}


def audit_markdown(report: dict[str, Any]) -> str:
    """Return the audit report as markdown: one row per attack, with its intervals."""
    pct = f"{100 * report['fpr']:g}%"
    lines = [
        f"# Membership-inference audit: {Path(report['run']).name}",
        "",
        f"Members: {report['members']['n']} rows of `{report['members']['file']}`; non-members: "
        f"{report['non_members']['n']} rows of `{report['non_members']['file']}` "
        f"({report['texts_in_both']} texts in both).",
        "",
        f"| attack | AUC | 95% CI | TPR at {pct} FPR | 95% CI |",
        "|---|---|---|---|---|",
    ]
    for name, a in report["attacks"].items():
        lines.append(
            f"| {name} | {a['auc']:.4f} | {a['auc_ci'][0]:.4f}–{a['auc_ci'][1]:.4f} | "
            f"{a['tpr_at_fpr']:.4f} | {a['tpr_at_fpr_ci'][0]:.4f}–{a['tpr_at_fpr_ci'][1]:.4f} |"
        )
    lines += [
        "",
        "AUC 0.5 and a TPR equal to the FPR mean the attacker does no better than chance.",
    ]
    if report["reference"] is None:
        lines.append(
            "The calibrated attack needs `--reference RUN`, a run trained without these rows."
        )
    privacy = report.get("privacy")
    lines.append(
        f"The run was trained with ({privacy['epsilon']}, {privacy['delta']:g})-DP."
        if privacy
        else "The run was trained without differential privacy."
    )
    return "\n".join(lines) + "\n"
