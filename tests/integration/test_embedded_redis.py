"""The embedded Redis keeps its data (the AOF, which holds webhook secrets) in a folder
only its owner can read, whether it created the folder or found it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import redis

from services.common.redis import embedded_redis

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("existing_mode", [None, 0o755])
def test_the_embedded_redis_data_folder_is_private_to_its_owner(
    tmp_path: Path, existing_mode: int | None
) -> None:
    data_dir = tmp_path / "data"
    if existing_mode is not None:
        data_dir.mkdir()
        data_dir.chmod(existing_mode)
    umask = os.umask(0o022)
    try:
        with embedded_redis(data_dir) as url:
            client = redis.Redis.from_url(url)
            client.set("newsmon:test", "secret")
            client.close()
            assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
            assert any(data_dir.iterdir()), "the server keeps its files in the folder"
    finally:
        os.umask(umask)
