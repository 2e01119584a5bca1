"""Keep customer contact data out of free text before it reaches the whole company.

The marts' columns are safe by selection, but survey comments are typed by customers,
and customers write "call me back on +7 912 ..." or their email. The digest goes to a
distribution list, so comments are masked here, at the last step before rendering.
"""

from __future__ import annotations

import re

EMAIL_MASK = "[email hidden]"
PHONE_MASK = "[phone hidden]"
MAX_COMMENT_CHARS = 300

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A run of digits with the separators people put in phone numbers; judged by digit count.
_PHONE_CANDIDATE = re.compile(r"(?<!\w)\+?\(?\d[\d\s().\-]{4,}\d(?!\w)")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MIN_PHONE_DIGITS = 7


def _mask_phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(ch.isdigit() for ch in text)
    if digits < _MIN_PHONE_DIGITS or _ISO_DATE.match(text.strip()):
        return text
    return PHONE_MASK


def redact_contacts(text: str) -> str:
    """Mask email addresses and phone numbers in customer-written text."""
    return _PHONE_CANDIDATE.sub(_mask_phone, _EMAIL.sub(EMAIL_MASK, text))


def shorten(text: str, limit: int = MAX_COMMENT_CHARS) -> str:
    """One paragraph, at most ``limit`` characters: a digest quotes, it does not archive."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[: limit - 1].rsplit(" ", 1)[0] + "\u2026"
