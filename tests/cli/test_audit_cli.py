"""``ostiary audit list``: the operator's reading of the trail, all of it or one
organization's, with filters and pages; refusals of bad options in one line."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cli._support import create_org, create_users, migrated_data_dir, run, run_json


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with migrated_data_dir(tmp_path_factory) as values:
        create_users(values, "ann@example.com")
        create_org(values, "Audited", "ann@example.com")
        create_org(values, "Other", "ann@example.com")
        yield values


def test_audit_list_reads_the_trail_newest_first_and_one_organizations_slice(
    env: dict[str, str],
) -> None:
    everything = run_json(env, "audit", "list", "--limit", "1000")["items"]
    seqs = [e["seq"] for e in everything]
    assert seqs == sorted(seqs, reverse=True)
    audited = run_json(env, "orgs", "show", "audited")["id"]
    other = run_json(env, "orgs", "show", "other")["id"]
    assert {e["organization_id"] for e in everything} >= {audited, other}
    mine = run_json(env, "audit", "list", "--org", "audited")["items"]
    assert mine and {e["organization_id"] for e in mine} == {audited}
    created = run_json(env, "audit", "list", "--org", "audited", "--action", "org.create")
    assert [e["action"] for e in created["items"]] == ["org.create"]
    first = run_json(env, "audit", "list", "--limit", "2")["items"]
    rest = run_json(env, "audit", "list", "--before", str(first[-1]["seq"]), "--limit", "1000")
    assert [e["seq"] for e in first + rest["items"]] == seqs
    assert run_json(env, "audit", "list", "--since", "2999-01-01")["items"] == []
    text = run(env, "audit", "list", "--org", "audited", "--limit", "1")
    assert text.exit_code == 0 and text.stdout.startswith("#") and "by operator" in text.stdout
    nothing = run(env, "audit", "list", "--until", "2000-01-01")
    assert nothing.exit_code == 0 and nothing.stdout.strip() == "no events"


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--org", "no-such-org"], 1, "not_found"),
        (["--outcome", "maybe"], 2, "--outcome"),
        (["--since", "yesterday"], 2, "--since"),
        (["--limit", "0"], 2, "--limit"),
    ],
)
def test_audit_list_refuses_bad_options_in_one_line(
    env: dict[str, str], args: list[str], code: int, says: str
) -> None:
    result = run(env, "audit", "list", *args)
    assert result.exit_code == code, (result.exit_code, result.output)
    assert says in result.output
