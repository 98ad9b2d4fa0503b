"""The global view: over many explanations, the words that push hardest toward each class."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from modelyard.explainability.results import Explanation


@dataclass(frozen=True)
class WordStat:
    """A word's mean attribution toward a class over the texts predicted as that class."""

    word: str
    mean: float
    count: int


@dataclass
class GlobalView:
    """Per predicted class, the words with the highest mean attribution (seen often enough)."""

    method: str
    n_texts: int
    min_count: int
    classes: dict[str, list[WordStat]]

    def to_dict(self) -> dict[str, Any]:
        """Return the view as JSON-ready data."""
        return asdict(self)

    def shortfall(self) -> str:
        """Return why the view is empty for some classes and how many texts it needs, or ""."""
        empty = [label for label, stats in self.classes.items() if not stats]
        if self.classes and not empty:
            return ""
        which = f" for {', '.join(empty)}" if empty else ""
        return (
            f"no top words{which}: a word counts once it appears in at least {self.min_count} "
            f"texts explained as the same class, so the global view needs at least "
            f"{self.min_count} texts per class, and words shared across them (got "
            f"{self.n_texts} texts in all; 20 or more per class give a readable view)"
        )

    def markdown(self) -> str:
        """Return one markdown table per class: word, mean attribution, count."""
        lines = [
            f"# Top words per class ({self.method}, {self.n_texts} texts, "
            f"words seen at least {self.min_count} times)",
        ]
        if self.shortfall():
            lines += ["", f"**Note:** {self.shortfall()}."]
        for label, stats in self.classes.items():
            lines += ["", f"## {label}", "", "| word | mean attribution | count |", "|---|---|---|"]
            lines += [f"| {s.word} | {s.mean:.4f} | {s.count} |" for s in stats]
        return "\n".join(lines) + "\n"


def global_view(
    explanations: Iterable[Explanation], top: int = 10, min_count: int = 2
) -> GlobalView:
    """Return the `top` words per predicted class by mean attribution (case-folded words).

    A word counts toward the class its text was explained for; words seen fewer than
    `min_count` times in that class are left out, so one-off words do not dominate.
    """
    sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    methods: set[str] = set()
    n = 0
    for exp in explanations:
        n += 1
        methods.add(exp.method)
        for w in exp.words:
            sums[exp.label][w.word.casefold()].append(w.score)
    classes = {}
    for label in sorted(sums):
        stats = [
            WordStat(word, sum(v) / len(v), len(v))
            for word, v in sums[label].items()
            if len(v) >= min_count
        ]
        classes[label] = sorted(stats, key=lambda s: (-s.mean, s.word))[:top]
    return GlobalView(", ".join(sorted(methods)), n, min_count, classes)


def plot_global(view: GlobalView, path: Path) -> Path:
    """Draw one horizontal bar chart per class into a PNG at `path`; return `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(view.classes) or ["(none)"]
    rows = max([len(s) for s in view.classes.values()] + [1])
    fig, axes = plt.subplots(
        1, len(labels), figsize=(4.2 * len(labels), 0.35 * rows + 1.2), squeeze=False
    )
    for ax, label in zip(axes[0], labels, strict=True):
        stats = view.classes.get(label, [])[::-1]
        ax.barh([f"{s.word} ({s.count})" for s in stats], [s.mean for s in stats], color="#2a9d8f")
        ax.set_title(label)
        ax.set_xlabel("mean attribution")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
