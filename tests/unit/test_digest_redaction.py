"""Masking contact data that customers type into survey comments."""

from __future__ import annotations

import pytest

from retention_pipeline.digest.redaction import EMAIL_MASK, PHONE_MASK, redact_contacts, shorten


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to ivan.petrov+shop@mail.example.ru please", f"write to {EMAIL_MASK} please"),
        ("call +7 (912) 345-67-89 after 6", f"call {PHONE_MASK} after 6"),
        ("мой номер 8 912 3456789", f"мой номер {PHONE_MASK}"),
        ("tel. 030/1234567", f"tel. 030/{PHONE_MASK}"),
        ("10 out of 10, ordered 3 times in 2026", "10 out of 10, ordered 3 times in 2026"),
        ("delivered 2026-11-18, order 12345", "delivered 2026-11-18, order 12345"),
        ("", ""),
    ],
)
def test_redact_contacts(text: str, expected: str) -> None:
    assert redact_contacts(text) == expected


def test_shorten_keeps_short_text_and_cuts_long_text_at_a_word() -> None:
    assert shorten("  one\n two  ") == "one two"
    cut = shorten("abcd " * 100, limit=50)
    assert len(cut) <= 50 and cut.endswith("…") and "abc…" not in cut
