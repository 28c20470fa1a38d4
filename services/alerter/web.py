"""The web page: stories as they form, each story's versions side by side, alerts per topic.

Server-rendered HTML (templates in `templates/`), one small script (`static/live.js`) that
inserts stories arriving on `/stories/stream` without a reload; nothing is fetched from
elsewhere. Reading needs a token of the API (read or admin): the sign-in form keeps it in an
HttpOnly, SameSite=Strict cookie, which grants reads only.
"""

from __future__ import annotations

from datetime import datetime
from importlib.resources import files
from pathlib import Path
from urllib.parse import parse_qs, urlencode

import redis.asyncio as aioredis
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from contracts.stories import StoryArticle
from services.alerter.api import alert_page
from services.alerter.catalog import Catalog
from services.alerter.stories import StoryView
from services.alerter.views import (
    QueryError,
    detail,
    parse_story_query,
    preferred_languages,
    summary,
    wanted,
)
from services.common.clock import Clock
from services.common.http_api import SESSION_COOKIE, ApiTokens, presented_token, read_body

PREFIX = "/ui"
MAX_FORM_BYTES = 4096
"""The sign-in form holds one token."""
FILTERS = ("topic", "lang", "q", "min_languages", "min_sources", "since")
"""Query parameters of the list page that the live updates keep applying."""
_HERE = Path(str(files("services.alerter")))


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(_HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    return env


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else ""


def create_web(
    *,
    redis: aioredis.Redis,
    view: StoryView,
    catalog: Catalog,
    clock: Clock,
    tokens: ApiTokens,
) -> Starlette:
    """The ASGI app of every path under `/ui`, and `/` (which leads there)."""
    env = _environment()

    def page(name: str, status: int = 200, **context: object) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**context), status_code=status)

    def refused(request: Request) -> Response | None:
        """The answer for a reader who may not read (sign-in page), or None."""
        unset = tokens.unset_message("read")
        if unset is not None:
            return page("message.html", 503, title="Page off", message=unset)
        if tokens.scope_of(presented_token(request, "read")) is None:
            return RedirectResponse(f"{PREFIX}/login", status_code=303)
        return None

    def languages(request: Request) -> tuple[str, ...]:
        return preferred_languages(
            request.query_params.get("lang"), request.headers.get("accept-language")
        )

    async def home(request: Request) -> Response:
        return RedirectResponse(PREFIX, status_code=303)

    async def stories(request: Request) -> Response:
        if (answer := refused(request)) is not None:
            return answer
        now = clock()
        filters = {k: v for k, v in request.query_params.items() if v and k in FILTERS}
        try:
            query = parse_story_query({**filters, **_cursor(request)}, now)
        except QueryError as exc:
            return page("message.html", 400, title="Bad filter", message=str(exc))
        listing = await view.page(query, now)
        await catalog.refresh()
        older = (
            f"{PREFIX}?{urlencode({**filters, 'cursor': listing.next_cursor})}"
            if listing.next_cursor
            else None
        )
        return page(
            "stories.html",
            stories=[summary(r, languages(request)) for r in listing.records],
            topics=[t.name for t in catalog.topics],
            filters=filters,
            live=query.after is None,
            live_query=urlencode(filters),
            older=older,
        )

    async def story(request: Request) -> Response:
        if (answer := refused(request)) is not None:
            return answer
        found = await view.story(request.path_params["story_id"])
        if found is None:
            return page("message.html", 404, title="No such story", message=_GONE)
        record, articles = found
        shown = detail(record, articles, languages(request))
        return page("story.html", story=shown, versions=_by_language(shown.articles))

    async def story_row(request: Request) -> Response:
        """One story's row of the list, if it passes the list's filters (else 204)."""
        if (answer := refused(request)) is not None:
            return answer
        found = await view.story(request.path_params["story_id"])
        if found is None:
            return Response(status_code=404)
        filters = {k: v for k, v in request.query_params.items() if v and k in FILTERS}
        try:
            query = parse_story_query(filters, clock())
        except QueryError:
            return Response(status_code=400)
        record = found[0]
        if not wanted(record, query) or (query.since and record.last_seen < query.since):
            return Response(status_code=204)
        return page("_story_row.html", story=summary(record, languages(request)))

    async def alerts(request: Request) -> Response:
        if (answer := refused(request)) is not None:
            return answer
        await catalog.refresh()
        topic = request.query_params.get("topic")
        params = {"topic": topic} if topic else {}
        params.update(_cursor(request))
        try:
            found = await alert_page(redis, params, clock())
        except QueryError as exc:
            return page("message.html", 400, title="Bad filter", message=str(exc))
        older = (
            f"{PREFIX}/alerts?{urlencode({**params, 'cursor': found.next_cursor})}"
            if found.next_cursor
            else None
        )
        return page(
            "alerts.html",
            alerts=found.items,
            topics=[t.name for t in catalog.topics],
            topic=topic,
            older=older,
        )

    async def sign_in_form(request: Request) -> Response:
        return page("login.html")

    async def sign_in(request: Request) -> Response:
        body = await read_body(request, MAX_FORM_BYTES)
        if isinstance(body, Response):
            return body
        token = parse_qs(body.decode("utf-8", "replace")).get("token", [""])[0].strip()
        if tokens.scope_of(token) is None:
            return page("login.html", 401, error="That token is not one of this newsmon.")
        response = RedirectResponse(PREFIX, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    async def sign_out(request: Request) -> Response:
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    return Starlette(
        routes=[
            Route("/", home, methods=["GET"]),
            Route(PREFIX, stories, methods=["GET"]),
            Route(f"{PREFIX}/login", sign_in_form, methods=["GET"]),
            Route(f"{PREFIX}/login", sign_in, methods=["POST"]),
            Route(f"{PREFIX}/logout", sign_out, methods=["POST"]),
            Route(f"{PREFIX}/alerts", alerts, methods=["GET"]),
            Route(f"{PREFIX}/stories/{{story_id}}", story, methods=["GET"]),
            Route(f"{PREFIX}/stories/{{story_id}}/row", story_row, methods=["GET"]),
            Mount(f"{PREFIX}/static", StaticFiles(directory=_HERE / "static"), name="static"),
        ]
    )


_GONE = "This story is unknown, or older than the retention of the stories list."


def _cursor(request: Request) -> dict[str, str]:
    cursor = request.query_params.get("cursor")
    return {"cursor": cursor} if cursor else {}


def _by_language(articles: tuple[StoryArticle, ...]) -> list[tuple[str, list[StoryArticle]]]:
    """Articles grouped by language, languages in the order they joined the story."""
    groups: dict[str, list[StoryArticle]] = {}
    for article in articles:
        groups.setdefault(article.lang or "?", []).append(article)
    return list(groups.items())
