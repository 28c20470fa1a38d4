"""What every newsmon HTTP API shares: one token check with read and admin scopes that fails
closed, bounded request bodies, and errors as JSON (`{"error": "..."}`)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

Endpoint = Callable[[Request], Awaitable[Response]]
M = TypeVar("M", bound=BaseModel)


def json_error(status: int, message: str) -> JSONResponse:
    """An error response a client can read: its status and `{"error": message}`."""
    return JSONResponse({"error": message}, status_code=status)


SESSION_COOKIE = "newsmon_token"
"""Cookie the web page's sign-in sets: it carries a token, and grants reads only."""
Scope = Literal["read", "admin"]


@dataclass(frozen=True, slots=True)
class ApiTokens:
    """The bearer tokens of one API: `admin` may do everything, `read` may only read.
    Each is named by the setting that holds it, for the messages."""

    admin: str | None
    admin_setting: str
    read: str | None = None
    read_setting: str | None = None

    def scope_of(self, given: str) -> Scope | None:
        """What the token `given` may do; None when it is no token of this API. An empty
        token (a setting set to "") is no token: it would match a request without one."""
        if self.admin and hmac.compare_digest(given.encode(), self.admin.encode()):
            return "admin"
        if self.read and hmac.compare_digest(given.encode(), self.read.encode()):
            return "read"
        return None

    def unset_message(self, scope: Scope) -> str | None:
        """Why the API cannot serve `scope` at all (no token that grants it), or None."""
        if self.admin or (scope == "read" and self.read):
            return None
        settings = [self.admin_setting]
        if scope == "read" and self.read_setting:
            settings.append(self.read_setting)
        return f"API disabled: set {' or '.join(settings)}"


def presented_token(request: Request, scope: Scope) -> str:
    """The token a request carries: its bearer token, or for a read (GET) the sign-in
    cookie of the web page ("" when none)."""
    header = request.headers.get("authorization", "")
    if header.startswith("Bearer "):
        return header.removeprefix("Bearer ")
    if scope == "read" and request.method in ("GET", "HEAD"):
        return request.cookies.get(SESSION_COOKIE, "")
    return ""


def protected(tokens: ApiTokens, scope: Scope) -> Callable[[Endpoint], Endpoint]:
    """Wraps endpoints so they answer only a token that grants `scope`: 401 without a
    valid token, 403 with a read token on an admin endpoint; with no token that grants it
    configured the endpoint is off (503 naming the setting), never open."""

    def protect(endpoint: Endpoint) -> Endpoint:
        async def guarded(request: Request) -> Response:
            unset = tokens.unset_message(scope)
            if unset is not None:
                return json_error(503, unset)
            granted = tokens.scope_of(presented_token(request, scope))
            if granted is None:
                return json_error(401, "missing or wrong bearer token")
            if scope == "admin" and granted != "admin":
                return json_error(403, "this token may only read")
            return await endpoint(request)

        return guarded

    return protect


async def read_body(request: Request, max_bytes: int) -> bytes | Response:
    """The request body, or a 413 once it is larger than `max_bytes` (read no further)."""
    too_large = json_error(413, f"request body over {max_bytes} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        return too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            return too_large
    return bytes(body)


async def read_model(request: Request, model: type[M], max_bytes: int) -> M | Response:
    """The body as `model`, or the response to send: 413 when too large, 422 saying what is
    wrong with it."""
    body = await read_body(request, max_bytes)
    if isinstance(body, Response):
        return body
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        return json_error(422, "; ".join(_described(e) for e in exc.errors(include_input=False)))


def _described(error: ErrorDetails) -> str:
    """A validation error with the field it is about: "source: Extra inputs are not
    permitted"."""
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else error["msg"]
