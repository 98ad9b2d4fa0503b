"""Stop sequences and held-back text in streamed answers, and per-row sampling."""

from __future__ import annotations

import torch

from modelyard.generation.sampling import choose_tokens, top_p_filter
from modelyard.generation.stops import TextTracker


class CharTokenizer:
    """Token i is the i-th character of a fixed alphabet; 99 is half a UTF-8 character."""

    alphabet = "abcdefgh XYZ."

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join("\ufffd" if i == 99 else self.alphabet[i] for i in ids)


def feed(tracker: TextTracker, text: str) -> list[str]:
    """Return the delta shown after each character of `text`."""
    return [tracker.add(CharTokenizer.alphabet.index(c)) for c in text]


def test_text_that_may_start_a_stop_sequence_is_held_back() -> None:
    tracker = TextTracker(CharTokenizer(), ("XYZ",))
    assert feed(tracker, "abX") == ["a", "b", ""]
    assert feed(tracker, "Y") == [""]
    assert feed(tracker, "a") == ["XYa"]  # not a stop after all: released
    assert not tracker.stopped


def test_a_stop_sequence_ends_the_text_before_it() -> None:
    tracker = TextTracker(CharTokenizer(), ("XYZ", "h."))
    shown = "".join(feed(tracker, "abcXYZ"))
    assert tracker.stopped
    assert shown == tracker.text == "abc"


def test_the_earliest_stop_sequence_wins() -> None:
    tracker = TextTracker(CharTokenizer(), ("cd", "b"))
    assert "".join(feed(tracker, "abcd")) == "a"
    assert tracker.stopped


def test_flush_releases_what_was_held_back() -> None:
    tracker = TextTracker(CharTokenizer(), ("XYZ",))
    assert "".join(feed(tracker, "aXY")) == "a"
    assert tracker.flush() == "XY"


def test_half_a_character_waits_for_the_rest() -> None:
    tracker = TextTracker(CharTokenizer())
    assert tracker.add(0) == "a"
    assert tracker.add(99) == ""
    assert tracker.add(1) == "\ufffdb"


def test_top_p_keeps_the_smallest_nucleus() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = top_p_filter(logits, torch.tensor([0.7])).isfinite()
    assert kept.tolist() == [[True, True, False, False]]
    assert top_p_filter(logits, torch.tensor([0.01])).isfinite().sum() == 1


def test_rows_choose_by_their_own_settings() -> None:
    logits = torch.tensor([[0.0, 5.0, 1.0], [0.0, 0.0, 0.0]])
    generators = [None, torch.Generator().manual_seed(3)]
    first = choose_tokens(logits, [0.0, 1.0], [1.0, 1.0], generators)
    again = choose_tokens(logits, [0.0, 1.0], [1.0, 1.0], [None, torch.Generator().manual_seed(3)])
    assert first[0] == 1  # greedy
    assert first == again  # seeded


def test_greedy_picks_the_first_of_tied_tokens_in_any_precision() -> None:
    logits = torch.tensor([[0.0, 3.0, 3.0, 1.0], [2.0, 0.0, 2.0, 2.0]])
    expected = logits.argmax(dim=-1).tolist()
    assert choose_tokens(logits, [0.0, 0.0], [1.0, 1.0], [None, None]) == expected == [1, 0]
    assert choose_tokens(logits.bfloat16(), [0.0, 0.0], [1.0, 1.0], [None, None]) == [1, 0]
