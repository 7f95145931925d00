"""cli/server.py: how many worker processes ``ostiary serve`` runs."""

from __future__ import annotations

import pytest

from ostiary.cli import server
from ostiary.config import ConfigError, Settings


def _settings(**values: object) -> Settings:
    return Settings(issuer="https://id.example.com", **values)  # type: ignore[arg-type]


def test_auto_is_one_worker_per_core_with_redis_and_one_without(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server, "_cores", lambda: 6)
    assert server.worker_count(_settings(redis_url="redis://127.0.0.1:6379/0"), None) == 6
    assert server.worker_count(_settings(), None) == 1
    assert server.worker_count(_settings(workers=0), 0) == 1


def test_the_option_wins_over_the_setting() -> None:
    redis = "redis://127.0.0.1:6379/0"
    assert server.worker_count(_settings(redis_url=redis, workers=4), 2) == 2
    assert server.worker_count(_settings(redis_url=redis, workers=3), None) == 3
    assert server.worker_count(_settings(workers=5), 1) == 1


@pytest.mark.parametrize("requested", [2, 64])
def test_more_than_one_worker_without_redis_is_refused(requested: int) -> None:
    with pytest.raises(ConfigError, match=f"{requested} workers need OSTIARY_REDIS_URL"):
        server.worker_count(_settings(), requested)
    with pytest.raises(ConfigError, match="sign-in throttle"):
        server.worker_count(_settings(workers=requested), None)
