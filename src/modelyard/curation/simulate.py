"""Simulated active learning: a labelled set plays the annotator, so strategies can be
compared by accuracy against the number of labels, before anyone labels anything.

The learner is logistic regression on frozen, unit-length backbone embeddings, computed
once: each step costs a fit on at most a few thousand rows, so several strategies, seeds
and thousands of labels run in minutes on a laptop CPU.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from modelyard.curation.active import QueryContext, select
from modelyard.errors import DataError
from modelyard.recipe import DEFAULT_BACKBONE, DEFAULT_MAX_LENGTH


def label_schedule(start: int, step: int, stop: int) -> list[int]:
    """Return the label counts evaluated: start, start + step, ..., up to and including stop.

    Raises DataError unless 0 < start <= stop and step > 0.
    """
    if not (0 < start <= stop and step > 0):
        raise DataError(
            f"labels schedule start={start}, step={step}, stop={stop}: need 0 < start <= stop "
            "and step > 0"
        )
    counts = list(range(start, stop + 1, step))
    return counts if counts[-1] == stop else [*counts, stop]


def _fit_score(
    x: np.ndarray, y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, c: float
) -> tuple[LogisticRegression | None, float]:
    if len(np.unique(y)) < 2:  # a one-class start: predict that class
        return None, float((test_y == y[0]).mean())
    model = LogisticRegression(C=c, max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y)
    return model, float((model.predict(test_x) == test_y).mean())


def _pool_probs(
    model: LogisticRegression | None, x: np.ndarray, y: np.ndarray, k: int
) -> np.ndarray:
    probs = np.full((len(x), k), 1.0 / k)
    if model is not None:
        probs[:, model.classes_] = model.predict_proba(x)
    else:
        probs[:, y[0]] = 1.0
    return probs


def simulate_curve(
    pool: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    strategy: str,
    schedule: list[int],
    seed: int,
    c: float = 1.0,
) -> list[float]:
    """Return the test accuracy after each label count of `schedule` for one strategy and seed.

    The first `schedule[0]` labels are drawn at random (the same for every strategy with
    this seed); the strategy picks every later batch from the rows not yet labelled.
    """
    x, y = pool
    classes = int(max(y.max(), test[1].max())) + 1
    rng = np.random.default_rng(seed)
    labelled = rng.choice(len(x), size=schedule[0], replace=False)
    model: LogisticRegression | None = None
    accuracies: list[float] = []
    for target in schedule:
        if target > len(labelled):
            rest = np.setdiff1d(np.arange(len(x)), labelled)
            ctx = QueryContext(_pool_probs(model, x[rest], y, classes), rng, x[rest], x[labelled])
            labelled = np.concatenate(
                [labelled, rest[select(strategy, ctx, target - len(labelled))]]
            )
        model, accuracy = _fit_score(x[labelled], y[labelled], *test, c)
        accuracies.append(accuracy)
    return accuracies


def simulate_active_learning(
    pool: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    strategies: list[str],
    schedule: list[int],
    seeds: list[int],
    c: float = 1.0,
) -> pd.DataFrame:
    """Return a long table (strategy, seed, labels, accuracy) over every strategy and seed.

    Raises DataError when the schedule asks for more labels than the pool holds, and
    UnknownPluginError for an unknown strategy.
    """
    if schedule[-1] > len(pool[0]):
        raise DataError(
            f"the schedule goes up to {schedule[-1]} labels but the pool has {len(pool[0])} rows"
        )
    records = []
    for strategy in strategies:
        for seed in seeds:
            # small fits: two BLAS threads mostly spin against each other (30x slower measured)
            with threadpool_limits(1):
                curve = simulate_curve(pool, test, strategy, schedule, seed, c)
            records += [
                {"strategy": strategy, "seed": seed, "labels": n, "accuracy": a}
                for n, a in zip(schedule, curve, strict=True)
            ]
    return pd.DataFrame(records)


def labels_to_match(curves: pd.DataFrame, reference: str = "random") -> dict[str, int | None]:
    """Return, per strategy, the fewest labels whose mean accuracy reaches the reference
    strategy's mean accuracy at its largest label count (None if it never does)."""
    mean = curves.groupby(["strategy", "labels"])["accuracy"].mean().reset_index()
    ref = mean[mean["strategy"] == reference].sort_values("labels")
    target = float(ref["accuracy"].iloc[-1])
    result: dict[str, int | None] = {}
    for strategy, rows in mean.groupby("strategy"):
        reached = rows[rows["accuracy"] >= target]["labels"]
        result[str(strategy)] = int(reached.min()) if len(reached) else None
    return result


def plot_curves(curves: pd.DataFrame, path: Path, title: str) -> Path:
    """Draw mean accuracy (band: min to max over seeds) against labels per strategy; return `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = curves.groupby(["strategy", "labels"])["accuracy"].agg(["mean", "min", "max"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for strategy, rows in stats.groupby(level="strategy"):
        x = rows.index.get_level_values("labels")
        ax.plot(x, rows["mean"], label=str(strategy))
        ax.fill_between(x, rows["min"], rows["max"], alpha=0.15)
    ax.set(xlabel="labels", ylabel="test accuracy", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _read_labelled(path: Path, text_column: str, label_column: str) -> tuple[list[str], list[str]]:
    from modelyard.data.load import read_table

    table = read_table(path)
    missing = [c for c in (text_column, label_column) if c not in table.columns]
    if missing:
        raise DataError(
            f"{path}: no column(s) {', '.join(missing)}; columns are: "
            f"{', '.join(map(str, table.columns))}. Pass --text-column / --label-column."
        )
    keep = table[text_column].str.strip().ne("") & table[label_column].str.strip().ne("")
    return table.loc[keep, text_column].tolist(), table.loc[keep, label_column].tolist()


def simulate_files(
    data: Path,
    test: Path,
    output: Path,
    strategies: list[str],
    schedule: list[int],
    seeds: list[int],
    backbone: str = DEFAULT_BACKBONE,
    text_column: str = "text",
    label_column: str = "label",
    max_length: int = DEFAULT_MAX_LENGTH,
    min_words: int = 0,
) -> dict[str, object]:
    """Simulate active learning with `data` as the pool and oracle and `test` for accuracy;
    write curves.csv, curves.png and summary.json into `output` and return the summary.

    With `min_words` the pool keeps only rows of at least that many words.

    Raises DataError for unreadable files, missing columns, test labels absent from the
    pool or a schedule beyond the pool, and UnknownPluginError for an unknown strategy.
    """
    from modelyard.curation.embed import Embedder
    from modelyard.fsutil import atomic_write_json, atomic_write_text

    texts, labels = _read_labelled(data, text_column, label_column)
    all_rows = len(texts)
    if min_words > 0:
        kept = [(t, v) for t, v in zip(texts, labels, strict=True) if len(t.split()) >= min_words]
        texts, labels = [t for t, _ in kept], [v for _, v in kept]
        if schedule[-1] > len(texts):
            raise DataError(
                f"the schedule goes up to {schedule[-1]} labels but the pool has {len(texts)} "
                f"rows with at least {min_words} words (of {all_rows}); lower --max-labels "
                "or --min-words"
            )
    test_texts, test_labels = _read_labelled(test, text_column, label_column)
    names = sorted(set(labels))
    unseen = sorted(set(test_labels) - set(names))
    if unseen:
        raise DataError(f"{test}: label(s) {', '.join(unseen)} never occur in {data}")
    embedder = Embedder.from_backbone(backbone, max_length)
    pool = (embedder.encode(texts), np.asarray([names.index(v) for v in labels]))
    held = (embedder.encode(test_texts), np.asarray([names.index(v) for v in test_labels]))
    curves = simulate_active_learning(pool, held, strategies, schedule, seeds)
    atomic_write_text(output / "curves.csv", curves.to_csv(index=False))
    plot_curves(curves, output / "curves.png", f"active learning on {data.name}")
    final = curves[curves["labels"] == schedule[-1]].groupby("strategy")["accuracy"].mean()
    summary: dict[str, object] = {
        "learner": "logistic regression on frozen mean-pooled embeddings",
        "backbone": backbone,
        "pool_rows": len(texts),
        "pool_rows_before_min_words": all_rows,
        "min_words": min_words,
        "test_rows": len(test_texts),
        "seeds": seeds,
        "accuracy_at_max_labels": {str(k): round(float(v), 4) for k, v in final.items()},
        "labels_to_match_random": labels_to_match(curves) if "random" in strategies else None,
    }
    atomic_write_json(output / "summary.json", summary)
    return summary
