"""The stories and alerts read API as a user meets it: `newsmon up` as a real process on
the sample site, asked over real HTTP; answers checked against the committed OpenAPI
document."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import pytest
from conftest import READ_TOKEN, REPO, SeededNewsmon

pytestmark = pytest.mark.e2e

READ = {"Authorization": f"Bearer {READ_TOKEN}"}
OPENAPI = json.loads((REPO / "contracts" / "openapi.json").read_text(encoding="utf-8"))


def _get(seeded: SeededNewsmon, path: str, model: str, **params: str | int) -> Any:
    response = httpx.get(f"{seeded.base_url}{path}", params=params, headers=READ, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    schema = {"$ref": f"#/components/schemas/{model}", "components": OPENAPI["components"]}
    jsonschema.validate(body, schema)
    return body


def test_the_seeds_are_three_stories_one_of_them_told_in_three_languages(
    seeded: SeededNewsmon,
) -> None:
    page = _get(seeded, "/stories", "StoryPage")
    assert sorted(s["article_count"] for s in page["items"]) == [1, 1, 3]
    assert page["next_cursor"] is None
    big = next(s for s in page["items"] if s["article_count"] == 3)
    assert set(big["languages"]) == {"fr", "it", "pt"}
    assert set(big["topics"]) >= {"OpenAI", "nuclear energy"}

    story = _get(seeded, f"/stories/{big['story_id']}", "StoryDetail", lang="it")
    assert story["title_lang"] == "it" and story["title"] == story["titles"]["it"]
    reasons = sorted(a["reason"] for a in story["articles"])
    assert reasons == ["new", "translation", "translation"]
    for article in story["articles"]:
        assert article["url"].startswith("https://") and article["fetched_at"]
        if article["reason"] == "translation":
            assert 0.3 <= article["similarity"] <= 1.0


def test_filters_and_pages(seeded: SeededNewsmon) -> None:
    nuclear = _get(seeded, "/stories", "StoryPage", topic="nuclear energy")["items"]
    assert [s["article_count"] for s in nuclear] == [3]
    assert len(_get(seeded, "/stories", "StoryPage", min_languages=2)["items"]) == 1
    assert len(_get(seeded, "/stories", "StoryPage", lang="it")["items"]) == 1
    assert _get(seeded, "/stories", "StoryPage", lang="ja")["items"] == []
    # words are matched as the alerter folds them: case and accents do not matter
    nadella = _get(seeded, "/stories", "StoryPage", q="NADELLA")["items"]
    assert len(nadella) == 1 and "Nadella" in nadella[0]["title"]
    assert _get(seeded, "/stories", "StoryPage", since="1h")["items"]
    assert _get(seeded, "/stories", "StoryPage", until="2000-01-01T00:00:00Z")["items"] == []

    seen: list[str] = []
    params: dict[str, str | int] = {"limit": 1}
    while True:
        page = _get(seeded, "/stories", "StoryPage", **params)
        seen += [s["story_id"] for s in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert len(seen) == 3 and len(set(seen)) == 3


def test_alert_history_by_topic(seeded: SeededNewsmon) -> None:
    openai = _get(seeded, "/alerts", "AlertPage", topic="OpenAI")
    assert len(openai["items"]) == 3
    assert {item["alert"]["topic"] for item in openai["items"]} == {"OpenAI"}
    first = _get(seeded, "/alerts", "AlertPage", limit=2)
    rest = _get(seeded, "/alerts", "AlertPage", limit=100, cursor=first["next_cursor"])
    ids = [i["id"] for i in first["items"] + rest["items"]]
    assert len(ids) == len(set(ids)) == 5  # 3 OpenAI, 1 nuclear energy, 1 Microsoft deal


def test_no_token_wrong_token_bad_query_and_unknown_paths_get_clear_json_errors(
    seeded: SeededNewsmon,
) -> None:
    url = seeded.base_url
    assert httpx.get(f"{url}/stories", timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer wrong"}
    assert httpx.get(f"{url}/stories", headers=wrong, timeout=10).status_code == 401
    for params in (
        {"limit": "0"},
        {"since": "yesterday"},
        {"cursor": "x"},
        {"q": " ".join(f"w{n}" for n in range(11))},
    ):
        response = httpx.get(f"{url}/stories", params=params, headers=READ, timeout=10)
        assert response.status_code == 400 and response.json()["error"], params
    missing = httpx.get(f"{url}/stories/s-000000000000", headers=READ, timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]
    unknown = httpx.get(f"{url}/nowhere", timeout=10)
    assert unknown.status_code == 404 and unknown.json() == {"error": "no such path: /nowhere"}


def test_the_committed_openapi_document_is_the_generated_one() -> None:
    from services.alerter.openapi import openapi_json

    committed = (REPO / "contracts" / "openapi.json").read_text(encoding="utf-8")
    assert committed == openapi_json(), "run: newsmon openapi > contracts/openapi.json"


def test_newsmon_stories_prints_the_stories(seeded: SeededNewsmon) -> None:
    table = seeded.command("stories")
    assert table.returncode == 0, table.stderr
    assert len(table.stdout.splitlines()) == 4  # a header and three stories
    listed = json.loads(seeded.command("stories", "--topic", "nuclear energy", "--json").stdout)
    assert [s["article_count"] for s in listed] == [3]
    story = seeded.command("stories", listed[0]["story_id"], "--lang", "pt")
    assert story.stdout.count("translation") == 2 and "[pt]" in story.stdout
