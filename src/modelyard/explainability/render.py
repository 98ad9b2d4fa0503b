"""Show explanations: coloured terminal text (rich), one self-contained HTML page, JSON.

The HTML page carries its own CSS and no script, font, image or link that points outside
the file, so it opens offline and can be mailed or archived as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from rich.text import Text

from modelyard.explainability.overview import GlobalView
from modelyard.explainability.results import Explanation

# above this share of the output change, IG's integral has not converged: say so
_DELTA_WARNING = 0.05
_POSITIVE = (26, 150, 65)
_NEGATIVE = (215, 48, 39)


def shade(score: float, scale: float) -> tuple[int, int, int]:
    """Return an RGB colour from white (0) toward green (+scale) or red (-scale)."""
    strength = min(1.0, abs(score) / scale) if scale > 0 else 0.0
    r, g, b = _POSITIVE if score >= 0 else _NEGATIVE
    return tuple(round(255 + (c - 255) * strength) for c in (r, g, b))  # type: ignore[return-value]


def _scale(exp: Explanation) -> float:
    return max((abs(w.score) for w in exp.words), default=0.0)


def _pieces(exp: Explanation) -> list[tuple[str, float | None]]:
    """Return the text as (chunk, score) pairs: words with scores, gaps with None."""
    out: list[tuple[str, float | None]] = []
    cursor = 0
    for w in exp.words:
        if w.start > cursor:
            out.append((exp.text[cursor : w.start], None))
        out.append((w.word, w.score))
        cursor = w.end
    if cursor < len(exp.text):
        out.append((exp.text[cursor:], None))
    return out


def terminal_text(exp: Explanation) -> Text:
    """Return the text with each word's background coloured by its attribution, then the figures."""
    scale = _scale(exp)
    text = Text()
    for chunk, score in _pieces(exp):
        if score is None:
            text.append(chunk)
        else:
            text.append(chunk, style="black on rgb({},{},{})".format(*shade(score, scale)))
    text.append(
        f"\n{exp.method} -> {exp.label}   probabilities: {top_probabilities(exp)}", style="dim"
    )
    note = delta_note(exp)
    if note:
        text.append(f"   {note}", style="bold yellow" if "raise" in note else "dim")
    return text


# the most probable classes shown beside an explanation; the JSON keeps every class
TOP_K = 5


def _top(exp: Explanation) -> list[tuple[str, float]]:
    return sorted(exp.probabilities.items(), key=lambda kv: -kv[1])[:TOP_K]


def top_probabilities(exp: Explanation) -> str:
    """Return the TOP_K most probable classes as `label 0.123` pairs, and how many are left out."""
    shown = "  ".join(f"{k} {v:.3f}" for k, v in _top(exp))
    rest = len(exp.probabilities) - TOP_K
    return shown + (f"  (+{rest} more in --json)" if rest > 0 else "")


def delta_note(exp: Explanation) -> str:
    """Return the IG convergence delta as a note, with advice when it is large, or ""."""
    share = exp.relative_delta()
    if exp.delta is None or share is None:
        return ""
    note = f"convergence delta {exp.delta:+.2e}"
    if share > _DELTA_WARNING:
        note += f" ({share:.0%} of the output change: raise --steps)"
    return note


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#222;max-width:70rem}
.exp{border:1px solid #ddd;border-radius:6px;padding:.8rem 1rem;margin:1rem 0}
.text{font-size:1.1rem;line-height:2}
.text span{padding:.15rem .1rem;border-radius:3px}
.meta{color:#555;font-size:.9rem}
table{border-collapse:collapse;margin:.4rem 0}
td,th{padding:.15rem .6rem;text-align:left;font-size:.9rem}
.bar{display:inline-block;height:.8rem;background:#2a9d8f;vertical-align:middle}
.legend span{padding:.1rem .5rem;border-radius:3px;margin-right:.4rem}
"""


def _rgb(colour: tuple[int, int, int]) -> str:
    return "rgb({},{},{})".format(*colour)


def _explanation_html(exp: Explanation, index: int) -> str:
    scale = _scale(exp)
    spans = [
        escape(chunk)
        if score is None
        else f'<span style="background:{_rgb(shade(score, scale))}" '
        f'title="{score:+.4f}">{escape(chunk)}</span>'
        for chunk, score in _pieces(exp)
    ]
    rows = "".join(
        f"<tr><td>{escape(label)}</td><td>{p:.3f}</td>"
        f'<td><span class="bar" style="width:{p * 10:.2f}rem"></span></td></tr>'
        for label, p in _top(exp)
    )
    note = delta_note(exp)
    delta = f" · {escape(note)}" if note else ""
    cut = " · truncated: words past the model's max length scored 0" if exp.truncated else ""
    return (
        f'<section class="exp"><div class="meta">#{index} · {escape(exp.method)} · explains '
        f"<b>{escape(exp.label)}</b> ({escape(exp.units)}){delta}{cut}</div>"
        f'<p class="text">{"".join(spans)}</p><table>{rows}</table></section>'
    )


def _global_html(view: GlobalView) -> str:
    parts = [
        f"<h2>Top words per class</h2><p class='meta'>{escape(view.method)}, {view.n_texts} texts, "
        f"words seen at least {view.min_count} times; bars are mean attribution</p>"
    ]
    if view.shortfall():
        parts.append(f"<p class='meta'><b>Note:</b> {escape(view.shortfall())}.</p>")
    for label, stats in view.classes.items():
        # per class: one dominant word in one class must not flatten the other classes
        top = max((abs(s.mean) for s in stats), default=0.0) or 1.0
        rows = "".join(
            f"<tr><td>{escape(s.word)}</td><td>{s.mean:+.4f}</td><td>{s.count}</td>"
            f'<td><span class="bar" style="width:{max(0.0, s.mean) / top * 12:.2f}rem">'
            "</span></td></tr>"
            for s in stats
        )
        parts.append(
            f"<h3>{escape(label)}</h3><table><tr><th>word</th><th>mean</th><th>count</th>"
            f"<th></th></tr>{rows}</table>"
        )
    return "".join(parts)


def html_page(
    explanations: Sequence[Explanation], title: str, view: GlobalView | None = None
) -> str:
    """Return a self-contained HTML page: word heatmaps, probabilities and the global view."""
    legend = (
        '<p class="legend meta">'
        f'<span style="background:{_rgb(_POSITIVE)};color:#fff">toward the label</span>'
        f'<span style="background:{_rgb(_NEGATIVE)};color:#fff">against it</span>'
        "hover a word for its score</p>"
    )
    body = "".join(_explanation_html(e, i + 1) for i, e in enumerate(explanations))
    extra = _global_html(view) if view is not None else ""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>{legend}{extra}<h2>Explanations</h2>{body}</body></html>\n"
    )
