"""The fetcher's HTTP API: manage sources at run time and push pages. Every route needs
`Authorization: Bearer <NEWSMON_FETCHER_API_TOKEN>` (401 without it; 503 while no token is
set: the API is off, never open); a body over `NEWSMON_FETCHER_API_MAX_BODY_BYTES` gets 413.

GET /sources                      every source with its state
POST /sources                     add one (a SourceConfig as JSON)              -> 201
GET /sources/{name}               one source with its state
POST /sources/{name}/pause        stop polling it
POST /sources/{name}/resume       poll it again at once (also a broken or disabled one)
DELETE /sources/{name}            remove a run-time source                       -> 204
POST /ingest                      {"url", optional "html", "lang", "tags"}      -> 202
                                  (400: not an absolute http(s) URL; 502: fetch failed)

A publisher's push token (`NEWSMON_FETCHER_PUSH_TOKENS`) may only POST /ingest (401
elsewhere), and the page is published under the publisher's name as its source; with the
admin token the source is "ingest". A caller never chooses the source.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contracts import SourceConfig
from services.common.http_api import (
    ApiTokens,
    json_error,
    presented_token,
    protected,
    read_model,
)
from services.fetcher.core import pushed_page_url
from services.fetcher.handlers import INGEST_SOURCE, Poller
from services.fetcher.store import describe_source


class IngestRequest(BaseModel):
    """A page pushed by a client: its URL and, optionally, its HTML (else it is fetched)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1)
    html: str | None = None
    lang: str | None = None
    tags: tuple[str, ...] = ()


def pushed_by(tokens: ApiTokens, push_tokens: Mapping[str, str], given: str) -> str | None:
    """Whose page a request with token `given` pushes: the publisher's name for a push
    token, "ingest" for the admin token, None for no token of this API."""
    if tokens.scope_of(given) == "admin":
        return INGEST_SOURCE
    for name, token in push_tokens.items():
        if hmac.compare_digest(given.encode(), token.encode()):
            return name
    return None


def create_api(
    poller: Poller,
    *,
    token: str | None,
    push_tokens: Mapping[str, str],
    max_body_bytes: int,
) -> Starlette:
    """A small ASGI app over `poller`; mounted at `/sources` and `/ingest`."""
    tokens = ApiTokens(admin=token, admin_setting="NEWSMON_FETCHER_API_TOKEN")
    admin = protected(tokens, "admin")

    async def describe(source: SourceConfig) -> dict[str, object]:
        state = await poller.load_state(source)
        origin = "config" if poller.is_configured(source.name) else "api"
        return describe_source(source, state, origin=origin)

    async def list_sources(request: Request) -> Response:
        sources = await poller.sources()
        return JSONResponse({"sources": [await describe(s) for s in sources]})

    async def add_source(request: Request) -> Response:
        source = await read_model(request, SourceConfig, max_body_bytes)
        if isinstance(source, Response):
            return source
        if not await poller.add_source(source):
            return json_error(409, f"a source named {source.name!r} exists already")
        return JSONResponse(await describe(source), status_code=201)

    async def get_source(request: Request) -> Response:
        source = await poller.find_source(request.path_params["name"])
        if source is None:
            return json_error(404, "no such source")
        return JSONResponse(await describe(source))

    async def pause(request: Request) -> Response:
        return await _set_paused(request, paused=True)

    async def resume(request: Request) -> Response:
        return await _set_paused(request, paused=False)

    async def _set_paused(request: Request, *, paused: bool) -> Response:
        source = await poller.find_source(request.path_params["name"])
        if source is None:
            return json_error(404, "no such source")
        await poller.set_paused(source.name, paused)
        return JSONResponse(await describe(source))

    async def remove(request: Request) -> Response:
        name = request.path_params["name"]
        if poller.is_configured(name):
            return json_error(409, "defined in the config file: pause it, or edit the config")
        if not await poller.remove_source(name):
            return json_error(404, "no such source")
        return Response(status_code=204)

    async def ingest(request: Request) -> Response:
        if not token and not push_tokens:
            return json_error(
                503, "API disabled: set NEWSMON_FETCHER_API_TOKEN or NEWSMON_FETCHER_PUSH_TOKENS"
            )
        source = pushed_by(tokens, push_tokens, presented_token(request, "admin"))
        if source is None:
            return json_error(401, "missing or wrong bearer token")
        pushed = await read_model(request, IngestRequest, max_body_bytes)
        if isinstance(pushed, Response):
            return pushed
        try:
            url = pushed_page_url(pushed.url)
        except ValueError as exc:
            return json_error(400, str(exc))
        result = await poller.ingest(
            url, html=pushed.html, source=source, lang=pushed.lang, tags=pushed.tags
        )
        body = {
            "article_id": result.article_id,
            "url": result.url,
            "outcome": result.outcome,
            "error": result.error,
        }
        return JSONResponse(body, status_code=502 if result.outcome == "failed" else 202)

    return Starlette(
        routes=[
            Route("/sources", admin(list_sources), methods=["GET"]),
            Route("/sources", admin(add_source), methods=["POST"]),
            Route("/sources/{name}", admin(get_source), methods=["GET"]),
            Route("/sources/{name}", admin(remove), methods=["DELETE"]),
            Route("/sources/{name}/pause", admin(pause), methods=["POST"]),
            Route("/sources/{name}/resume", admin(resume), methods=["POST"]),
            Route("/ingest", ingest, methods=["POST"]),
        ]
    )
