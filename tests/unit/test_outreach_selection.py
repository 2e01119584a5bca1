"""Deterministic campaign arms, script variants and offers."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from retention_pipeline.config import PROJECT_ROOT
from retention_pipeline.outreach.selection import OfferBook, in_holdout, script_variant, unit_hash
from retention_pipeline.outreach.webhook import sign

CUSTOMERS = [f"C{i:05d}" for i in range(20000)]


def test_holdout_is_deterministic_and_close_to_its_share() -> None:
    first = [in_holdout(c, "2026-W47", 0.1) for c in CUSTOMERS]
    assert first == [in_holdout(c, "2026-W47", 0.1) for c in CUSTOMERS]
    assert sum(first) / len(first) == pytest.approx(0.1, abs=0.01)
    # another week draws another holdout: nobody is held out forever
    other = [in_holdout(c, "2026-W48", 0.1) for c in CUSTOMERS]
    assert sum(a and b for a, b in zip(first, other, strict=True)) / len(CUSTOMERS) == pytest.approx(
        0.01, abs=0.004
    )
    assert not any(in_holdout(c, "2026-W47", 0.0) for c in CUSTOMERS[:500])


def test_variants_are_balanced_and_independent_of_the_holdout() -> None:
    variants = Counter(script_variant(c, "2026-W47", ("A", "B")) for c in CUSTOMERS)
    assert set(variants) == {"A", "B"} and abs(variants["A"] - variants["B"]) < 0.03 * len(CUSTOMERS)
    held = [c for c in CUSTOMERS if in_holdout(c, "2026-W47", 0.2)]
    held_variants = Counter(script_variant(c, "2026-W47", ("A", "B")) for c in held)
    assert abs(held_variants["A"] / len(held) - 0.5) < 0.04
    assert script_variant("C1", "2026-W47", ("A", "B", "C")) in {"A", "B", "C"}
    assert 0.0 <= unit_hash("x", "2026-W01", "s") < 1.0


def test_the_most_specific_offer_wins() -> None:
    book = OfferBook(
        [
            {"rfm_segment": "At risk", "value_tier": "A", "offer_code": "AT_RISK_A", "offer_text": "x"},
            {"rfm_segment": "At risk", "value_tier": "*", "offer_code": "AT_RISK", "offer_text": "x"},
            {"rfm_segment": "*", "value_tier": "A", "offer_code": "TIER_A", "offer_text": "x"},
            {"rfm_segment": "*", "value_tier": "*", "offer_code": "DEFAULT", "offer_text": "x"},
        ]
    )
    assert book.suggest("At risk", "A").code == "AT_RISK_A"  # type: ignore[union-attr]
    assert book.suggest("At risk", "C").code == "AT_RISK"  # type: ignore[union-attr]
    assert book.suggest("Lost", "A").code == "TIER_A"  # type: ignore[union-attr]
    assert book.suggest("Lost", None).code == "DEFAULT"  # type: ignore[union-attr]
    assert OfferBook([]).suggest("Lost", "A") is None


def test_the_offers_seed_has_a_default_for_everyone() -> None:
    book = OfferBook.from_seed(Path(PROJECT_ROOT) / "dbt_project")
    segments = ["Champions", "Loyal", "At risk", "Can't lose them", "Lost", "Hibernating", "New"]
    assert all(book.suggest(s, t) is not None for s in segments for t in "ABCD")
    assert book.suggest("Can't lose them", "A").code == "VIP_CALLBACK_20"  # type: ignore[union-attr]


def test_webhook_signature_is_hmac_sha256_of_the_body() -> None:
    # RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
    assert sign("Jefe", b"what do ya want for nothing?") == (
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
