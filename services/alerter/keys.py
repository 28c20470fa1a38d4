"""Where the alerter keeps its state in Redis.

Its keys (`newsmon:alerter:{alerts}:sent:<alert id>`, `...:story:<story id>`, the catalog's
`...:api:*`) and the per-topic alert streams (`{alerts}.<topic>`) share the hash slot of the
`alerts` stream, so one script records an alert and publishes it on both streams at once on a
cluster too. The story read model has a hash tag of its own (`stories.py`).
"""

from __future__ import annotations

from functools import partial

from contracts.streams import ALERTS, hash_tag
from services.common.keys import LegacyKeys


def alerter_key(prefix: str, *parts: str) -> str:
    """A key of the alerter's state: `newsmon:alerter:{alerts}:sent:<id>`."""
    return ":".join((prefix, hash_tag(ALERTS), *parts))


def renamed_alerter_key(prefix: str, key: str) -> str | None:
    """Today's name of an alerter key or alert stream named as before hash tags
    (`newsmon:alerter:sent:X` -> `newsmon:alerter:{alerts}:sent:X`, `alerts.openai` ->
    `{alerts}.openai`, `alerts.webhook.x.dlq` -> `{alerts}.webhook.x.dlq`); None for a key
    named as today."""
    if "{" in key:
        return None
    if key.startswith(ALERTS + "."):
        return hash_tag(ALERTS) + key.removeprefix(ALERTS)
    rest = key.removeprefix(prefix + ":")
    return None if rest == key else alerter_key(prefix, rest)


def legacy_alerter_keys(prefix: str) -> list[LegacyKeys]:
    """The alerter's keys and streams that earlier versions named without hash tags."""
    rename = partial(renamed_alerter_key, prefix)
    return [LegacyKeys(f"{prefix}:*", rename), LegacyKeys(f"{ALERTS}.*", rename)]
