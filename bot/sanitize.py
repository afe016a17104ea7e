"""Making user-supplied text safe to store, send to GLM and show back."""

from __future__ import annotations

import re
import unicodedata

# Zero-width and direction-control characters: invisible, but they can disguise a name
# ("Ad\u200bmin") or reorder the text around it.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"\s+")
MAX_NAME_LENGTH = 32


def clean_text(text: str) -> str:
    """Replace lone UTF-16 surrogates (they cannot be encoded to UTF-8 for Redis or GLM)
    and drop control characters other than newline and tab."""
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return _CONTROL.sub("", text)


def is_blank(text: str) -> bool:
    """Nothing visible: empty, whitespace or invisible characters only."""
    return not _INVISIBLE.sub("", text).strip()


def display_name(first_name: str | None, last_name: str | None, user_id: int) -> str:
    """A speaker label for group history: stable, one line, short, no separator colon."""
    return person_name(first_name, last_name) or f"User {user_id}"


def person_name(first_name: str | None, last_name: str | None) -> str:
    """The name as Telegram shows it, cleaned like a speaker label; "" when nothing
    visible is left (never the id: it may go to a third party)."""
    raw = " ".join(part for part in (first_name, last_name) if part)
    name = unicodedata.normalize("NFKC", clean_text(raw))
    name = _INVISIBLE.sub("", name).replace(":", " ")
    return _SPACES.sub(" ", name).strip()[:MAX_NAME_LENGTH].strip()
