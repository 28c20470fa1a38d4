"""A synthetic news corpus for load and fault tests: many stories, several copies each.

Each story is English prose made of common words, with its own names and
numbers; its copies keep the body and change what syndication changes (a new
headline, a byline, a boilerplate line, sometimes a cut paragraph), so the
expected grouping is known: one story per `story` number. One story in
`topic_every` mentions `TOPIC_TERM`, so the expected alert count is known too.
`CorpusSite` serves the pages and RSS feeds of it on 127.0.0.1.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

TOPIC_TERM = "geothermal"
"""The word a known share of stories carry, for a topic with an exactly known alert count."""

WORDS = tuple(
    """the of and to in a is that for it as was with be by on not he this are or his from at
    which but have an they you were her she there been one all we their has would when if so
    no will more can out other into than its some them time could these two may first then do
    any like my now over such our man me even most made after also did many before must through
    back years where much your way well down should because each just those people how too
    little state good very make world still own see men work long get here between both life
    being under never day same another know while last might us great old year off come since
    against go came right used take three states himself few house use during without again
    place american around however home small found thought went say part once general high
    upon school every does got united left number course war until always away something fact
    water though less public put think almost hand enough far took head yet government system
    better set told nothing night end why called didnt eyes find going look asked later knew
    point next program city business give group toward young days let room president side social
    given present several order national possible rather second face per among form important
    often things looked early white case john become large big need four within felt along
    children saw best church ever least power development light thing seemed family interest want
    members mind country area others done turned although open god service certain kind problem
    began different door thus help sense means whole matter perhaps itself york times human law
    line above name example action company hands local show whether five history gave today
    either act feet across taken past quite anything seen having death week experience body word
    half really field am car words already themselves information tell together college shall
    money period held keep sure probably free seems political real behind cannot miss question
    air office making brought whose special heard major problems ago became federal moment study
    available known result street economic boy reason change position south board individual job
    society areas west close turn love community true court force full seem wife future age voice
    center woman control common policy necessary following front sometimes six girl clear further
    land run students provide feel party able mother music education university child effect
    level stood military town short morning total outside rate figure class art century washington
    north usually leave therefore evidence percent black""".split()  # noqa: SIM905
)

NAME_SYLLABLES = ("bar", "tel", "mon", "ri", "ka", "sen", "lo", "vik", "dor", "an", "ze", "pul")
BOILERPLATE = (
    "Follow us on social media for the latest updates.",
    "Sign up for our newsletter to receive the morning briefing.",
    "This article was produced with the help of our regional desk.",
)


@dataclass(frozen=True, slots=True)
class SyntheticArticle:
    """One copy of one synthetic story."""

    story: int
    copy: int
    slug: str
    title: str
    byline: str
    paragraphs: tuple[str, ...]

    @property
    def mentions_topic(self) -> bool:
        return any(TOPIC_TERM in p for p in self.paragraphs)


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(NAME_SYLLABLES) for _ in range(3)).capitalize()


def _sentence(rng: random.Random, names: Sequence[str], numbers: Sequence[str]) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(12, 20))]
    words[rng.randrange(len(words))] = rng.choice(names)
    if rng.random() < 0.5:
        words[rng.randrange(len(words))] = rng.choice(numbers)
    return " ".join(words).capitalize() + "."


def _story_body(rng: random.Random, story: int, topic_every: int) -> tuple[str, list[str]]:
    names = [_name(rng) for _ in range(4)]
    numbers = [str(rng.randint(10, 99_999)) for _ in range(3)]
    title = f"{names[0]} and {names[1]}: " + " ".join(rng.choice(WORDS) for _ in range(6))
    paragraphs = [
        " ".join(_sentence(rng, names, numbers) for _ in range(rng.randint(3, 5)))
        for _ in range(rng.randint(6, 9))
    ]
    if topic_every and story % topic_every == 0:
        paragraphs[1] += f" The {TOPIC_TERM} plant was mentioned by {names[2]}."
    return title, paragraphs


def synthetic_corpus(
    stories: int, copies: int, *, seed: int = 7, topic_every: int = 4, heavy_edits: bool = True
) -> list[SyntheticArticle]:
    """`stories` x `copies` articles, interleaved (all first copies, then all second...).

    Every copy has a new headline and a byline; with `heavy_edits` copies also
    gain a boilerplate line and every second one loses a paragraph."""
    rng = random.Random(seed)
    bodies = [_story_body(rng, story, topic_every) for story in range(stories)]
    articles = []
    for copy in range(copies):
        for story, (title, paragraphs) in enumerate(bodies):
            body = list(paragraphs)
            headline = title
            byline = "By staff reporters"
            if copy:
                headline = f"{title.split(':')[0]}: {' '.join(rng.choice(WORDS) for _ in range(5))}"
                byline = f"By {_name(rng)} {_name(rng)}, wire service (copy {copy})"
                if heavy_edits:
                    body.append(rng.choice(BOILERPLATE))
                    if copy % 2 == 0 and len(body) > 6:
                        del body[-2]
            articles.append(
                SyntheticArticle(
                    story=story,
                    copy=copy,
                    slug=f"s{story:05d}-c{copy}",
                    title=headline,
                    byline=byline,
                    paragraphs=tuple(body),
                )
            )
    return articles


def render_page(article: SyntheticArticle, *, chrome_kb: int = 0) -> str:
    """A news page around the article: header, navigation, article, related links, footer.

    `chrome_kb` adds that many kilobytes of what real news pages carry around an article
    (inline scripts and styles, a mega-menu, teaser lists, reader comments, a link-farm
    footer), so that extraction costs what it costs on real pages (100-200 KB)."""
    nav = "".join(f'<li><a href="/section/{w}">{w.title()}</a></li>' for w in WORDS[40:52])
    body = "".join(f"<p>{escape(p)}</p>" for p in article.paragraphs)
    chrome = _page_chrome(article.slug, chrome_kb * 1024) if chrome_kb > 0 else ("", "")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(article.title)} | Synthetic Times</title>"
        '<meta property="og:site_name" content="Synthetic Times">'
        f"{chrome[0]}</head><body>"
        f'<header><a href="/">Synthetic Times</a><nav><ul>{nav}</ul></nav></header>'
        f'<main><article><h1>{escape(article.title)}</h1><p class="byline">'
        f"{escape(article.byline)}</p>{body}</article>"
        '<aside class="related"><h2>Most read</h2><ul>'
        + "".join(
            f'<li><a href="/r/{i}">{WORDS[i].title()} {WORDS[i + 1]}</a></li>' for i in range(5)
        )
        + f"</ul></aside></main>{chrome[1]}<footer>&copy; Synthetic Times</footer>"
        "<script>window.analytics=[];</script></body></html>"
    )


def _page_chrome(slug: str, size: int) -> tuple[str, str]:
    """(head, body) furniture of about `size` bytes, different on every page: scripts and
    styles (seven tenths, as on real pages), then markup (menus, teasers, comments, links)."""
    rng = random.Random(slug)

    def words(count: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(count))

    head_parts: list[str] = []
    head_size = 0
    while head_size < size * 7 // 10:
        block = (
            f"<style>.c{rng.randrange(10**6)}{{margin:{rng.randrange(40)}px;"
            f"color:#{rng.randrange(16**6):06x}}}</style>"
            f"<script>window.cfg_{rng.randrange(10**6)}={{ids:[{rng.randrange(10**9)},"
            f'{rng.randrange(10**9)}],label:"{words(12)}"}};</script>'
        )
        head_parts.append(block)
        head_size += len(block)
    body_parts: list[str] = []
    body_size = 0
    kinds = ("menu", "teaser", "comment", "links")
    while body_size < size - head_size:
        kind = kinds[len(body_parts) % len(kinds)]
        if kind == "menu":
            block = (
                "<nav class='mega'><ul>"
                + "".join(
                    f"<li><a href='/{rng.choice(WORDS)}/{n}'>{words(2).title()}</a></li>"
                    for n in range(20)
                )
                + "</ul></nav>"
            )
        elif kind == "teaser":
            block = (
                "<section class='teasers'>"
                + "".join(
                    f"<div class='teaser'><a href='/t/{rng.randrange(10**6)}'>"
                    f"<h3>{words(7).title()}</h3></a><p>{words(18).capitalize()}.</p></div>"
                    for _ in range(6)
                )
                + "</section>"
            )
        elif kind == "comment":
            block = (
                "<div class='comments'>"
                + "".join(
                    f"<div class='comment'><span class='author'>{_name(rng)}</span>"
                    f"<p>{words(25).capitalize()}.</p><a href='#reply'>Reply</a></div>"
                    for _ in range(5)
                )
                + "</div>"
            )
        else:
            block = (
                "<div class='footer-links'>"
                + " | ".join(
                    f"<a href='/l/{rng.randrange(10**6)}'>{words(3).title()}</a>" for _ in range(25)
                )
                + "</div>"
            )
        body_parts.append(block)
        body_size += len(block)
    return "".join(head_parts), "".join(body_parts)


def render_feed(base_url: str, articles: Sequence[SyntheticArticle], title: str) -> str:
    """An RSS 2.0 feed listing `articles`."""
    items = "".join(
        f"<item><title>{escape(a.title)}</title><link>{base_url}/a/{a.slug}.html</link>"
        f"<guid>{base_url}/a/{a.slug}.html</guid></item>"
        for a in articles
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>{base_url}/</link>{items}</channel></rss>"
    )


class CorpusSite:
    """Serves a corpus on 127.0.0.1: `/feed-<k>.xml` (`items_per_feed` each) and pages."""

    def __init__(
        self,
        articles: Sequence[SyntheticArticle],
        *,
        items_per_feed: int = 100,
        chrome_kb: int = 0,
    ) -> None:
        self.articles = list(articles)
        self.items_per_feed = items_per_feed
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._pages = {
            f"/a/{a.slug}.html": render_page(a, chrome_kb=chrome_kb).encode() for a in self.articles
        }
        chunks = [
            self.articles[i : i + items_per_feed]
            for i in range(0, len(self.articles), items_per_feed)
        ]
        self._feeds = {
            f"/feed-{k}.xml": render_feed(self.base_url, chunk, f"Feed {k}").encode()
            for k, chunk in enumerate(chunks)
        }
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def feed_urls(self) -> list[str]:
        return [self.base_url + path for path in self._feeds]

    def url_of(self, article: SyntheticArticle) -> str:
        return f"{self.base_url}/a/{article.slug}.html"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path in site._feeds:
                    body, ctype = site._feeds[self.path], "application/rss+xml; charset=utf-8"
                elif self.path in site._pages:
                    body, ctype = site._pages[self.path], "text/html; charset=utf-8"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler

    def __enter__(self) -> CorpusSite:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
