"""Turning a growing list of token ids into text deltas, cut at the first stop sequence.

A stream must never show text that a later token turns into a stop sequence, nor half a
character: text that could still be the start of a stop sequence, or that ends in an
incomplete UTF-8 character, is held back until the next token settles it.
"""

from __future__ import annotations

from typing import Any

_REPLACEMENT = "\ufffd"


class TextTracker:
    """Decodes one sequence's tokens and yields the text not yet shown, up to a stop sequence."""

    def __init__(self, tokenizer: Any, stop: tuple[str, ...] = ()) -> None:
        self.tokenizer = tokenizer
        self.stop = tuple(s for s in stop if s)
        self.ids: list[int] = []
        self.shown = 0
        self.text = ""
        self.stopped = False

    def add(self, token: int) -> str:
        """Append `token`; return the new text that can be shown now ("" while held back).

        After a stop sequence appears, `stopped` is True and `text` ends just before it.
        """
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        cut = self._first_stop(text)
        if cut is not None:
            self.stopped = True
            self.text = text[:cut]
            return self._show(len(self.text))
        self.text = text
        settled = len(text) - self._held_back(text)
        return self._show(settled)

    def flush(self) -> str:
        """Return the text held back so far (the sequence has ended without a stop sequence)."""
        return self._show(len(self.text))

    def _show(self, upto: int) -> str:
        if upto <= self.shown:
            return ""
        delta = self.text[self.shown : upto]
        self.shown = upto
        return delta

    def _first_stop(self, text: str) -> int | None:
        # a stop sequence can only begin in text not shown yet (shown text had no stop in it)
        found = [
            at for s in self.stop if (at := text.find(s, max(0, self.shown - len(s) + 1))) >= 0
        ]
        return min(found) if found else None

    def _held_back(self, text: str) -> int:
        held = 1 if text.endswith(_REPLACEMENT) else 0
        for s in self.stop:
            for k in range(min(len(s) - 1, len(text)), 0, -1):
                if text.endswith(s[:k]):
                    held = max(held, k)
                    break
        return held
