"""The PII-detector sweep over examples of every registered detector, and the detector check
failing on deliberately broken detectors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from modelyard.data.pii import DETECTORS
from modelyard.recipe import PiiConfig
from modelyard.testing import BoundCheck, check_pii_detector, parametrize_with_checks

# (text, value the detector must find) per registered detector, and look-alikes it must leave
EXAMPLES = {
    "credit_card": [("visa 4111 1111 1111 1111 ok", "4111 1111 1111 1111")],
    "email": [("write to john.doe@example.com today", "john.doe@example.com")],
    "iban": [("pay GB82WEST12345698765432 now", "GB82WEST12345698765432")],
    "ip": [("from 192.168.0.1 again", "192.168.0.1"), ("v6 2001:db8::1 host", "2001:db8::1")],
    "phone": [("call +1 415-555-2671 now", "+1 415-555-2671")],
    "url": [("see https://example.com/a?b=1.", "https://example.com/a?b=1")],
}
NEGATIVES = {
    "credit_card": ["visa 4111 1111 1111 1112 fails the Luhn check"],
    "email": ["mail user@localhost or ping @handle"],
    "iban": ["iban DE89 3704 0044 0532 0130 01 has a wrong checksum"],
    "ip": ["ip 999.1.1.1 is out of range"],
    "phone": ["order 123456 costs 3.14159 dollars"],
    "url": ["a sentence.with a dot"],
}


def test_every_detector_has_examples() -> None:
    assert sorted(EXAMPLES) == sorted(NEGATIVES) == DETECTORS.names()


@parametrize_with_checks("pii-detector")
def test_detector_keeps_its_contract(entry: str, check: BoundCheck) -> None:
    check(EXAMPLES[entry], negatives=NEGATIVES[entry])


def _pattern(regex: str) -> Any:
    def detect(text: str, cfg: PiiConfig) -> Iterator[tuple[int, int]]:
        for match in re.finditer(regex, text):
            yield match.span()

    return detect


def _one_past_the_end(text: str, cfg: PiiConfig) -> Iterator[tuple[int, int]]:
    for match in re.finditer(r"\d{6}", text):
        yield match.start(), match.end() + 50


@pytest.mark.parametrize(
    ("detector", "examples", "clause"),
    [
        # a placeholder [CODE] is itself three capitals in a row: redacting again finds it
        (_pattern(r"[A-Z]{3,}"), [("ticket ABC here", "ABC")], "redacting twice changes nothing"),
        (_pattern(r"\d{6}"), [("order 12345678", "12345678")], "finds its own examples"),
        (_one_past_the_end, [("order 123456", "123456")], "spans lie within the text"),
        (_pattern(r"\d*"), [("order 123456", "123456")], "are not empty"),
    ],
)
def test_a_broken_detector_fails_naming_the_clause(
    detector: Any, examples: list[tuple[str, str]], clause: str
) -> None:
    with pytest.raises(AssertionError, match=f"PII detector 'code' breaks .*{clause}"):
        check_pii_detector(detector, examples, name="code")


def test_a_detector_firing_on_look_alikes_fails() -> None:
    with pytest.raises(AssertionError, match="leaves look-alikes alone"):
        check_pii_detector(
            _pattern(r"\d{6,}"), [("id 123456", "123456")], name="code", negatives=["year 202412"]
        )
