"""The contract of personal-data detectors (`modelyard.data.pii.DETECTORS`)."""

from __future__ import annotations

from collections.abc import Sequence

from modelyard.data.pii import DETECTORS, Detector
from modelyard.recipe import PiiConfig
from modelyard.testing.contract import Contract


def check_pii_detector(
    detector: Detector | str,
    examples: Sequence[tuple[str, str]],
    *,
    name: str | None = None,
    negatives: Sequence[str] = (),
    cfg: PiiConfig | None = None,
) -> None:
    """Check a PII detector on `examples`, (text, value) pairs where it must find `value`.

    Each span it yields is a pair of ints with 0 <= start < end <= len(text); it finds
    every example's value as one span; it is deterministic; it finds nothing in an empty
    text or in the `negatives`; and once its spans are replaced by its placeholder
    (`[NAME]`, from `name` or the registered name), it finds nothing more, so redacting
    twice changes nothing. Returns None; raises AssertionError naming the broken clause,
    ValueError when no example is given.
    """
    if not examples:
        raise ValueError("check_pii_detector needs at least one (text, value) example")
    label = detector if isinstance(detector, str) else name
    if label is None:
        raise ValueError("give the detector's name, which its placeholder [NAME] is made of")
    fn = DETECTORS.get(detector) if isinstance(detector, str) else detector
    c = Contract("PII detector", label)
    cfg = cfg or PiiConfig()
    c.require(not _spans(c, fn, "", cfg), "finds nothing in an empty text")
    for text, value in examples:
        spans = _spans(c, fn, text, cfg)
        c.require(
            value in [text[a:b] for a, b in spans],
            "finds its own examples",
            f"{value!r} in {text!r}; found {[text[a:b] for a, b in spans]}",
        )
        c.require(spans == _spans(c, fn, text, cfg), "is deterministic", repr(text))
        redacted = _redact(text, spans, f"[{label.upper()}]")
        again = _spans(c, fn, redacted, cfg)
        c.require(
            not again,
            "redacting twice changes nothing (it finds nothing in its own redacted output)",
            f"{redacted!r}: found {[redacted[a:b] for a, b in again]}",
        )
    for text in negatives:
        found = [text[a:b] for a, b in _spans(c, fn, text, cfg)]
        c.require(not found, "leaves look-alikes alone", f"found {found} in {text!r}")


def _spans(c: Contract, fn: Detector, text: str, cfg: PiiConfig) -> list[tuple[int, int]]:
    spans = [tuple(span) for span in fn(text, cfg)]
    for span in spans:
        c.require(
            len(span) == 2 and all(isinstance(x, int) for x in span),
            "yields (start, end) pairs of ints",
            f"got {span!r}",
        )
        c.require(
            0 <= span[0] < span[1] <= len(text),
            "spans lie within the text and are not empty",
            f"{span} in a text of {len(text)} characters",
        )
    return [(int(a), int(b)) for a, b in spans]


def _redact(text: str, spans: list[tuple[int, int]], placeholder: str) -> str:
    # overlapping spans are merged, as one piece of personal data
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    for start, end in reversed(merged):
        text = text[:start] + placeholder + text[end:]
    return text
