"""The fetcher's HTTP API: manage sources at run time and push pages. Every route needs
`Authorization: Bearer <NEWSMON_FETCHER_API_TOKEN>` (401 without it; 503 while no token is
set: the API is off, never open); a body over `NEWSMON_FETCHER_API_MAX_BODY_BYTES` gets 413.

GET /sources                      every source with its state
POST /sources                     add one (a SourceConfig as JSON)              -> 201
GET /sources/{name}               one source with its state
POST /sources/{name}/pause        stop polling it
POST /sources/{name}/resume       poll it again at once (also a broken or disabled one)
DELETE /sources/{name}            remove a run-time source                       -> 204
POST /ingest                      {"url", optional "html", "source", "lang", "tags"} -> 202
                                  (400: not an absolute http(s) URL; 502: fetch failed)
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contracts import SourceConfig
from services.common.http_api import ApiTokens, json_error, protected, read_model
from services.fetcher.core import pushed_page_url
from services.fetcher.handlers import INGEST_SOURCE, Poller
from services.fetcher.store import describe_source


class IngestRequest(BaseModel):
    """A page pushed by a client: its URL and, optionally, its HTML (else it is fetched)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1)
    html: str | None = None
    source: str = Field(default=INGEST_SOURCE, min_length=1)
    lang: str | None = None
    tags: tuple[str, ...] = ()


def create_api(poller: Poller, *, token: str | None, max_body_bytes: int) -> Starlette:
    """A small ASGI app over `poller`; mounted at `/sources` and `/ingest`."""
    admin = protected(ApiTokens(admin=token, admin_setting="NEWSMON_FETCHER_API_TOKEN"), "admin")

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
        pushed = await read_model(request, IngestRequest, max_body_bytes)
        if isinstance(pushed, Response):
            return pushed
        try:
            url = pushed_page_url(pushed.url)
        except ValueError as exc:
            return json_error(400, str(exc))
        result = await poller.ingest(
            url, html=pushed.html, source=pushed.source, lang=pushed.lang, tags=pushed.tags
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
            Route("/ingest", admin(ingest), methods=["POST"]),
        ]
    )
