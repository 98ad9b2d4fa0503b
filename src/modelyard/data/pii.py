"""Find and replace personal data in texts: e-mail addresses, phone numbers, credit-card
numbers (Luhn-checked), IBANs (mod-97-checked), IP addresses, URLs and custom patterns.

Each match is replaced by a placeholder such as ``[EMAIL]``. Placeholders are never
matched again, so redacting redacted text changes nothing.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pandas as pd

from modelyard.data.validate import DataReport
from modelyard.plugins import Registry, require
from modelyard.recipe import DataConfig, PiiConfig


@dataclass(frozen=True)
class PiiMatch:
    """One piece of personal data: its type, where it is in the text, and the text itself."""

    kind: str
    start: int
    end: int
    value: str


Detector = Callable[[str, PiiConfig], Iterator[tuple[int, int]]]
DETECTORS: Registry[Detector] = Registry("PII detector")
# when two detectors claim overlapping text, the earlier type in this order wins
PRIORITY = ("url", "email", "iban", "credit_card", "ip", "phone")

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])"
)
_URL = re.compile(r"\b(?:(?:https?|ftp)://|www\.)[^\s<>\"'\[\]]+", re.IGNORECASE)
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_TRAILING = ".,;:!?)'\""


def luhn_valid(digits: str) -> bool:
    """Return True when the digit string passes the Luhn checksum of payment-card numbers."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    """Return True when `candidate` (spaces allowed) is 15-34 characters and passes ISO 13616 mod-97."""
    compact = candidate.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact.isalnum():
        return False
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in moved)
    return int(number) % 97 == 1


@DETECTORS.register("email")
def _emails(text: str, cfg: PiiConfig) -> Iterator[tuple[int, int]]:
    for match in _EMAIL.finditer(text):
        yield match.span()


@DETECTORS.register("url")
def _urls(text: str, cfg: PiiConfig) -> Iterator[tuple[int, int]]:
    for match in _URL.finditer(text):
        end = match.end()
        while end > match.start() and text[end - 1] in _TRAILING:
            end -= 1
        yield match.start(), end


@DETECTORS.register("credit_card")
def _cards(text: str, cfg: PiiConfig) -> Iterator[tuple[int, int]]:
    for match in _CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        # issuer numbers start 2-6 (Mastercard, Amex/Diners/JCB, Visa, Mastercard, Discover)
        if 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_valid(digits):
            yield match.span()


@DETECTORS.register("iban")
def _ibans(text: str, cfg: PiiConfig) -> Iterator[tuple[int, int]]:
    for match in _IBAN.finditer(text):
        candidate = match.group()
        # the pattern may run on into a following capitalised word: drop trailing groups
        while len(candidate.replace(" ", "")) >= 15:
            if iban_valid(candidate):
                yield match.start(), match.start() + len(candidate)
                break
            candidate = candidate.rsplit(" ", 1)[0] if " " in candidate else candidate[:-1]


def _valid_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


@DETECTORS.register("ip")
def _ips(text: str, cfg: PiiConfig) -> Iterator[tuple[int, int]]:
    for pattern in (_IPV4, _IPV6):
        for match in pattern.finditer(text):
            value = match.group()
            if any(c.isalnum() for c in value) and _valid_ip(value):
                yield match.span()


@DETECTORS.register("phone")
def _phones(text: str, cfg: PiiConfig) -> Iterator[tuple[int, int]]:
    phonenumbers = require("phonenumbers", extra="data")
    matcher = phonenumbers.PhoneNumberMatcher(  # type: ignore[attr-defined]
        text,
        cfg.region.upper(),
        leniency=phonenumbers.Leniency.VALID,  # type: ignore[attr-defined]
    )
    for match in matcher:
        yield match.start, match.end


def _placeholder(kind: str) -> str:
    return f"[{kind.upper()}]"


def _protected(text: str, cfg: PiiConfig) -> list[tuple[int, int]]:
    kinds = [*cfg.types, *cfg.patterns]
    names = "|".join(re.escape(kind.upper()) for kind in kinds)
    return [m.span() for m in re.finditer(rf"\[(?:{names})\]", text)] if names else []


def _candidates(text: str, cfg: PiiConfig) -> Iterator[tuple[int, str, int, int]]:
    # custom patterns first: the user's own rules outrank the built-in guesses
    for rank, (name, pattern) in enumerate(cfg.patterns.items()):
        for match in re.finditer(pattern, text):
            if match.end() > match.start():
                yield rank, name, *match.span()
    for kind in PRIORITY:
        if kind in cfg.types:
            for start, end in DETECTORS.get(kind)(text, cfg):
                yield len(cfg.patterns) + PRIORITY.index(kind), kind, start, end


def find_pii(text: str, cfg: PiiConfig | None = None) -> list[PiiMatch]:
    """Return the non-overlapping personal data found in `text`, in reading order.

    Where detectors overlap, custom patterns win, then the order of PRIORITY.
    Raises MissingExtraError when phone detection is on and `phonenumbers` is missing.
    """
    cfg = cfg or PiiConfig()
    taken = _protected(text, cfg)
    found: list[PiiMatch] = []
    for _, kind, start, end in sorted(_candidates(text, cfg)):
        if any(start < b and a < end for a, b in taken):
            continue
        taken.append((start, end))
        found.append(PiiMatch(kind, start, end, text[start:end]))
    return sorted(found, key=lambda m: m.start)


def redact(text: str, cfg: PiiConfig | None = None) -> tuple[str, Counter[str]]:
    """Return `text` with every piece of personal data replaced by its placeholder, and the
    number of replacements per type."""
    matches = find_pii(text, cfg)
    counts: Counter[str] = Counter(m.kind for m in matches)
    for match in reversed(matches):
        text = text[: match.start] + _placeholder(match.kind) + text[match.end :]
    return text, counts


def redact_texts(texts: list[str], cfg: PiiConfig | None = None) -> tuple[list[str], Counter[str]]:
    """Return the redacted texts and the replacements per type over all of them."""
    total: Counter[str] = Counter()
    out = []
    for text in texts:
        clean, counts = redact(text, cfg)
        out.append(clean)
        total.update(counts)
    return out, total


def mask(value: str) -> str:
    """Return `value` with all but its first and last characters hidden, for showing in reports."""
    if len(value) <= 4:
        return "*" * len(value)
    return value[0] + "*" * (len(value) - 2) + value[-1]


def redact_rows(rows: pd.DataFrame, cfg: DataConfig, report: DataReport) -> pd.DataFrame:
    """Return a copy of `rows` whose text and pair columns are redacted as `cfg.pii` says,
    adding the replacements per type to `report.pii_redacted`."""
    out = rows.copy()
    for column in ("text", "pair"):
        texts, counts = redact_texts(out[column].tolist(), cfg.pii)
        out[column] = texts
        for kind, n in counts.items():
            report.pii_redacted[kind] = report.pii_redacted.get(kind, 0) + n
    return out
