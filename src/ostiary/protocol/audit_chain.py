"""Tamper-evident hash chain over audit events.

Each event's hash is ``SHA-256(previous_hash || canonical_json(event))`` (FIPS 180-4), where the
canonical JSON has sorted keys, no insignificant whitespace and UTF-8 output, which for the
strings, integers, booleans and nulls an event holds coincides with the JSON Canonicalization
Scheme of RFC 8785 section 3.2. Editing, deleting or reordering any stored event changes a
hash that a later event covers, so :func:`first_broken_link` finds it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "GENESIS_HASH",
    "ChainLink",
    "ChainVerifier",
    "canonical_json",
    "chain_hash",
    "first_broken_link",
]

GENESIS_HASH = "0" * 64


def canonical_json(event: Mapping[str, Any]) -> bytes:
    """Sorted-key, compact, UTF-8 JSON (RFC 8785 for the value types an event uses)."""
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


def chain_hash(previous_hash: str, event: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the previous hash followed by the event's canonical JSON."""
    return hashlib.sha256(previous_hash.encode("ascii") + canonical_json(event)).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainLink:
    """One stored event as the verifier sees it."""

    seq: int
    previous_hash: str
    hash: str
    body: Mapping[str, Any]


class ChainVerifier:
    """Checks links one at a time, in append order, so a long trail streams through."""

    __slots__ = ("_expected_previous",)

    def __init__(self) -> None:
        self._expected_previous = GENESIS_HASH

    def check(self, link: ChainLink) -> bool:
        """True if ``link`` follows from every link checked before it."""
        if link.previous_hash != self._expected_previous:
            return False
        if chain_hash(link.previous_hash, link.body) != link.hash:
            return False
        self._expected_previous = link.hash
        return True


def first_broken_link(links: Iterable[ChainLink]) -> ChainLink | None:
    """The first event whose stored hashes do not follow from the events before it."""
    verifier = ChainVerifier()
    for link in links:
        if not verifier.check(link):
            return link
    return None
