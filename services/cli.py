"""The `newsmon` command: run the services, and batch commands on the same code."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from contracts import ConfigError, NewsmonConfig, load_config
from services import __version__
from services.common.logs import configure_logging
from services.common.redis import RedisUnavailableError, masked_url, redis_url_for
from services.common.runtime import ServiceFactory
from services.common.settings import CommonSettings

SERVICE_NAMES = ("fetcher", "cleaner", "detector", "alerter")
"""Every service, in pipeline order (services.registry maps them to factories; it is
imported only by commands that run services, so batch commands start fast)."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    settings = CommonSettings()
    configure_logging(args.log_level or settings.log_level, settings.log_format)
    try:
        result: int = args.run(args, settings)
    except ConfigError as exc:
        print(f"newsmon: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RedisUnavailableError as exc:
        print(f"newsmon: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsmon",
        description="News monitoring: feeds in, one alert per story out, across languages.",
    )
    parser.add_argument("--version", action="version", version=f"newsmon {__version__}")
    parser.add_argument("--log-level", help="DEBUG, INFO (default), WARNING, ERROR")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    up = commands.add_parser("up", help="run all four services in one process")
    up.add_argument("--config", type=Path, help="YAML config (default: $NEWSMON_CONFIG)")
    up.set_defaults(run=_run_up)

    serve = commands.add_parser("serve", help="run one service")
    serve.add_argument("service", choices=SERVICE_NAMES)
    serve.add_argument("--config", type=Path, help="YAML config (default: $NEWSMON_CONFIG)")
    serve.set_defaults(run=_run_serve)

    clean = commands.add_parser(
        "clean", help="extract articles from HTML files; one JSON object a line"
    )
    clean.add_argument("paths", nargs="+", help=".html or .html.gz files, or - for stdin")
    clean.set_defaults(run=_run_clean)

    group = commands.add_parser(
        "group", help="group a JSONL stream of articles into stories; prints {id, story} a line"
    )
    group.add_argument("file", help="JSONL with id, title, text and optional lang, url, published")
    group.set_defaults(run=_run_group)

    ingest = commands.add_parser(
        "ingest", help="publish pages from disk as raw articles (HTML files, folders, JSONL)"
    )
    ingest.add_argument("paths", nargs="+", help=".html(.gz) files, folders, or JSONL {url, html}")
    ingest.add_argument("--source", default="ingest", help="source name on the articles")
    ingest.add_argument("--lang", help="language hint, ISO 639-1")
    ingest.add_argument("--tag", action="append", default=[], help="a tag (repeatable)")
    ingest.set_defaults(run=_run_ingest)

    dlq = commands.add_parser("dlq", help="inspect, replay or purge dead letters")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", metavar="ACTION", required=True)
    dlq_list = dlq_commands.add_parser("list", help="dead letters per stream, or of one stream")
    dlq_list.add_argument(
        "stream", nargs="?", help="e.g. articles.raw (default: a count per stream)"
    )
    dlq_show = dlq_commands.add_parser("show", help="one dead letter in full, as JSON")
    dlq_show.add_argument("stream")
    dlq_show.add_argument("id", help="its id, as `dlq list STREAM` prints it")
    dlq_replay = dlq_commands.add_parser("replay", help="put dead letters back on their stream")
    dlq_replay.add_argument("stream")
    dlq_replay.add_argument("ids", nargs="*", help="ids to replay (default with --all: every one)")
    dlq_replay.add_argument("--all", action="store_true", help="replay every dead letter")
    dlq_purge = dlq_commands.add_parser("purge", help="delete dead letters")
    dlq_purge.add_argument("stream")
    dlq_purge.add_argument("ids", nargs="*", help="ids to delete (default with --all: every one)")
    dlq_purge.add_argument("--all", action="store_true", help="delete every dead letter")
    dlq.set_defaults(run=_run_dlq)

    asyncapi = commands.add_parser("asyncapi", help="print the AsyncAPI document of all channels")
    asyncapi.set_defaults(run=_run_asyncapi)
    openapi = commands.add_parser("openapi", help="print the OpenAPI document of the read API")
    openapi.set_defaults(run=_run_openapi)

    stories = commands.add_parser("stories", help="the newest stories, or one story")
    stories.add_argument("story_id", nargs="?", help="show this story and its articles")
    stories.add_argument("--topic", help="only stories that matched this topic")
    stories.add_argument("--lang", help="only stories in this language (and titles in it)")
    stories.add_argument("--since", help="only stories active since: 2h, 30m, 7d or ISO 8601")
    stories.add_argument("--limit", type=int, default=20, help="how many (1-100, default 20)")
    stories.add_argument("--json", action="store_true", help="print JSON, as the API answers")
    stories.set_defaults(run=_run_stories)

    demo = commands.add_parser("demo", help="run the pipeline on the bundled sample site")
    demo.add_argument(
        "--data-dir", type=Path, default=Path(".newsmon/demo"), help="embedded Redis data folder"
    )
    demo.add_argument("--timeout", type=float, default=180.0, help="give up after (seconds)")
    serving = demo.add_mutually_exclusive_group()
    serving.add_argument(
        "--exit",
        action="store_true",
        help="exit after the summary (the default when not run in a terminal)",
    )
    serving.add_argument(
        "--serve",
        action="store_true",
        help="keep serving the page until Ctrl-C (the default in a terminal)",
    )
    demo.set_defaults(run=_run_demo)
    return parser


def _config(args: argparse.Namespace, settings: CommonSettings) -> NewsmonConfig:
    path: Path = args.config or settings.config
    if not path.exists():
        raise ConfigError(
            f"config {path} not found: pass --config or set NEWSMON_CONFIG "
            "(see examples/newsmon.yaml)"
        )
    return load_config(path)


def _run_up(args: argparse.Namespace, settings: CommonSettings) -> int:
    from services.registry import SERVICES

    return _serve_forever(list(SERVICES.values()), _config(args, settings), settings)


def _run_serve(args: argparse.Namespace, settings: CommonSettings) -> int:
    from services.registry import SERVICES

    return _serve_forever([SERVICES[args.service]], _config(args, settings), settings)


def startup_line(names: Sequence[str], redis_url: str, http_url: str, *, embedded: bool) -> str:
    """What `newsmon up` and `serve` print once running; the Redis password masked."""
    where = "embedded Redis" if embedded else "Redis"
    return (
        f"newsmon {__version__}: {', '.join(names)} running on {where} {masked_url(redis_url)};"
        f" metrics at {http_url}/metrics (Ctrl-C stops)"
    )


def _serve_forever(
    factories: list[ServiceFactory], config: NewsmonConfig, settings: CommonSettings
) -> int:
    from services.common.pipeline import running_services, stop_on_signals

    async def serve() -> None:
        stop = stop_on_signals()
        async with running_services(factories, settings=settings, config=config) as pipeline:
            names = [service.name for service in pipeline.services]
            embedded = not settings.redis_url
            line = startup_line(names, pipeline.redis_url, pipeline.http_url, embedded=embedded)
            print(line, file=sys.stderr)
            await stop.wait()
        print("newsmon: stopped", file=sys.stderr)

    asyncio.run(serve())
    return EXIT_OK


def _read_inputs(paths: Sequence[str]) -> Iterator[tuple[str, bytes | None, str | None]]:
    """(name, bytes, error) per input path; gzip is recognised by its magic number."""
    for path in paths:
        if path == "-":
            yield "-", sys.stdin.buffer.read(), None
            continue
        try:
            data = Path(path).read_bytes()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            yield Path(path).name, None, f"cannot read {path}: {exc}"
            continue
        yield Path(path).name, data, None


def _run_clean(args: argparse.Namespace, settings: CommonSettings) -> int:
    from trafilatura.utils import decode_file

    from services.cleaner.core import extract

    failures = 0
    for name, data, error in _read_inputs(args.paths):
        record: dict[str, Any] = {"source": name}
        if data is None:
            failures += 1
            print(f"newsmon clean: {error}", file=sys.stderr)
            record["error"] = error
        else:
            result = extract(decode_file(data))
            record.update(
                title=result.title,
                text=result.text,
                lang=result.lang,
                date=result.published.date().isoformat() if result.published else None,
                author=result.author,
                site_name=result.site_name,
                url=result.canonical_url,
                word_count=result.word_count,
                empty_reason=result.empty_reason,
            )
        _print_json(record, sys.stdout)
    return EXIT_FAILED if failures else EXIT_OK


def _run_group(args: argparse.Namespace, settings: CommonSettings) -> int:
    from services.detector.batch import article_from_json, group_articles

    articles = []
    with contextlib.ExitStack() as stack:
        stream: TextIO = (
            sys.stdin
            if args.file == "-"
            else stack.enter_context(open(args.file, encoding="utf-8"))
        )
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                articles.append(article_from_json(json.loads(line)))
            except (ValueError, TypeError) as exc:
                print(f"newsmon group: {args.file}:{number}: {exc}", file=sys.stderr)
                return EXIT_USAGE
    for article_id, story_id in asyncio.run(group_articles(articles)):
        _print_json({"id": article_id, "story": story_id}, sys.stdout)
    return EXIT_OK


def _run_ingest(args: argparse.Namespace, settings: CommonSettings) -> int:
    from services.fetcher.ingest import InputError, read_pages
    from services.fetcher.tools import ingest_pages

    failures = 0

    def report(record: dict[str, Any]) -> None:
        nonlocal failures
        failures += record.get("outcome") == "failed"
        _print_json(record, sys.stdout)

    pages = list(read_pages(args.paths))
    for page in pages:
        if isinstance(page, InputError):
            print(f"newsmon ingest: {page.error}", file=sys.stderr)
    readable = [page for page in pages if not isinstance(page, InputError)]
    asyncio.run(
        ingest_pages(
            readable,
            settings=settings,
            source=args.source,
            lang=args.lang,
            tags=tuple(args.tag),
            report=report,
        )
    )
    unreadable = len(pages) - len(readable)
    print(
        f"newsmon ingest: {len(readable) - failures} published or already seen,"
        f" {failures + unreadable} failed",
        file=sys.stderr,
    )
    return EXIT_FAILED if failures or unreadable else EXIT_OK


def _run_dlq(args: argparse.Namespace, settings: CommonSettings) -> int:
    from services.common.dlq import run_dlq_command

    if args.dlq_command in ("replay", "purge") and not (args.ids or args.all):
        print(f"newsmon dlq {args.dlq_command}: give entry ids or --all", file=sys.stderr)
        return EXIT_USAGE
    with redis_url_for(settings.redis_url, settings.data_dir) as url:
        return asyncio.run(run_dlq_command(url, args, sys.stdout))


def _run_asyncapi(args: argparse.Namespace, settings: CommonSettings) -> int:
    from services.common.asyncapi import asyncapi_json

    sys.stdout.write(asyncapi_json())
    return EXIT_OK


def _run_openapi(args: argparse.Namespace, settings: CommonSettings) -> int:
    from services.alerter.openapi import openapi_json

    sys.stdout.write(openapi_json())
    return EXIT_OK


def _run_stories(args: argparse.Namespace, settings: CommonSettings) -> int:
    from services.alerter.commands import run_stories_command
    from services.common.clock import utc_now

    with redis_url_for(settings.redis_url, settings.data_dir) as url:
        return asyncio.run(run_stories_command(url, args, sys.stdout, utc_now))


def _run_demo(args: argparse.Namespace, settings: CommonSettings) -> int:
    from services.demo import run_demo

    return run_demo(
        settings,
        data_dir=args.data_dir,
        timeout_seconds=args.timeout,
        keep_serving=args.serve or (sys.stdin.isatty() and sys.stdout.isatty() and not args.exit),
    )


def _print_json(record: dict[str, Any], out: TextIO) -> None:
    out.write(json.dumps(record, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
