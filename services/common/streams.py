"""What Redis says about a stream and its consumer group: backlog and lag.

Redis 7 reports a group's lag itself; Redis 6.2 (the embedded one) does not, so there
lag is estimated from the entry ids (exactly 0 when the group has read everything).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from redis.typing import StreamIdT

from contracts.streams import dead_letter_stream
from services.common.bus import DATA_FIELD


@dataclass(frozen=True, slots=True)
class GroupBacklog:
    """A consumer group's position on its stream."""

    stream: str
    group: str
    length: int
    lag: int
    pending: int
    dead_letters: int

    @property
    def drained(self) -> bool:
        return self.lag == 0 and self.pending == 0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _id_tuple(entry_id: str) -> tuple[int, int]:
    millis, _, seq = entry_id.partition("-")
    return int(millis), int(seq or 0)


async def group_backlog(redis: aioredis.Redis, stream: str, group: str) -> GroupBacklog:
    """The backlog of `group` on `stream` (zeros when neither exists yet)."""
    dead = int(await redis.xlen(dead_letter_stream(stream)))
    if not await redis.exists(stream):
        return GroupBacklog(stream, group, 0, 0, 0, dead)
    info = await redis.xinfo_stream(stream)
    length = int(info["length"])
    last_generated = _text(info["last-generated-id"])
    for group_info in await redis.xinfo_groups(stream):
        if _text(group_info["name"]) != group:
            continue
        pending = int(group_info["pending"])
        lag_value = group_info.get("lag")
        if lag_value is not None:
            lag = int(lag_value)
        else:
            last_delivered = _text(group_info["last-delivered-id"])
            caught_up = _id_tuple(last_delivered) >= _id_tuple(last_generated)
            first_entry = info.get("first-entry")
            first_id = _text(first_entry[0]) if first_entry else last_generated
            lag = (
                0 if caught_up else estimated_lag(length, first_id, last_delivered, last_generated)
            )
        return GroupBacklog(stream, group, length, lag, pending, dead)
    return GroupBacklog(stream, group, length, length, 0, dead)


def estimated_lag(length: int, first_id: str, delivered_id: str, generated_id: str) -> int:
    """Entries after `delivered_id` on a stream of `length` entries from `first_id` to
    `generated_id`, estimated from the ids alone: the length times the share of the id span
    (milliseconds) after `delivered_id`; at least 1, as the group is behind.

    For servers that report no lag (Redis 6.2, the embedded one): counting the entries would
    mean reading them, raw pages included (a 10,000-page backlog is a gigabyte), every few
    seconds."""
    first_ms, delivered_ms, generated_ms = (
        _id_tuple(first_id)[0],
        _id_tuple(delivered_id)[0],
        _id_tuple(generated_id)[0],
    )
    span = generated_ms - first_ms
    if span <= 0 or delivered_ms < first_ms:
        return max(length, 1)
    share = (generated_ms - delivered_ms) / span
    return min(length, max(1, round(length * share)))


EntryId = tuple[int, int]


def parse_id(entry_id: str) -> EntryId:
    """A stream entry id `millis-seq` as a comparable tuple."""
    return _id_tuple(entry_id)


def trim_floor(oldest_unfinished: Sequence[EntryId], *, now_ms: int, retention_ms: int) -> EntryId:
    """The lowest id to keep on a stream: no entry some group has not finished
    (unread or unacknowledged) and no entry younger than the retention is dropped."""
    keep_recent: EntryId = (max(now_ms - retention_ms, 0), 0)
    return min([keep_recent, *oldest_unfinished])


async def oldest_unfinished(redis: aioredis.Redis, stream: str) -> list[EntryId]:
    """Per consumer group, the first entry it has not finished with."""
    floors: list[EntryId] = []
    for group_info in await redis.xinfo_groups(stream):
        summary = await redis.xpending(stream, group_info["name"])
        if int(summary["pending"]):
            floors.append(_id_tuple(_text(summary["min"])))
        else:
            millis, seq = _id_tuple(_text(group_info["last-delivered-id"]))
            floors.append((millis, seq + 1))
    return floors


async def trim_finished(
    redis: aioredis.Redis, stream: str, *, now_ms: int, retention_ms: int
) -> int:
    """Drop entries every group has finished and that are older than the retention;
    returns how many went. A stream nobody consumes yet is left alone."""
    if not await redis.exists(stream):
        return 0
    floors = await oldest_unfinished(redis, stream)
    if not floors:
        return 0
    millis, seq = trim_floor(floors, now_ms=now_ms, retention_ms=retention_ms)
    return int(await redis.xtrim(stream, minid=f"{millis}-{seq}", approximate=False))


@dataclass(frozen=True, slots=True)
class ClaimedEntry:
    """A pending entry taken over from a consumer that left it idle."""

    entry_id: str
    body: bytes
    deliveries: int
    """Deliveries to the group, this claim included."""


async def claim_idle(
    redis: aioredis.Redis,
    stream: str,
    group: str,
    consumer: str,
    *,
    min_idle_ms: int,
    count: int,
) -> list[ClaimedEntry]:
    """Take over, for `consumer`, up to `count` entries of `group` left unacknowledged for
    `min_idle_ms` or longer (their consumer died), oldest first; call again until it
    returns nothing. An entry deleted from the stream meanwhile is acknowledged: nothing is
    left to handle. (XPENDING then XCLAIM rather than XAUTOCLAIM: Redis 6.2's XAUTOCLAIM
    answers a deleted entry without its id, so it could never be acknowledged.)"""
    rows = cast(
        list[dict[str, Any]],
        await redis.xpending_range(stream, group, min="-", max="+", count=count, idle=min_idle_ms),
    )
    if not rows:
        return []
    ids: list[StreamIdT] = [row["message_id"] for row in rows]
    claimed = cast(
        list[tuple[bytes | None, dict[bytes, bytes] | None]],
        await redis.xclaim(stream, group, consumer, min_idle_ms, ids),
    )
    live: dict[StreamIdT, dict[bytes, bytes]] = {
        raw_id: fields or {} for raw_id, fields in claimed if raw_id is not None
    }
    entries: list[ClaimedEntry] = []
    for raw_id, row in zip(ids, rows, strict=True):
        if raw_id in live:
            body = live[raw_id].get(DATA_FIELD, b"")
            entries.append(ClaimedEntry(_text(raw_id), body, int(row["times_delivered"]) + 1))
        elif not await redis.xrange(stream, min=raw_id, max=raw_id, count=1):
            await redis.xack(stream, group, raw_id)
    return entries
