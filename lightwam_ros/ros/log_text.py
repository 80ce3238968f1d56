"""Input text quoted in a log line, cut to a bounded length: a message field is untrusted, and a
1 MB instruction echoed whole in every warning fills the log, not the reader's eyes."""

from __future__ import annotations

from collections.abc import Sequence

QUOTE_LIMIT = 120  # characters of an input kept in a log line


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def quoted(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr`` of a string (``str`` of anything else) cut to ``limit`` characters, with the full
    length said: ``'pick up the cu... (1048576 chars)'``."""
    return _cut(repr(value) if isinstance(value, str) else str(value), limit)


def quoted_names(names: Sequence[object], limit: int = QUOTE_LIMIT) -> str:
    """A list of names (joints, actions, topics) from a message, as ``['a', 'b']``, cut like
    ``quoted``; only the first ``limit`` names are even looked at."""
    text = _cut(str([str(name) for name in names[:limit]]), limit)
    return text if len(names) <= limit else f"{text} ({len(names)} names)"
