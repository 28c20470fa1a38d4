"""The batch commands, as users and evaluation harnesses call them."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import newsmon_up, wait_for_metric
from harness import free_port, redis_servers_under, start_newsmon, stop_group, wait_for

from services.samples.server import SampleSite, sample_pages

pytestmark = pytest.mark.e2e


def newsmon(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def grouped_ids(lines: list[str]) -> list[list[str]]:
    """`newsmon group` on JSONL lines: the article ids of each story, sorted; every input
    line answered once, in order."""
    grouped = newsmon("group", "-", stdin="\n".join(lines) + "\n")
    assert grouped.returncode == 0, grouped.stderr
    output = [json.loads(line) for line in grouped.stdout.splitlines()]
    assert [o["id"] for o in output] == [json.loads(line)["id"] for line in lines]
    stories: dict[str, list[str]] = {}
    for o in output:
        stories.setdefault(o["story"], []).append(o["id"])
    return sorted(sorted(ids) for ids in stories.values())


def test_clean_prints_one_json_object_per_input(tmp_path: Path) -> None:
    pages = sorted(sample_pages())
    gz = tmp_path / "page.html.gz"
    gz.write_bytes(gzip.compress(pages[0].read_bytes()))
    result = newsmon("clean", str(pages[1]), str(gz))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["source"] for r in records] == [pages[1].name, "page.html.gz"]
    for record in records:
        assert record["title"] and record["text"] and record["lang"]
        assert {"date", "word_count", "empty_reason"} <= record.keys()


def test_clean_reports_unreadable_input_and_goes_on(tmp_path: Path) -> None:
    page = sorted(sample_pages())[0]
    result = newsmon("clean", str(tmp_path / "missing.html"), str(page))
    assert result.returncode == 1
    assert "cannot read" in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert "error" in records[0] and records[1]["text"]


def test_seed_pages_cleaned_then_grouped_give_the_expected_stories(tmp_path: Path) -> None:
    pages = sorted(sample_pages())
    cleaned = newsmon("clean", *map(str, pages))
    assert cleaned.returncode == 0, cleaned.stderr
    lines = []
    for record in map(json.loads, cleaned.stdout.splitlines()):
        seed = record["source"][:3]
        lines.append(
            json.dumps(
                {
                    "id": seed,
                    "title": record["title"],
                    "text": record["text"],
                    "lang": record["lang"],
                }
            )
        )
    assert grouped_ids(lines) == [["000", "002", "004"], ["001"], ["003"]]


SEEDS = Path(__file__).resolve().parents[2] / ".." / "shared" / "seeds"


def test_seed_texts_without_languages_give_the_expected_stories() -> None:
    files = sorted(SEEDS.glob("0*.txt"))
    if len(files) != 5:
        pytest.skip(f"the five seed texts are absent from {SEEDS}")
    lines = []
    for path in files:
        title, _, text = path.read_text(encoding="utf-8").strip().partition("\n")
        lines.append(json.dumps({"id": path.name[:3], "title": title, "text": text}))
    assert grouped_ids(lines) == [["000", "002", "004"], ["001"], ["003"]]


def test_group_rejects_a_bad_line_with_its_number() -> None:
    result = newsmon("group", "-", stdin='{"id": "1", "title": "t", "text": "x"}\nnot json\n')
    assert result.returncode == 2
    assert ":2:" in result.stderr


def test_up_runs_the_pipeline_serves_metrics_and_stops_on_sigterm(tmp_path: Path) -> None:
    with SampleSite() as site:
        config = (
            f"sources:\n  - name: sample-news\n    url: {site.feed_url}\n"
            "topics:\n  - name: OpenAI\n    keywords: [OpenAI]\n"
            'allowed_private_hosts: ["127.0.0.1:*"]\n'
        )
        with newsmon_up(config, tmp_path) as (base_url, process):
            alerts = wait_for_metric(
                base_url, 'newsmon_alerter_alerts_total{kind="new",topic="OpenAI"}', 3
            )
            assert alerts == 3.0
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    output = (tmp_path / "newsmon.log").read_text(encoding="utf-8")
    assert process.returncode == 0, output
    assert "metrics at" in output and "stopped" in output


def test_demo_keeps_serving_the_stories_page_until_ctrl_c(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    env = {**os.environ, "NEWSMON_HTTP_PORT": str(free_port())}
    with (tmp_path / "demo.log").open("w", encoding="utf-8") as log:
        process = start_newsmon(["demo", "--serve", "--data-dir", str(data_dir)], env, log)
        try:
            wait_for(
                lambda: "Serving until Ctrl-C" in (tmp_path / "demo.log").read_text("utf-8"),
                120,
                "the demo's page line",
            )
            output = (tmp_path / "demo.log").read_text(encoding="utf-8")
            page = re.search(
                r"The stories page: (\S+)/ui +\(sign in with the token (\S+)\)", output
            )
            assert page, output
            stories = httpx.get(
                f"{page[1]}/stories", headers={"Authorization": f"Bearer {page[2]}"}, timeout=10
            )
            assert len(stories.json()["items"]) == 3
            process.send_signal(signal.SIGINT)  # Ctrl-C
            assert process.wait(timeout=60) == 0
        finally:
            stop_group(process)
    assert "newsmon demo: stopped" in (tmp_path / "demo.log").read_text(encoding="utf-8")
    assert redis_servers_under(data_dir) == []  # its embedded Redis stopped with it
