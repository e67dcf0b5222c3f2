"""Event-type names and the patterns subscribers use to select them. Pure functions."""

from __future__ import annotations

import re
from collections.abc import Iterable

EVENT_TYPE_MAX_LENGTH = 200  # of a type, and of a pattern
_WORD = r"[a-z0-9][a-z0-9_-]*"
# Lowercase words (letters, digits, "_" or "-") joined by dots: "order.created", "github.push".
EVENT_TYPE_REGEX = rf"{_WORD}(\.{_WORD})*"
# An exact type, a prefix ("order.*") or everything ("*").
PATTERN_REGEX = rf"\*|{_WORD}(\.{_WORD})*(\.\*)?"
EVENT_TYPE_RE = re.compile(EVENT_TYPE_REGEX)
PATTERN_RE = re.compile(PATTERN_REGEX)
WILDCARD = "*"
PREFIX_SUFFIX = ".*"
# Herald's own operational events (herald.circuit.opened, ...). Only patterns that name them
# receive them: a `*` subscriber signed up for what producers publish, not for these.
OPERATIONAL_PREFIX = "herald."


def schema_pattern(regex: str) -> str:
    """The regex anchored for an OpenAPI schema (ECMA `$` is the very end, unlike Python's)."""
    return f"^({regex})$"


def is_valid_event_type(event_type: str) -> bool:
    # fullmatch: a trailing newline is not a valid end, as `$` would allow.
    return len(event_type) <= EVENT_TYPE_MAX_LENGTH and bool(EVENT_TYPE_RE.fullmatch(event_type))


def is_valid_pattern(pattern: str) -> bool:
    return len(pattern) <= EVENT_TYPE_MAX_LENGTH and bool(PATTERN_RE.fullmatch(pattern))


def matches(pattern: str, event_type: str) -> bool:
    """`*` matches every published event, `order.*` matches `order.created` and `order.line.added`.

    Operational events (`herald.*`) go only to patterns that name them: `herald.*` or exact types.
    """
    if pattern == WILDCARD:
        return not event_type.startswith(OPERATIONAL_PREFIX)
    if pattern.endswith(PREFIX_SUFFIX):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def matches_any(patterns: Iterable[str], event_type: str) -> bool:
    return any(matches(pattern, event_type) for pattern in patterns)
