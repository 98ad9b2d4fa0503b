"""Data-centric tools benchmark: label audit, active learning, self-training, augmentation.

    python bench/data_tools.py [--data-dir ../shared/data] [--parts audit,al,selftrain] [--quick]

(more parts: audit_ft, audit_ft_head, audit_dyn, audit_ref, al_ft, al_ft_head, al_ft_words,
selftrain_head; see --help)

- Label audit: SST-2 (8,000-row stratified sample) and TREC (all 5,452 training rows) with
  10% of labels flipped at random (seeded). Out-of-fold probabilities from 5-fold logistic
  regression on frozen MiniLM embeddings (modelyard's default audit learner), then cleanlab.
  Precision, recall and F1 of the flagged rows against the flipped ones, next to the
  baseline that flags the same number of rows with the lowest self-confidence.
- Active learning: SST-2 (10,000-row pool) and AG News (the 10,000-row train file), 50 to
  2,000 labels in steps of 50, 3 seeds, every strategy against random. The learner is
  logistic regression on frozen embeddings computed once (what `modelyard data simulate-al`
  does), not fine-tuning: a fine-tune per step would take days on 2 cores.
- Self-training and augmentation: 200 labelled SST-2 rows (40 of them dev), fine-tuned with
  modelyard; self-training adds pseudo-labels from 8,000 unlabelled rows, by two rules (the
  0.9 threshold, and the top 10% of the pool per round); EDA adds augmented copies. Gains are test-accuracy differences against the same 200 rows alone (round 0 of
  the self-training run, the identical recipe without self-training), per seed, median.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import base_parser, machine, read_csv, stratified_sample, write_results

SEED = 42
NAME = "data_tools"
HEADLINE_PREFIXES = ("headline", "audit_f1", "al_labels", "self_training_gain", "augment_gain")


def _embed(texts: list[str], max_length: int = 64) -> np.ndarray:
    from modelyard.curation.embed import Embedder

    return Embedder.from_backbone("minilm-l6", max_length=max_length).encode(texts)


def flip_labels(
    y: np.ndarray, classes: int, share: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return labels with `share` of them moved to another class at random, and the flip mask."""
    rng = np.random.default_rng(seed)
    flipped = np.zeros(len(y), dtype=bool)
    flipped[rng.choice(len(y), size=round(share * len(y)), replace=False)] = True
    noisy = y.copy()
    shift = rng.integers(1, classes, size=len(y))
    noisy[flipped] = (y[flipped] + shift[flipped]) % classes
    return noisy, flipped


def prf(flagged: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Return precision, recall and F1 of a flagged mask against the true mask."""
    tp = int((flagged & truth).sum())
    p = tp / max(int(flagged.sum()), 1)
    r = tp / max(int(truth.sum()), 1)
    return {
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(2 * p * r / max(p + r, 1e-12), 4),
        "flagged": int(flagged.sum()),
    }


def _audit_recipe(head: bool, epochs: int, audit: dict[str, Any]) -> Any:
    """Return the recipe of a fine-tuned audit learner (max length 64, lr 5e-5, batch 32);
    `head`: mean pooling and the head started from the label names."""
    from modelyard.recipe import build_recipe

    model: dict[str, Any] = {"max_length": 64}
    if head:
        model |= {"pooling": "mean", "head_init": {}}
    train = {"epochs": epochs, "batch_size": 32, "lr": 5e-5, "checkpoint_every": None}
    return build_recipe(
        {
            "run": {"seed": SEED},
            "data": {"path": "unused.csv"},
            "model": model,
            "train": train,
            "audit": audit,
        }
    )


def _finetuned_probs(
    texts: list[str], noisy: np.ndarray, names: list[str], head: bool = False
) -> np.ndarray:
    """Return out-of-fold probabilities from fine-tuning MiniLM-L6 on the noisy labels.

    `head`: mean pooling, the head started from the label names, and 5 folds instead of 3
    (more rows per fold), the strongest fine-tuned learner this machine affords.
    """
    from modelyard.curation.audit_run import finetuned_oof_probs

    audit = {"learner": "finetune", "folds": 5 if head else 3}
    recipe = _audit_recipe(head, epochs=2, audit=audit)
    return finetuned_oof_probs(recipe, texts, noisy, names)


DYNAMICS_EPOCHS = 3


def _dynamics_probs(texts: list[str], noisy: np.ndarray, names: list[str]) -> np.ndarray:
    """Return the dynamics learner's probabilities: one fine-tune of MiniLM-L6 (mean pooling,
    the head started from the label names) on every noisy row, averaged over 4 snapshots an
    epoch (`audit.learner: dynamics`)."""
    from modelyard.curation.audit_run import dynamics_probs

    audit = {"learner": "dynamics", "snapshots": 4}
    recipe = _audit_recipe(True, epochs=DYNAMICS_EPOCHS, audit=audit)
    return dynamics_probs(recipe, texts, noisy, names)


def best_threshold_f1(self_confidence: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Return the highest F1 of flagging the k lowest-self-confidence rows over every k, and that k.

    An oracle figure (it picks k with the true flips): the best any threshold on this ranking can do.
    """
    order = np.argsort(self_confidence, kind="stable")
    hits = np.cumsum(truth[order])
    k = np.arange(1, len(order) + 1)
    f1 = 2 * hits / (k + truth.sum())
    best = int(np.argmax(f1))
    return {"f1": round(float(f1[best]), 4), "flagged": best + 1}


def _reference_probs(
    frame: pd.DataFrame, rest: pd.DataFrame, names: list[str], learner: str
) -> np.ndarray:
    """Return class probabilities for `frame` from a learner trained on the clean `rest` rows."""
    y_rest = np.array([names.index(v) for v in rest["label"]])
    if learner == "embedding":
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(max_iter=2000).fit(_embed(rest["text"].tolist()), y_rest)
        return np.asarray(model.predict_proba(_embed(frame["text"].tolist())))
    from modelyard.curation.audit_run import finetune_and_predict
    from modelyard.data.splits import Split
    from modelyard.recipe import build_recipe

    recipe = build_recipe(
        {
            "run": {"seed": SEED},
            "data": {"path": "unused.csv"},
            "model": {"max_length": 64},
            "train": {"epochs": 1, "batch_size": 32, "lr": 5e-5, "checkpoint_every": None},
        }
    )
    fit = Split(rest["text"].tolist(), y_rest.tolist())
    return finetune_and_predict(recipe, fit, frame["text"].tolist(), names)


def audit_dataset(
    frame: pd.DataFrame, learner: str = "embedding", rest: pd.DataFrame | None = None
) -> dict[str, Any]:
    """Flip 10% of the labels of `frame`, audit with `learner`, and score the flagged rows.

    With `rest` (clean rows outside `frame`), the probabilities come from `learner` trained
    on those instead of out-of-fold on the noisy rows: how far a much better-informed model
    of the same backbone gets.
    """
    from modelyard.curation.audit import embedding_oof_probs, rank_label_issues

    names = sorted(frame["label"].unique())
    y = np.array([names.index(v) for v in frame["label"]])
    noisy, flipped = flip_labels(y, len(names), 0.10, SEED)
    start = time.perf_counter()
    if rest is not None:
        probs = _reference_probs(frame, rest, names, learner)
    elif learner in ("finetune", "finetune_head"):
        probs = _finetuned_probs(frame["text"].tolist(), noisy, names, learner == "finetune_head")
    elif learner == "dynamics":
        probs = _dynamics_probs(frame["text"].tolist(), noisy, names)
    else:
        probs = embedding_oof_probs(_embed(frame["text"].tolist()), noisy, folds=5, seed=SEED)
    result: dict[str, Any] = {"rows": len(frame), "flipped": int(flipped.sum()), "learner": learner}
    if rest is not None:
        result["reference_rows"] = len(rest)
    result["oof_accuracy_vs_true_labels"] = round(float((probs.argmax(axis=1) == y).mean()), 4)
    for rule in ("both", "prune_by_noise_rate", "confident_learning", "predicted_neq_given"):
        issues = rank_label_issues(noisy, probs, rule)
        flagged = np.zeros(len(y), dtype=bool)
        flagged[issues["index"].to_numpy()] = True
        result[f"cleanlab_{rule}"] = prf(flagged, flipped)
    # the rule `modelyard data audit` applies to this learner (audit.filter_by: auto)
    result["default_rule"] = f"cleanlab_{default_rule(learner)}"
    budget = result[result["default_rule"]]["flagged"]
    self_confidence = probs[np.arange(len(y)), noisy]
    baseline = np.zeros(len(y), dtype=bool)
    baseline[np.argsort(self_confidence, kind="stable")[:budget]] = True
    result["baseline_lowest_self_confidence"] = prf(baseline, flipped)
    result["best_threshold_oracle"] = best_threshold_f1(self_confidence, flipped)
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def default_rule(learner: str) -> str:
    """Return the cleanlab rule modelyard's audit applies by default with this bench learner."""
    from modelyard.recipe.data import AuditConfig

    product = "finetune" if learner.startswith("finetune") else learner
    return AuditConfig(learner=product).rule()


def run_audit(data: Path, quick: bool, learner: str = "embedding") -> dict[str, Any]:
    """Return the audit figures for SST-2 and TREC."""
    sst2 = stratified_sample(read_csv(data / "sst2" / "train.csv"), 2000 if quick else 8000, SEED)
    trec = read_csv(data / "trec" / "train.csv")
    trec = stratified_sample(trec, 2000, SEED) if quick else trec
    out = {"sst2": audit_dataset(sst2, learner), "trec": audit_dataset(trec, learner)}
    print(f"audit: {json.dumps(out)}", file=sys.stderr, flush=True)
    return out


def run_audit_reference(data: Path, quick: bool) -> dict[str, Any]:
    """Return the SST-2 audit figures with learners trained on clean rows outside the sample."""
    train = read_csv(data / "sst2" / "train.csv")
    sst2 = stratified_sample(train, 2000 if quick else 8000, SEED)
    rest = train[~train["text"].isin(set(sst2["text"]))]
    out = {
        "embedding": audit_dataset(
            sst2, "embedding", stratified_sample(rest, 3000, SEED) if quick else rest
        ),
        # a fine-tune on every remaining row would take an hour here: 20,000 of them, 1 epoch
        "finetune": audit_dataset(
            sst2, "finetune", stratified_sample(rest, 1000 if quick else 20000, SEED)
        ),
    }
    print(f"audit_reference: {json.dumps(out)}", file=sys.stderr, flush=True)
    return out


def al_dataset(
    pool: pd.DataFrame, test: pd.DataFrame, max_labels: int, seeds: int
) -> dict[str, Any]:
    """Simulate every strategy on one dataset; return curves and labels-to-match figures."""
    from modelyard.curation.active import STRATEGIES
    from modelyard.curation.simulate import (
        label_schedule,
        labels_to_match,
        simulate_active_learning,
    )

    names = sorted(pool["label"].unique())
    start = time.perf_counter()
    x_pool, x_test = _embed(pool["text"].tolist(), 128), _embed(test["text"].tolist(), 128)
    y_pool = np.array([names.index(v) for v in pool["label"]])
    y_test = np.array([names.index(v) for v in test["label"]])
    embed_s = time.perf_counter() - start
    schedule = label_schedule(50, 50, max_labels)
    curves = simulate_active_learning(
        (x_pool, y_pool), (x_test, y_test), STRATEGIES.names(), schedule, list(range(seeds))
    )
    mean = curves.groupby(["strategy", "labels"])["accuracy"].mean().unstack("labels")
    matches = labels_to_match(curves)
    best = min((v for k, v in matches.items() if k != "random" and v is not None), default=None)
    return {
        "pool_rows": len(pool),
        "test_rows": len(test),
        "embed_seconds": round(embed_s, 1),
        "simulate_seconds": round(time.perf_counter() - start - embed_s, 1),
        "random_accuracy_at_max": round(float(mean.loc["random", max_labels]), 4),
        "labels_to_match_random_at_max": matches,
        "best_labels_to_match": best,
        "mean_accuracy": {
            s: {int(n): round(float(a), 4) for n, a in row.items()} for s, row in mean.iterrows()
        },
        "curves": curves,
    }


def run_al(data: Path, quick: bool, work: Path) -> dict[str, Any]:
    """Return the active-learning figures for SST-2 and AG News, and write their plots."""
    from modelyard.curation.simulate import plot_curves

    max_labels, seeds = (500, 1) if quick else (2000, 3)
    pool_rows = 3000 if quick else 10000
    sets = {
        "sst2": (read_csv(data / "sst2" / "train.csv"), read_csv(data / "sst2" / "test.csv")),
        "ag_news": (
            read_csv(data / "ag_news" / "train.csv"),
            read_csv(data / "ag_news" / "test.csv"),
        ),
    }
    out: dict[str, Any] = {}
    for name, (train, test) in sets.items():
        pool = stratified_sample(train, pool_rows, SEED)
        test = stratified_sample(test, 1000, SEED) if quick else test
        result = al_dataset(pool, test, max_labels, seeds)
        curves = result.pop("curves")
        curves.to_csv(work / f"al_{name}.csv", index=False)
        plot_curves(
            curves, work / f"al_{name}.png", f"active learning, {name} (LR on frozen MiniLM)"
        )
        out[name] = result
        print(
            f"al {name}: {json.dumps({k: v for k, v in result.items() if k != 'mean_accuracy'})}",
            file=sys.stderr,
            flush=True,
        )
    return out


def _few_label_recipe(
    work: Path, name: str, seed: int, train: Path, test: Path, quick: bool, head_init: bool
) -> dict[str, Any]:
    # head_init: mean pooling and a head started as the zero-shot classifier of the label names
    head = {"pooling": "mean", "head_init": {}} if head_init else {}
    return {
        "run": {
            "name": name + ("-head" if head_init else ""),
            "output_dir": str(work / "runs"),
            "seed": seed,
        },
        "data": {"train": str(train), "test": str(test), "split": {"dev": 0.2, "test": 0.0}},
        "model": {"max_length": 64, **head},
        "train": {
            "epochs": 2 if quick else 5,
            "batch_size": 16,
            "lr": 1e-4,
            "checkpoint_every": None,
            "early_stopping": {"patience": None},
        },
        "evaluate": {"speed": False},
    }


def _train(recipe: dict[str, Any]) -> Any:
    import modelyard
    from modelyard.recipe import build_recipe

    return modelyard.train(build_recipe(recipe), overwrite=True, progress=False)


ST_ROUNDS = 2
ST_RULES = {
    # the recipe default: pseudo-labels at probability 0.9 or more
    "threshold": {"threshold": 0.9, "max_per_class": 500},
    # curriculum labelling: the most confident 10% of the pool each round
    "top_fraction": {"top_fraction": 0.1},
}


def _self_train(
    work: Path,
    name: str,
    seed: int,
    paths: tuple[Path, Path, Path],
    quick: bool,
    rule: dict,
    head_init: bool,
) -> dict[str, Any]:
    train, pool, test = paths
    recipe = _few_label_recipe(work, name, seed, train, test, quick, head_init)
    recipe["train"]["self_training"] = {
        "unlabelled": str(pool),
        "rounds": 1 if quick else ST_ROUNDS,
        **rule,
    }
    start = time.perf_counter()
    report = _train(recipe).training["self_training"]
    rounds = report["rounds"]
    return {
        "alone": rounds[0]["test_accuracy"],
        "accuracy": rounds[report["kept_round"]]["test_accuracy"],
        "last_round": rounds[-1].get("test_accuracy"),
        "rounds": rounds,
        "pseudo_labels_used": report["pseudo_labels_used"],
        "seconds": round(time.perf_counter() - start, 1),
    }


def few_label_seed(
    data: Path, work: Path, seed: int, quick: bool, head_init: bool = False
) -> dict[str, Any]:
    """Return test accuracy with 200 labels alone, + self-training (each rule), + EDA, for one seed."""
    full = read_csv(data / "sst2" / "train.csv")
    labelled = stratified_sample(full, 200, seed)
    rest = full[~full["text"].isin(set(labelled["text"]))]
    pool = stratified_sample(rest, 1000 if quick else 8000, seed)[["text"]]
    folder = work / f"few-{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    labelled.to_csv(folder / "train.csv", index=False)
    pool.to_csv(folder / "pool.csv", index=False)
    paths = (folder / "train.csv", folder / "pool.csv", data / "sst2" / "test.csv")
    rules = {
        rule: _self_train(work, f"st-{rule}-{seed}", seed, paths, quick, cfg, head_init)
        for rule, cfg in ST_RULES.items()
    }
    eda = _few_label_recipe(work, f"eda-{seed}", seed, paths[0], paths[2], quick, head_init)
    eda["data"]["augment"] = {"method": "eda", "n": 4, "alpha": 0.1}
    start = time.perf_counter()
    augmented = _train(eda)
    return {
        "seed": seed,
        "alone": rules["threshold"]["alone"],
        "self_training": rules,
        "eda": augmented.metrics["accuracy"],
        "eda_rows_added": augmented.data_report["augmented_rows"],
        "eda_seconds": round(time.perf_counter() - start, 1),
    }


AL_FT_SCHEDULE = (50, 250, 500, 1000, 1500, 2000)
# smaller batches up to 1,000 labels: each is chosen by a model that has seen the one before
AL_FT_HEAD_SCHEDULE = (50, 250, 500, 750, 1000, 1500, 2000)
AL_FT_STRATEGIES = ("random", "margin")


def _al_ft_curve(
    pool: tuple[list[str], np.ndarray],
    test: tuple[list[str], np.ndarray],
    names: list[str],
    strategy: str,
    seed: int,
    schedule: tuple[int, ...],
    head_init: bool = False,
) -> list[float]:
    """Return test accuracy after each label count, fine-tuning MiniLM-L6 afresh at every count.

    With `head_init` every fit starts from the zero-shot head of the label names.
    """
    from modelyard.curation.active import QueryContext, select
    from modelyard.curation.audit_run import finetune_and_predict
    from modelyard.data.splits import Split
    from modelyard.recipe import build_recipe

    recipe = build_recipe(
        {
            "run": {"seed": seed},
            "data": {"path": "unused.csv"},
            "model": {
                "max_length": 64,
                "pooling": "mean",
                **({"head_init": {}} if head_init else {}),
            },
            "train": {"epochs": 5, "batch_size": 16, "lr": 1e-4, "checkpoint_every": None},
        }
    )
    texts, y = pool
    rng = np.random.default_rng(seed)
    labelled = rng.choice(len(texts), size=schedule[0], replace=False)
    probs = np.full((len(texts), len(names)), 1.0 / len(names))
    accuracies = []
    for step, target in enumerate(schedule):
        if target > len(labelled):
            rest = np.setdiff1d(np.arange(len(texts)), labelled)
            picked = select(strategy, QueryContext(probs[rest], rng), target - len(labelled))
            labelled = np.concatenate([labelled, rest[picked]])
        # the pool is scored only when a later batch will be chosen from it
        scored = texts if strategy != "random" and step < len(schedule) - 1 else []
        fit = Split([texts[i] for i in labelled], y[labelled].tolist())
        out = finetune_and_predict(recipe, fit, scored + test[0], names)
        if scored:
            probs = out[: len(texts)]
        accuracies.append(float((out[len(scored) :].argmax(axis=1) == test[1]).mean()))
        print(f"al_ft {strategy} seed {seed} {target}: {accuracies[-1]:.4f}", file=sys.stderr)
    return accuracies


def served_min_words(test: pd.DataFrame, quantile: float = 0.02) -> int:
    """Return the word count below which only `quantile` of the served (test) texts fall.

    Only the texts' lengths are read, never their labels: a team knows what its model will
    be asked about long before those texts are labelled.
    """
    from modelyard.curation.labeling import word_counts

    return int(np.floor(word_counts(test["text"]).quantile(quantile)))


def run_al_finetune(
    data: Path,
    quick: bool,
    seeds: int,
    head_init: bool = False,
    min_words: bool = False,
    reference: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Return random against margin sampling on SST-2 with a fine-tuned learner.

    `head_init`: the learner's head starts as the zero-shot classifier of the label names, and
    the schedule is AL_FT_HEAD_SCHEDULE. `min_words`: random on the whole pool against random
    and margin on the pool rows of at least `served_min_words(test)` words (what
    `label next --min-words` does). `reference`: recorded curves of random on the whole pool
    with the same learner, pool, seeds and schedule (the runs are deterministic: a rerun
    gives the same accuracies), used instead of training random again.
    """
    from modelyard.curation.labeling import word_counts
    from modelyard.curation.simulate import labels_to_match

    full = AL_FT_HEAD_SCHEDULE if head_init else AL_FT_SCHEDULE
    schedule = (50, 100, 200) if quick else full
    pool = stratified_sample(read_csv(data / "sst2" / "train.csv"), 500 if quick else 5000, SEED)
    test = read_csv(data / "sst2" / "test.csv")
    names = sorted(pool["label"].unique())
    pool_y = np.array([names.index(v) for v in pool["label"]])
    test_xy = (test["text"].tolist(), np.array([names.index(v) for v in test["label"]]))
    cut = served_min_words(test) if min_words else 0
    long_rows = np.nonzero(word_counts(pool["text"]).ge(cut).to_numpy())[0]
    variants = (
        [
            ("random", "random", 0),
            (f"random>={cut}w", "random", cut),
            (f"margin>={cut}w", "margin", cut),
        ]
        if min_words
        else [(s, s, 0) for s in AL_FT_STRATEGIES]
    )
    records = [r for r in reference or [] if r["strategy"] == "random" and r["seed"] < seeds]
    wanted = {(s, n) for s in range(seeds) for n in schedule}
    if records and {(r["seed"], r["labels"]) for r in records} == wanted:
        variants = [v for v in variants if v[0] != "random"]
    else:
        records = []
    reused = bool(records)
    start = time.perf_counter()
    for name, strategy, words in variants:
        at = long_rows if words else np.arange(len(pool))
        pool_xy = ([pool["text"].iloc[i] for i in at], pool_y[at])
        for seed in range(seeds):
            curve = _al_ft_curve(pool_xy, test_xy, names, strategy, seed, schedule, head_init)
            records += [
                {"strategy": name, "seed": seed, "labels": n, "accuracy": a}
                for n, a in zip(schedule, curve, strict=True)
            ]
    curves = pd.DataFrame(records)
    mean = curves.groupby(["strategy", "labels"])["accuracy"].mean().unstack("labels")
    matches = labels_to_match(curves)
    best = min((v for k, v in matches.items() if k != "random" and v is not None), default=None)
    return {
        "head_init": head_init,
        "min_words": cut,
        "pool_rows": len(pool),
        "pool_rows_min_words": len(long_rows),
        "random_reused_from_al_ft_head": reused,
        "test_rows": len(test),
        "seconds": round(time.perf_counter() - start, 1),
        "random_accuracy_at_max": round(float(mean.loc["random", schedule[-1]]), 4),
        "labels_to_match_random_at_max": matches,
        "best_labels_to_match": best,
        "mean_accuracy": {
            s: {int(n): round(float(a), 4) for n, a in row.items()} for s, row in mean.iterrows()
        },
        "curves": records,
    }


def run_few_labels(
    data: Path, work: Path, quick: bool, seeds: int, head_init: bool = False
) -> dict[str, Any]:
    """Return per-seed and median gains of self-training (each rule) and EDA over 200 labels alone.

    `head_init`: every model has mean pooling and its head started from the label names.
    """
    per_seed = [few_label_seed(data, work, SEED + s, quick, head_init) for s in range(seeds)]
    for row in per_seed:
        brief = {
            "seed": row["seed"],
            "alone": row["alone"],
            "eda": row["eda"],
            **{
                r: (x["accuracy"], x["pseudo_labels_used"]) for r, x in row["self_training"].items()
            },
        }
        print(f"few-label seed {row['seed']}: {json.dumps(brief)}", file=sys.stderr, flush=True)
    out: dict[str, Any] = {
        "per_seed": per_seed,
        "rules": ST_RULES,
        "rounds": ST_ROUNDS,
        "head_init": head_init,
    }
    for rule in ST_RULES:
        # the gain against the same run's round 0, so the two models share every setting
        gains = [
            r["self_training"][rule]["accuracy"] - r["self_training"][rule]["alone"]
            for r in per_seed
        ]
        out[f"self_training_gain_{rule}_median"] = round(statistics.median(gains), 4)
        out[f"self_training_gains_{rule}"] = [round(g, 4) for g in gains]
    eda = [r["eda"] - r["alone"] for r in per_seed]
    out["augment_gain_median"] = round(statistics.median(eda), 4)
    out["augment_gains"] = [round(g, 4) for g in eda]
    return out


AUDIT_KEYS = ("audit", "audit_finetune", "audit_finetune_head", "audit_dynamics")
# fine-tuned active-learning figures -> the suffix of their headline key
AL_FT_KEYS = {
    "active_learning_finetune": "finetune_learner",
    "active_learning_finetune_head": "finetune_head_learner",
    "active_learning_finetune_head_min_words": "finetune_head_min_words",
}


def headline(fig: dict[str, Any]) -> dict[str, Any]:
    """Return the JSON keys the issue names, from whatever parts have been run."""
    out: dict[str, Any] = {}
    names = {
        "audit": "",
        "audit_finetune": "_finetune_learner",
        "audit_finetune_head": "_finetune_head_learner",
        "audit_dynamics": "_dynamics_learner",
    }
    for key, suffix in names.items():
        for dataset, r in fig.get(key, {}).items():
            # older figures predate default_rule; every learner then applied `both`
            out[f"audit_f1_{dataset}{suffix}"] = r[r.get("default_rule", "cleanlab_both")]["f1"]
    if "audit_reference" in fig:
        for learner, r in fig["audit_reference"].items():
            out[f"audit_f1_sst2_clean_reference_{learner}"] = r["cleanlab_both"]["f1"]
    if "active_learning" in fig:
        al = fig["active_learning"]
        out["al_labels_to_match_random_2000_sst2"] = al["sst2"]["best_labels_to_match"]
        out["al_labels_to_match_random_2000_ag_news"] = al["ag_news"]["best_labels_to_match"]
    for key, name in AL_FT_KEYS.items():
        if key in fig:
            out[f"al_labels_to_match_random_2000_sst2_{name}"] = fig[key]["best_labels_to_match"]
    return out | _few_label_keys(fig)


def _few_label_keys(fig: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, suffix in (("few_labels", ""), ("few_labels_head", "_head_init")):
        if key in fig:
            few = fig[key]
            # the headline is curriculum labelling: with 200 labels the model is never 0.9
            # confident, so the fixed threshold adds nothing (reported next to it)
            out[f"self_training_gain{suffix}"] = few["self_training_gain_top_fraction_median"]
            out[f"self_training_gain_threshold_0.9{suffix}"] = few[
                "self_training_gain_threshold_median"
            ]
            out[f"augment_gain{suffix}"] = few["augment_gain_median"]
    return out


def markdown(fig: dict[str, Any]) -> str:
    """Return the figures as a markdown report."""
    from data_tools_report import render

    return render(fig)


def main() -> None:
    """Run the chosen parts, merge them into the results file, and write JSON and markdown."""
    parser = base_parser(__doc__ or NAME)
    parser.add_argument(
        "--parts",
        default="audit,al,selftrain",
        help="comma-separated: audit, audit_ft (fine-tuned learner), audit_ft_head (the same "
        "with mean pooling, the label-name head and 5 folds), audit_dyn (training dynamics of one "
        "fine-tune with the label-name head), audit_ref (learners "
        "trained on clean rows outside the SST-2 sample), al, al_ft (SST-2, fine-tuned learner), "
        "al_ft_head (the same, its head started from the label names), al_ft_words (the "
        "same, random and margin on pool rows at least as long as 98%% of the served texts), "
        "selftrain, selftrain_head (the same with the label-name head); "
        "none re-renders the report from the saved figures",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small slices, to develop the benchmark"
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the self-training/EDA runs")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    parts = set(args.parts.split(","))
    work = args.work / NAME
    work.mkdir(parents=True, exist_ok=True)
    results = args.results if not args.quick else Path(tempfile.mkdtemp(prefix="data-tools-quick-"))
    path = results / f"{NAME}.json"
    fig: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    # the headline keys are recomputed from the parts below, never carried over stale
    fig = {k: v for k, v in fig.items() if not k.startswith(HEADLINE_PREFIXES)}
    if "rules" not in fig.get("few_labels", {"rules": None}):
        fig.pop("few_labels")  # an earlier layout, with one self-training rule
    audits = {
        "audit": "embedding",
        "audit_ft": "finetune",
        "audit_ft_head": "finetune_head",
        "audit_dyn": "dynamics",
    }
    for (part, learner), key in zip(audits.items(), AUDIT_KEYS, strict=True):
        if part in parts:
            fig[key] = run_audit(args.data_dir, args.quick, learner)
    if "audit_ref" in parts:
        fig["audit_reference"] = run_audit_reference(args.data_dir, args.quick)
    if "al" in parts:
        fig["active_learning"] = run_al(args.data_dir, args.quick, work)
    seeds = 1 if args.quick else 3
    al_ft = {"al_ft": {}, "al_ft_head": {"head_init": True}}
    al_ft["al_ft_words"] = {"head_init": True, "min_words": True}
    # random on the whole pool, as al_ft_head recorded it: al_ft_words reuses those curves
    recorded = fig.get("active_learning_finetune_head", {}).get("curves")
    for part, key in zip(al_ft, AL_FT_KEYS, strict=True):
        if part in parts:
            reuse = {"reference": recorded} if part == "al_ft_words" and not args.quick else {}
            fig[key] = run_al_finetune(args.data_dir, args.quick, seeds, **al_ft[part], **reuse)
    for part, key in (("selftrain", "few_labels"), ("selftrain_head", "few_labels_head")):
        if part in parts:
            fig[key] = run_few_labels(
                args.data_dir,
                work,
                args.quick,
                1 if args.quick else args.seeds,
                part != "selftrain",
            )
    fig["machine"] = machine()
    fig["quick"] = args.quick
    out = {**headline(fig), **fig}
    write_results(results, NAME, out, markdown(out))
    print(json.dumps(headline(fig), indent=2))


if __name__ == "__main__":
    main()
