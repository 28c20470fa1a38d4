"""What every newsmon HTTP API shares: one bearer-token check that fails closed, bounded
request bodies, and errors as JSON (`{"error": "..."}`)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

Endpoint = Callable[[Request], Awaitable[Response]]
M = TypeVar("M", bound=BaseModel)


def json_error(status: int, message: str) -> JSONResponse:
    """An error response a client can read: its status and `{"error": message}`."""
    return JSONResponse({"error": message}, status_code=status)


def bearer_protected(token: str | None, setting: str) -> Callable[[Endpoint], Endpoint]:
    """Wraps endpoints so they answer only `Authorization: Bearer <token>` (401 otherwise);
    with no token configured the API is off (503 naming `setting`), never open."""

    def protect(endpoint: Endpoint) -> Endpoint:
        async def guarded(request: Request) -> Response:
            if token is None:
                return json_error(503, f"API disabled: set {setting}")
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return json_error(401, "missing or wrong bearer token")
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
        return json_error(422, "; ".join(e["msg"] for e in exc.errors(include_input=False)))
