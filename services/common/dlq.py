"""Dead letters: list, show, replay into their stream, purge (`newsmon dlq`).

A dead letter that came from a stream entry can be replayed: its payload goes
back on the stream it failed on (as a new entry) and leaves the dead-letter
stream. Dead letters of fetches (a broken feed or page, no entry id) record
what failed; they are not messages and cannot be replayed. A webhook
subscriber's dead letters (`{alerts}.webhook.<name>.dlq`) go back on
`{alerts}.webhook.<name>`, which only that subscriber's worker reads: the other
subscribers do not get the alert twice.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO, cast

import redis.asyncio as aioredis

from contracts import DeadLetter
from contracts.streams import DLQ_SUFFIX, dead_letter_stream, stream_of_dead_letters
from services.common.bus import DATA_FIELD
from services.common.redis import connect


@dataclass(frozen=True, slots=True)
class StoredLetter:
    """A dead letter and its entry id in the dead-letter stream."""

    dlq_id: str
    letter: DeadLetter | None
    raw: bytes

    @property
    def replayable(self) -> bool:
        return self.letter is not None and bool(self.letter.entry_id)


async def streams_with_dead_letters(redis: aioredis.Redis) -> list[str]:
    """Every stream whose dead-letter stream exists, sorted (on a cluster, every master's)."""
    names = [key.decode() async for key in redis.scan_iter(match=f"*{DLQ_SUFFIX}", _type="stream")]
    return sorted(stream_of_dead_letters(name) for name in names)


def _parse(dlq_id: bytes, fields: dict[bytes, bytes]) -> StoredLetter:
    raw = fields.get(DATA_FIELD, b"")
    try:
        letter: DeadLetter | None = DeadLetter.model_validate_json(raw)
    except ValueError:
        letter = None
    return StoredLetter(dlq_id.decode(), letter, raw)


async def read_letters(
    redis: aioredis.Redis, stream: str, *, ids: Sequence[str] = (), limit: int = 1000
) -> list[StoredLetter]:
    """Dead letters of `stream` (oldest first), or only those with the given ids."""
    dlq = dead_letter_stream(stream)
    if ids:
        found: list[StoredLetter] = []
        for entry_id in ids:
            entries = cast(
                list[tuple[bytes, dict[bytes, bytes]]],
                await redis.xrange(dlq, min=entry_id, max=entry_id),
            )
            found.extend(_parse(i, f) for i, f in entries)
        return found
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(dlq, count=limit))
    return [_parse(i, f) for i, f in entries]


async def replay(redis: aioredis.Redis, stream: str, letters: Sequence[StoredLetter]) -> int:
    """Put replayable letters' payloads back on `stream`; returns how many."""
    replayed = 0
    for stored in letters:
        if not stored.replayable or stored.letter is None:
            continue
        async with redis.pipeline(transaction=True) as pipe:
            pipe.xadd(stream, {DATA_FIELD: stored.letter.payload.encode()})
            pipe.xdel(dead_letter_stream(stream), stored.dlq_id)
            await pipe.execute()
        replayed += 1
    return replayed


async def purge(redis: aioredis.Redis, stream: str, ids: Sequence[str] = ()) -> int:
    """Delete the given dead letters of `stream`, or all of them; returns how many."""
    dlq = dead_letter_stream(stream)
    if ids:
        return int(await redis.xdel(dlq, *ids))
    count = int(await redis.xlen(dlq))
    await redis.delete(dlq)
    return count


def describe(stored: StoredLetter, width: int = 100) -> str:
    """One line per dead letter, for `newsmon dlq list`."""
    letter = stored.letter
    if letter is None:
        return f"{stored.dlq_id}  (unreadable dead letter: {stored.raw[:60]!r})"
    error = " ".join(letter.error.split())
    error = error if len(error) <= width else error[: width - 1] + "…"
    flag = "" if stored.replayable else "  [not replayable]"
    return (
        f"{stored.dlq_id}  {letter.failed_at:%Y-%m-%d %H:%M:%S}  {letter.service}"
        f"  {letter.reason}  {error}{flag}"
    )


async def run_dlq_command(url: str, args: argparse.Namespace, out: TextIO) -> int:
    """`newsmon dlq list|show|replay|purge`; returns the exit status."""
    redis = connect(url)
    try:
        if args.dlq_command == "list" and not args.stream:
            streams = await streams_with_dead_letters(redis)
            for stream in streams:
                dlq = dead_letter_stream(stream)
                out.write(f"{stream}  {await redis.xlen(dlq)} dead letter(s) in {dlq}\n")
            if not streams:
                out.write("no dead letters\n")
            return 0
        if args.dlq_command == "list":
            letters = await read_letters(redis, args.stream)
            for stored in letters:
                out.write(describe(stored) + "\n")
            out.write(f"{len(letters)} dead letter(s) in {dead_letter_stream(args.stream)}\n")
            return 0
        if args.dlq_command == "show":
            found = await read_letters(redis, args.stream, ids=[args.id])
            if not found:
                out.write(f"no dead letter {args.id} in {dead_letter_stream(args.stream)}\n")
                return 1
            out.write(found[0].raw.decode("utf-8", errors="backslashreplace") + "\n")
            return 0
        ids = [] if args.all else args.ids
        if args.dlq_command == "replay":
            letters = await read_letters(redis, args.stream, ids=ids, limit=10**9)
            done = await replay(redis, args.stream, letters)
            skipped = len(letters) - done
            out.write(f"replayed {done} onto {args.stream}; {skipped} not replayable, kept\n")
            return 0
        removed = await purge(redis, args.stream, ids)
        out.write(f"purged {removed} from {dead_letter_stream(args.stream)}\n")
        return 0
    finally:
        await redis.aclose()
