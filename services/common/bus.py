"""Reading and writing messages on Redis streams, and parking the ones that fail.

Every message is one stream entry with one field, `__data__`, holding the
model's JSON: readable by any Redis client in any language, and by FastStream
subscribers, which fall back to plain JSON bodies.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

import redis.asyncio as aioredis
from pydantic import BaseModel

from contracts import DeadLetter
from contracts.streams import DEAD_LETTER_RETENTION_SECONDS, dead_letter_stream

DATA_FIELD = b"__data__"
MAX_PAYLOAD_CHARS = 1_000_000
"""Dead letters keep at most this much of the original body (characters)."""

M = TypeVar("M", bound=BaseModel)


def encode(message: BaseModel) -> bytes:
    """A message as the bytes stored in a stream entry."""
    return message.model_dump_json().encode()


async def publish(redis: aioredis.Redis, stream: str, message: BaseModel) -> str:
    """Append `message` to `stream`; returns the entry id."""
    entry_id = await redis.xadd(stream, {DATA_FIELD: encode(message)})
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def decode(model: type[M], body: bytes) -> M:
    """Validate a stream entry body as `model` (raises pydantic.ValidationError)."""
    return model.model_validate_json(body)


def printable_payload(body: bytes) -> str:
    """A body as text for a dead letter: UTF-8 with invalid bytes escaped, capped."""
    return body.decode("utf-8", errors="backslashreplace")[:MAX_PAYLOAD_CHARS]


def dead_letter(
    *,
    stream: str,
    entry_id: str,
    service: str,
    reason: str,
    error: str,
    payload: bytes,
    now: datetime,
) -> DeadLetter:
    """The record parked in `{<stream>}.dlq` for a message that failed."""
    return DeadLetter(
        stream=stream,
        entry_id=entry_id,
        service=service,
        reason=reason,
        error=error,
        payload=printable_payload(payload),
        failed_at=now,
    )


async def park(
    redis: aioredis.Redis,
    letter: DeadLetter,
    *,
    retention_seconds: float = DEAD_LETTER_RETENTION_SECONDS,
) -> str:
    """Append a dead letter to its stream's `.dlq`, dropping the letters parked more than
    `retention_seconds` ago (by the Redis server's clock, which stamps entry ids); returns
    the entry id."""
    seconds, microseconds = await redis.time()
    floor_ms = max(0, (seconds * 1_000_000 + microseconds) // 1000 - int(retention_seconds * 1000))
    entry_id = await redis.xadd(
        dead_letter_stream(letter.stream),
        {DATA_FIELD: encode(letter)},
        minid=f"{floor_ms}-0",
        approximate=False,
    )
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
