"""Configuration of alert subscribers (webhooks).

Redis streams (`alerts`, `{alerts}.<topic>`) and the server-sent-events endpoint need no
subscription: any client may read them. A webhook subscriber gets every alert of its
topics POSTed as JSON, signed with its secret, through its own delivery worker.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from contracts.base import ConfigModel

SUBSCRIBER_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class WebhookSubscription(ConfigModel):
    """One webhook subscriber."""

    name: str = Field(description="Unique name: letters, digits, '_', '.', '-'; 1-64 chars.")
    url: str = Field(min_length=1, description="http(s) URL the alerts are POSTed to.")
    secret: str = Field(min_length=16, description="HMAC-SHA256 key for the signature header.")
    topics: tuple[str, ...] = Field(default=(), description="Topic names; empty: every topic.")
    digest_minutes: float | None = Field(
        default=None,
        gt=0,
        description="Send one digest message listing the stories every N minutes instead.",
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        if not SUBSCRIBER_NAME.match(name):
            raise ValueError("name: 1-64 letters, digits, '_', '.' or '-'")
        return name

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("url must be http:// or https://")
        return url
