"""Terminal and HTML rendering: colours, figures, and a page with no external references."""

from __future__ import annotations

import re

from rich.console import Console

from modelyard.explainability import Explanation, WordScore, global_view
from modelyard.explainability.api import explain
from modelyard.explainability.render import delta_note, html_page, shade, terminal_text
from modelyard.registry import LoadedRun
from tests.explainability.conftest import KEY

# anything that would make a browser fetch a resource or run code from elsewhere
EXTERNAL = re.compile(
    r"https?:|//[a-z0-9]|<script|<link|<iframe|<img|@import|url\(|src=|href=|@font-face",
    re.IGNORECASE,
)


def test_shade_goes_from_white_to_green_or_red() -> None:
    assert shade(0.0, 1.0) == (255, 255, 255)
    assert shade(1.0, 1.0) == (26, 150, 65)
    assert shade(-5.0, 1.0) == (215, 48, 39)  # clipped at full strength
    assert shade(1.0, 0.0) == (255, 255, 255)  # all-zero explanation: no colour


def test_html_is_self_contained_and_shows_heatmap_and_probabilities(key_run: LoadedRun) -> None:
    exps = explain(key_run, [f"my {KEY} is late", "the parcel is late"], method="ig")
    page = html_page(exps, "tiny", global_view(exps, min_count=1))
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not EXTERNAL.findall(page)
    assert page.count('class="exp"') == 2
    assert f'title="{exps[0].words[1].score:+.4f}">{KEY}</span>' in page
    assert f"<td>yes</td><td>{exps[0].probabilities['yes']:.3f}</td>" in page
    assert "convergence delta" in page and "Top words per class" in page


def test_html_escapes_the_text() -> None:
    text = '<script>alert("x")</script> & <b>'
    words = [
        WordScore(text[m.start() : m.end()], m.start(), m.end(), 0.1)
        for m in re.finditer(r"\S+", text)
    ]
    page = html_page([Explanation(text, "occlusion", "yes", {"yes": 1.0}, words)], "<t>")
    assert "<script" not in page and "&lt;script&gt;" in page and "<title>&lt;t&gt;</title>" in page


def test_terminal_text_colours_every_word_and_keeps_the_text(key_run: LoadedRun) -> None:
    [exp] = explain(key_run, f"my {KEY},  is late", method="occlusion")
    text = terminal_text(exp)
    assert text.plain.startswith(f"my {KEY},  is late\n")
    assert "occlusion -> yes" in text.plain
    coloured = [text.plain[s.start : s.end] for s in text.spans if "on rgb" in str(s.style)]
    assert coloured == ["my", KEY, ",", "is", "late"]
    console = Console(record=True, color_system="truecolor", width=120)
    console.print(text)
    assert "\x1b[" in console.export_text(styles=True)


def test_a_large_convergence_delta_comes_with_advice(key_run: LoadedRun) -> None:
    text = f"my card {KEY} is late, please!"
    # the error of a coarse Riemann sum is not monotone in the steps: take the worst few
    rough = max(
        (explain(key_run, text, method="ig", steps=s)[0] for s in (2, 3, 4, 5)),
        key=lambda e: e.relative_delta() or 0.0,
    )
    [fine] = explain(key_run, text, method="ig", steps=80)
    assert rough.relative_delta() > fine.relative_delta()  # type: ignore[operator]
    assert "raise --steps" in delta_note(rough) and "raise --steps" in terminal_text(rough).plain
    assert delta_note(fine).startswith("convergence delta") and "raise" not in delta_note(fine)
    assert explain(key_run, text, method="occlusion")[0].relative_delta() is None
