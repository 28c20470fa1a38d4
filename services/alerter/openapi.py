"""The OpenAPI description of the read API (`GET /stories`, `/stories/{id}`, `/alerts`),
built from the models it answers with; committed as contracts/openapi.json."""

from __future__ import annotations

import json
from typing import Any

from pydantic.json_schema import models_json_schema

from contracts.stories import AlertPage, StoryDetail, StoryPage

_REF = "#/components/schemas/{model}"
_ERROR = {"description": '`{"error": "..."}` saying what is wrong'}


def _param(
    name: str, description: str, schema: dict[str, Any], where: str = "query"
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema,
    }


_TEXT = {"type": "string"}
_TIME = {"type": "string", "description": "ISO 8601, or an age such as 30m, 2h, 7d"}
_LIMIT = {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}
_LANG = _param("lang", "Language(s) wanted, e.g. `fr` or `pt,en`; else Accept-Language", _TEXT)


def _answer(model: str) -> dict[str, Any]:
    return {
        "200": {
            "description": model,
            "content": {"application/json": {"schema": {"$ref": _REF.format(model=model)}}},
        },
        "400": _ERROR,
        "401": _ERROR,
        "503": _ERROR,
    }


def openapi_document() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [(m, "serialization") for m in (StoryPage, StoryDetail, AlertPage)], ref_template=_REF
    )
    story_filters = [
        _param("topic", "Only stories that matched this topic", _TEXT),
        _param("lang", "Only stories told in this language; also the title's language", _TEXT),
        _param("since", "Only stories active since", _TIME),
        _param("until", "Only stories last active before", _TIME),
        _param("min_languages", "At least this many languages", {"type": "integer"}),
        _param("min_sources", "At least this many outlets", {"type": "integer"}),
        _param("q", "Words that must all be in one title (folded: case, accents)", _TEXT),
        _param("limit", "Items per page", _LIMIT),
        _param("cursor", "`next_cursor` of the previous page", _TEXT),
    ]
    return {
        "openapi": "3.1.0",
        "info": {"title": "newsmon read API", "version": "1"},
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/stories": {
                "get": {
                    "summary": "Stories, most recently active first",
                    "parameters": story_filters,
                    "responses": _answer("StoryPage"),
                }
            },
            "/stories/{story_id}": {
                "get": {
                    "summary": "A story and its articles",
                    "parameters": [_param("story_id", "The story's id", _TEXT, "path"), _LANG],
                    "responses": {**_answer("StoryDetail"), "404": _ERROR},
                }
            },
            "/alerts": {
                "get": {
                    "summary": "Alerts sent, newest first, from what is retained",
                    "parameters": [
                        _param("topic", "Only this topic's alerts", _TEXT),
                        _param("since", "Sent since", _TIME),
                        _param("until", "Sent before", _TIME),
                        _param("limit", "Items per page", _LIMIT),
                        _param("cursor", "`next_cursor` of the previous page", _TEXT),
                    ],
                    "responses": _answer("AlertPage"),
                }
            },
        },
    }


def openapi_json() -> str:
    """The document as committed in contracts/openapi.json."""
    return json.dumps(openapi_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
