"""The digest every store puts into its keys in place of a name or client input: bounded, and
free of anything Redis or a log line could misread."""

from __future__ import annotations

import hashlib


def digest(text: str, length: int = 64) -> str:
    """The first ``length`` hex characters of ``text``'s SHA-256 (lone surrogates kept as they are)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]
