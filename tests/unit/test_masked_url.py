"""A Redis URL is logged with its password masked, whatever form the password takes."""

from __future__ import annotations

import pytest

from services.cli import startup_line
from services.common.redis import masked_url


@pytest.mark.parametrize(
    ("url", "logged"),
    [
        ("redis://:s3cret@redis:6379/0", "redis://:***@redis:6379/0"),
        (
            "rediss://newsmon:s3cret@redis.example:6380/2",
            "rediss://newsmon:***@redis.example:6380/2",
        ),
        ("redis://s3cret@redis:6379", "redis://***@redis:6379"),
        ("unix://:s3cret@/run/redis.sock?db=0", "unix://:***@/run/redis.sock?db=0"),
        ("redis://redis:6379/0?password=s3cret&db=1", "redis://redis:6379/0?password=***&db=1"),
        ("redis://:s3/c?r#et@redis:6379/0", "redis://:***@redis:6379/0"),
        ("redis://:a@b@redis:6379/0", "redis://:***@redis:6379/0"),
    ],
)
def test_a_password_in_a_redis_url_is_masked(url: str, logged: str) -> None:
    assert masked_url(url) == logged
    assert "s3cret" not in masked_url(url)


@pytest.mark.parametrize(
    "url", ["redis://redis:6379/0", "unix:///tmp/tmpab12/redis.socket", "redis://127.0.0.1"]
)
def test_a_url_without_a_password_is_logged_as_it_is(url: str) -> None:
    assert masked_url(url) == url


def test_the_startup_line_names_redis_without_its_password() -> None:
    line = startup_line(
        ["fetcher", "cleaner"],
        "redis://:s3cret@redis:6379/0",
        "http://0.0.0.0:8000",
        embedded=False,
    )
    assert "s3cret" not in line
    assert "fetcher, cleaner running on Redis redis://:***@redis:6379/0;" in line
    assert "metrics at http://0.0.0.0:8000/metrics" in line
