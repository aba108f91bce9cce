"""Small pure text helpers every stage shares."""

from __future__ import annotations


def one_line(value: str) -> str:
    """Whitespace (CR and LF included) collapsed to single spaces: a value that can't start a header."""
    return " ".join(value.split())
