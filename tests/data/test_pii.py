"""Personal-data detection and redaction: a table of positives and look-alikes, idempotence,
custom patterns, file scans, and redaction inside load_data."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.data import load_data
from modelyard.data.pii import find_pii, iban_valid, luhn_valid, redact, redact_texts
from modelyard.data.pii_scan import scan_file
from modelyard.errors import DataError, RecipeError
from modelyard.recipe import PiiConfig, build_recipe
from tests.conftest import make_rows, write_csv

POSITIVES = [
    ("write to john.doe@example.com today", "email", "john.doe@example.com"),
    ("cc a+b@mail.example.co.uk please", "email", "a+b@mail.example.co.uk"),
    ("call +1 415-555-2671 now", "phone", "+1 415-555-2671"),
    ("office (212) 555-0199", "phone", "(212) 555-0199"),
    ("london +44 20 7946 0958", "phone", "+44 20 7946 0958"),
    ("visa 4111 1111 1111 1111 ok", "credit_card", "4111 1111 1111 1111"),
    ("mc 5500-0000-0000-0004", "credit_card", "5500-0000-0000-0004"),
    ("amex 378282246310005", "credit_card", "378282246310005"),
    ("iban DE89 3704 0044 0532 0130 00 thanks", "iban", "DE89 3704 0044 0532 0130 00"),
    ("pay GB82WEST12345698765432 now", "iban", "GB82WEST12345698765432"),
    ("to NL91ABNA0417164300 IBAN", "iban", "NL91ABNA0417164300"),
    ("from 192.168.0.1 again", "ip", "192.168.0.1"),
    ("v6 2001:db8::1 host", "ip", "2001:db8::1"),
    ("see https://example.com/a?b=1.", "url", "https://example.com/a?b=1"),
    ("visit www.example.org/help now", "url", "www.example.org/help"),
]

NEGATIVES = [
    "visa 4111 1111 1111 1112 fails the Luhn check",
    "zeros 0000 0000 0000 0000 pass Luhn but no card starts with 0",
    "iban DE89 3704 0044 0532 0130 01 has a wrong checksum",
    "ip 999.1.1.1 is out of range and 1.2.3 has three parts",
    "on 2024-01-15 at 12:30:45 we shipped version 1.2.3",
    "order 123456 costs 3.14159 dollars",
    "mail user@localhost or ping @handle",
    "isbn 978-3-16-148410-0",
    "already clean: [EMAIL] [PHONE] [CREDIT_CARD]",
]


@pytest.mark.parametrize(("text", "kind", "value"), POSITIVES)
def test_detects_each_kind(text: str, kind: str, value: str) -> None:
    found = find_pii(text)
    assert [(m.kind, m.value) for m in found] == [(kind, value)]


@pytest.mark.parametrize("text", NEGATIVES)
def test_look_alikes_are_left_alone(text: str) -> None:
    assert find_pii(text) == []
    assert redact(text)[0] == text


def test_checksums() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("DE89 3704 0044 0532 0130 00") and not iban_valid("DE89370400440532013001")
    assert not iban_valid("DE89")


def test_redaction_replaces_and_counts() -> None:
    text = " ".join(t for t, _, _ in POSITIVES)
    clean, counts = redact(text)
    assert sum(counts.values()) == len(POSITIVES)
    for _, kind, value in POSITIVES:
        assert value not in clean
        assert f"[{kind.upper()}]" in clean


def test_redaction_is_idempotent_even_with_greedy_custom_patterns() -> None:
    cfg = PiiConfig(patterns={"SHOUT": r"[A-Z]{4,}", "EMPLOYEE_ID": r"EMP-\d{6}"})
    text = " ".join(t for t, _, _ in POSITIVES) + " badge EMP-123456 LOUD"
    once, _ = redact(text, cfg)
    twice, counts = redact(once, cfg)
    assert twice == once and sum(counts.values()) == 0
    assert "[EMPLOYEE_ID]" in once and "[SHOUT]" in once


def test_custom_patterns_win_over_built_ins_and_types_can_be_chosen() -> None:
    cfg = PiiConfig(patterns={"TICKET": r"T-\d{3}-\d{3}-\d{4}"})
    assert redact("ticket T-415-555-2671", cfg)[0] == "ticket [TICKET]"
    only_mail = PiiConfig(types=["email"])
    assert redact("a@b.com from 10.0.0.1", only_mail)[0] == "[EMAIL] from 10.0.0.1"


def test_bad_custom_pattern_is_a_recipe_error() -> None:
    with pytest.raises(RecipeError, match=r"data\.pii.*not a valid regular expression"):
        build_recipe({"data": {"path": "x.csv", "pii": {"patterns": {"BAD": "(unclosed"}}}})


def test_redact_texts_sums_counts() -> None:
    texts, counts = redact_texts(["a@b.com", "x", "c@d.org and 10.0.0.1"])
    assert texts == ["[EMAIL]", "x", "[EMAIL] and [IP]"]
    assert counts == {"email": 2, "ip": 1}


def _pii_csv(tmp_path: Path) -> Path:
    rows = make_rows(60)
    rows[0] = ("refund to card 4111 1111 1111 1111 please", rows[0][1])
    rows[1] = ("mail me at jane@example.com about the parcel", rows[1][1])
    rows[2] = ("call +1 415-555-2671 password reset", rows[2][1])
    return write_csv(tmp_path / "pii.csv", rows)


def test_scan_file_counts_masks_and_never_touches_the_original(tmp_path: Path) -> None:
    path = _pii_csv(tmp_path)
    before = path.read_bytes()
    scan = scan_file(path, redact_to=tmp_path / "clean.csv")
    assert scan.counts == {"credit_card": 1, "email": 1, "phone": 1}
    assert scan.rows_with_pii == 3 and scan.by_column["text"] == scan.counts
    assert all(e["value"] != "4111 1111 1111 1111" and "*" in e["value"] for e in scan.examples)
    assert path.read_bytes() == before
    cleaned = (tmp_path / "clean.csv").read_text()
    assert "jane@example.com" not in cleaned and "[EMAIL]" in cleaned
    assert scan_file(tmp_path / "clean.csv").counts == {}


def test_scan_file_refuses_to_overwrite_its_input(tmp_path: Path) -> None:
    path = _pii_csv(tmp_path)
    with pytest.raises(DataError, match="never modified"):
        scan_file(path, redact_to=path)
    with pytest.raises(DataError, match="no column.*body"):
        scan_file(path, columns=["body"])


def test_load_data_redacts_every_split_and_reports_counts(tmp_path: Path) -> None:
    path = _pii_csv(tmp_path)
    before = path.read_bytes()
    recipe = build_recipe({"data": {"path": str(path), "redact_pii": True}})
    bundle = load_data(recipe.data, seed=0)
    texts = bundle.train.texts + bundle.dev.texts + bundle.test.texts
    assert not any("jane@example.com" in t or "4111" in t for t in texts)
    assert bundle.report.pii_redacted == {"credit_card": 1, "email": 1, "phone": 1}
    assert "Personal data replaced" in bundle.report.to_markdown()
    assert path.read_bytes() == before
    plain = load_data(build_recipe({"data": {"path": str(path)}}).data, seed=0)
    assert plain.report.pii_redacted == {}
