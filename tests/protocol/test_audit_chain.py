"""ostiary.protocol.audit_chain: hash chain over canonical JSON."""

import hashlib

from ostiary.protocol.audit_chain import (
    GENESIS_HASH,
    ChainLink,
    canonical_json,
    chain_hash,
    first_broken_link,
)


def _chain(bodies: list[dict[str, object]]) -> list[ChainLink]:
    links, previous = [], GENESIS_HASH
    for seq, body in enumerate(bodies, start=1):
        digest = chain_hash(previous, body)
        links.append(ChainLink(seq, previous, digest, body))
        previous = digest
    return links


def test_canonical_json_sorts_keys_and_has_no_whitespace() -> None:
    assert canonical_json({"b": 1, "a": {"d": None, "c": "é"}}) == (
        '{"a":{"c":"é","d":null},"b":1}'.encode()
    )


def test_hash_is_sha256_of_previous_hash_and_canonical_body() -> None:
    body = {"action": "login", "outcome": "success"}
    expected = hashlib.sha256(GENESIS_HASH.encode() + canonical_json(body)).hexdigest()
    assert chain_hash(GENESIS_HASH, body) == expected


def test_intact_chain_verifies() -> None:
    assert first_broken_link(_chain([{"n": i} for i in range(5)])) is None
    assert first_broken_link([]) is None


def test_edited_event_is_found() -> None:
    links = _chain([{"n": i} for i in range(5)])
    links[2] = ChainLink(3, links[2].previous_hash, links[2].hash, {"n": 99})
    broken = first_broken_link(links)
    assert broken is not None
    assert broken.seq == 3


def test_deleted_event_is_found() -> None:
    links = _chain([{"n": i} for i in range(5)])
    del links[1]
    broken = first_broken_link(links)
    assert broken is not None
    assert broken.seq == 3


def test_rehashed_event_breaks_the_next_link() -> None:
    links = _chain([{"n": i} for i in range(3)])
    forged_body = {"n": 42}
    links[1] = ChainLink(
        2, links[1].previous_hash, chain_hash(links[1].previous_hash, forged_body), forged_body
    )
    broken = first_broken_link(links)
    assert broken is not None
    assert broken.seq == 3
