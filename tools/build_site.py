"""Render the seed articles as a small static news site (pages, RSS feed, README).

Run from the repo root: `python -m tools.build_site`. It reads the seeds in `../shared/seeds`
and `tools/sample_site.yaml` (the sites' chrome, the seeds' dates and authors) and rewrites
`services/samples/site/`. The output is committed, so the demo and the tests work in clones
that have no `../shared`; this tool is for development and is not part of the package.

Each seed is plain text as a scraper saved it: headline, body, then the site's boilerplate
tail. The pages put that tail back where it lives on a real site (disclaimer, related
headlines, trending and price widgets, an X-thread loader) around the article, with the usual
chrome (nav, cookie banner, footer, analytics and JSON-LD scripts), so that the cleaner is
tested against realistic pages. Everything here is pure except `main`.
"""

from __future__ import annotations

import argparse
import html
import json
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import yaml

from services.samples.server import BASE_URL_PLACEHOLDER

LONG_PARAGRAPH_CHARS = 1200
STANDFIRST_MAX_CHARS = 250
HEADING_MAX_CHARS = 130
CREDIT_LINES_WINDOW = 6

TAIL_START = re.compile(
    r"^(Avertissement\s*:|Esclusione di responsabilità\s*:|Aviso Legal\s*:|Chargement du thread$)"
)
CREDIT_LINE = re.compile(r"^[^:«»\"]{3,45}:\s+\S")
SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-ZÀ-ÖØ-Ý«\"])")


@dataclass(frozen=True, slots=True)
class SiteStyle:
    """One fictional news site: its name, domain and the words of its chrome."""

    name: str
    domain: str
    lang: str
    locale: str
    nav: tuple[str, ...]
    cookie_text: str
    cookie_accept: str
    cookie_settings: str
    footer_links: tuple[str, ...]
    rights: str
    by: str
    related_prefix: str
    prices_path: str
    trending: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SeedMeta:
    """What the seed text does not say: where and when the page was published."""

    site: str
    slug: str
    published: datetime
    author: str
    headline: str | None = None


@dataclass(frozen=True, slots=True)
class Block:
    """One block of the article body; kind is p, standfirst, credit, h2 or ul."""

    kind: str
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Tail:
    """The seed's boilerplate tail, split into the widgets it came from."""

    disclaimer: str | None = None
    related_title: str | None = None
    related: tuple[tuple[str, str | None], ...] = ()
    trending_title: str | None = None
    prices_title: str | None = None
    more_label: str | None = None
    loader: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Page:
    """A seed ready to render: file name, headline, body blocks, tail and metadata."""

    seed_id: str
    file_name: str
    headline: str
    blocks: tuple[Block, ...]
    tail: Tail
    meta: SeedMeta
    style: SiteStyle

    @property
    def description(self) -> str:
        """First standfirst or paragraph, cut to about 200 characters."""
        for block in self.blocks:
            if block.kind in ("standfirst", "p"):
                return shorten(block.lines[0], 200)
        return self.headline

    @property
    def canonical_url(self) -> str:
        return f"https://{self.style.domain}/{self.style.lang}/news/{self.meta.slug}"


DATA_FILE = Path(__file__).with_name("sample_site.yaml")


def _load_data(path: Path) -> tuple[dict[str, SiteStyle], dict[str, SeedMeta], tuple[Any, ...]]:
    """The sites, the seeds' metadata and the price rows kept in `path`."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    sites = {key: SiteStyle(**_tuples(fields)) for key, fields in data["sites"].items()}
    seeds = {
        seed_id: SeedMeta(**{**fields, "published": datetime.fromisoformat(fields["published"])})
        for seed_id, fields in data["seeds"].items()
    }
    return sites, seeds, tuple(tuple(row) for row in data["prices"])


def _tuples(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}


SITES, SEED_META, PRICES = _load_data(DATA_FILE)


def escape(value: str) -> str:
    """Escape for HTML/XML element text (quotes stay readable)."""
    return html.escape(value, quote=False)


def attr(value: str) -> str:
    """Escape for a double-quoted HTML/XML attribute value."""
    return html.escape(value, quote=True)


def shorten(text: str, limit: int) -> str:
    """Cut `text` at a word boundary to at most `limit` characters, with an ellipsis."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:") + "…"


def slugify(text: str) -> str:
    """Lower-case ASCII-ish slug for related-article links."""
    folded = text.lower()
    for accented, plain in (("àâä", "a"), ("éèêë", "e"), ("îï", "i"), ("ôö", "o"), ("ùûü", "u")):
        for char in accented:
            folded = folded.replace(char, plain)
    folded = folded.replace("ç", "c").replace("ã", "a").replace("õ", "o").replace("á", "a")
    folded = folded.replace("í", "i").replace("ó", "o").replace("ú", "u")
    return re.sub(r"[^a-z0-9]+", "-", folded).strip("-")[:80]


def split_long_paragraph(text: str) -> tuple[str, ...]:
    """Split a scraped run-on paragraph into paragraphs of about LONG_PARAGRAPH_CHARS."""
    if len(text) <= LONG_PARAGRAPH_CHARS:
        return (text,)
    paragraphs: list[str] = []
    current = ""
    for sentence in SENTENCE_BREAK.split(text):
        if current and len(current) + len(sentence) > LONG_PARAGRAPH_CHARS:
            paragraphs.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}".strip()
    if current:
        paragraphs.append(current)
    return tuple(paragraphs)


def classify_body(lines: list[str], has_own_headline: bool) -> tuple[Block, ...]:
    """Turn body lines into blocks: bullets become lists, short unpunctuated lines headings."""
    blocks: list[Block] = []
    for index, line in enumerate(lines):
        bullet = re.match(r"^(?:·|-)\s+(.*)$", line)
        if bullet:
            item = bullet.group(1)
            if blocks and blocks[-1].kind == "ul":
                blocks[-1] = Block("ul", (*blocks[-1].lines, item))
            else:
                blocks.append(Block("ul", (item,)))
        elif (
            index == 0
            and has_own_headline
            and len(line) <= STANDFIRST_MAX_CHARS
            and line.endswith(".")
        ):
            blocks.append(Block("standfirst", (line,)))
        elif index < CREDIT_LINES_WINDOW and CREDIT_LINE.match(line) and len(line) < 100:
            blocks.append(Block("credit", (line,)))
        elif len(line) <= HEADING_MAX_CHARS and not line.endswith((".", "!", "?", "…")):
            blocks.append(Block("h2", (line,)))
        else:
            blocks.extend(Block("p", (part,)) for part in split_long_paragraph(line))
    return tuple(blocks)


def parse_tail(lines: list[str]) -> Tail:
    """Split the boilerplate tail into disclaimer, related list, widgets or loader."""
    lines = [line for line in lines if line]
    if not lines:
        return Tail()
    if not lines[0].endswith(":") and ":" not in lines[0][:40]:
        return Tail(loader=tuple(lines))
    disclaimer, related_title, *rest = lines
    more_label = rest[-1]
    prices_title = rest[-2].removeprefix(more_label)
    trending_title = rest[-3]
    related: list[tuple[str, str | None]] = []
    for line in rest[:-3]:
        if related and len(line) > 200 and related[-1][1] is None:
            related[-1] = (related[-1][0], line)
        else:
            related.append((line, None))
    return Tail(
        disclaimer=disclaimer,
        related_title=related_title,
        related=tuple(related),
        trending_title=trending_title,
        prices_title=prices_title,
        more_label=more_label,
    )


def parse_seed(seed_id: str, text: str, meta: SeedMeta) -> Page:
    """Split one seed text into headline, body blocks and boilerplate tail."""
    lines = [line.strip() for line in text.splitlines()]
    tail_at = next((i for i, line in enumerate(lines) if TAIL_START.match(line)), len(lines))
    content = [line for line in lines[:tail_at] if line]
    headline = meta.headline or content[0]
    body = content if meta.headline else content[1:]
    return Page(
        seed_id=seed_id,
        file_name=f"{seed_id}-{meta.slug}.html",
        headline=headline,
        blocks=classify_body(body, has_own_headline=meta.headline is None),
        tail=parse_tail(lines[tail_at:]),
        meta=meta,
        style=SITES[meta.site],
    )


def render_block(block: Block) -> str:
    if block.kind == "ul":
        items = "\n".join(f"        <li>{escape(item)}</li>" for item in block.lines)
        return f'      <ul class="key-points">\n{items}\n      </ul>'
    text = escape(block.lines[0])
    if block.kind == "h2":
        return f"      <h2>{text}</h2>"
    if block.kind == "standfirst":
        return f'      <p class="standfirst"><strong>{text}</strong></p>'
    if block.kind == "credit":
        return f'      <p class="source-credit"><em>{text}</em></p>'
    return f"      <p>{text}</p>"


def render_head(page: Page, others: list[Page]) -> str:
    style, meta = page.style, page.meta
    published = meta.published.isoformat()
    json_ld = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "headline": page.headline,
        "description": page.description,
        "inLanguage": style.lang,
        "datePublished": published,
        "dateModified": published,
        "author": {"@type": "Person", "name": meta.author},
        "publisher": {
            "@type": "Organization",
            "name": style.name,
            "logo": {"@type": "ImageObject", "url": f"https://{style.domain}/static/logo.png"},
        },
        "mainEntityOfPage": page.canonical_url,
    }
    alternates = "\n".join(
        f'  <link rel="alternate" hreflang="{other.style.lang}" href="{other.canonical_url}">'
        for other in others
        if other.meta.slug == meta.slug and other.style.lang != style.lang
    )
    return f"""<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{escape(page.headline)} | {escape(style.name)}</title>
  <meta name="description" content="{attr(page.description)}">
  <meta name="author" content="{attr(meta.author)}">
  <meta property="og:title" content="{attr(page.headline)}">
  <meta property="og:description" content="{attr(page.description)}">
  <meta property="og:site_name" content="{attr(style.name)}">
  <meta property="og:type" content="article">
  <meta property="og:locale" content="{style.locale}">
  <meta property="og:url" content="{page.canonical_url}">
  <meta property="og:image" content="https://{style.domain}/static/og/{meta.slug}.jpg">
  <meta property="article:published_time" content="{published}">
  <meta property="article:section" content="{attr(style.nav[7])}">
  <meta name="twitter:card" content="summary_large_image">
  <link rel="canonical" href="{page.canonical_url}">
{alternates}
  <link rel="stylesheet" href="/static/css/main.css">
  <script>
    window.dataLayer = window.dataLayer || [];
    function gtag(){{dataLayer.push(arguments);}}
    gtag('js', new Date());
    gtag('config', 'G-NEWSMON00', {{ anonymize_ip: true, page_type: 'article' }});
  </script>
  <script type="application/ld+json">
{json.dumps(json_ld, ensure_ascii=False, indent=2)}
  </script>
</head>"""


def render_header(style: SiteStyle) -> str:
    links = "\n".join(
        f'        <li><a href="/{style.lang}/{slugify(label)}">{escape(label)}</a></li>'
        for label in style.nav
    )
    return f"""  <div class="cookie-banner" id="cookie-banner" role="dialog" aria-live="polite">
    <p>{escape(style.cookie_text)}</p>
    <button type="button" data-consent="all">{escape(style.cookie_accept)}</button>
    <button type="button" data-consent="settings">{escape(style.cookie_settings)}</button>
  </div>
  <header class="site-header">
    <a class="logo" href="/{style.lang}/">{escape(style.name)}</a>
    <nav class="main-nav" aria-label="menu">
      <ul>
{links}
      </ul>
    </nav>
  </header>"""


def render_article(page: Page) -> str:
    style, meta = page.style, page.meta
    date_label = meta.published.strftime("%d/%m/%Y %H:%M")
    body = "\n".join(render_block(block) for block in page.blocks)
    extra = ""
    if page.tail.disclaimer:
        extra = f'\n      <p class="disclaimer">{escape(page.tail.disclaimer)}</p>'
    if page.tail.loader:
        title, *rest = page.tail.loader
        notes = "\n".join(f"        <p>{escape(line)}</p>" for line in rest)
        extra = f"""
      <div class="thread-embed" data-source="x.com" aria-busy="true">
        <p class="thread-embed__title">{escape(title)}</p>
{notes}
      </div>"""
    return f"""    <article class="article">
      <h1>{escape(page.headline)}</h1>
      <div class="byline">{style.by} <span class="author">{escape(meta.author)}</span>
        <time datetime="{meta.published.isoformat()}">{date_label}</time></div>
{body}{extra}
    </article>"""


def render_related(page: Page) -> str:
    tail, style = page.tail, page.style
    if not tail.related_title:
        return ""
    items = []
    for title, teaser in tail.related:
        href = f"/{style.lang}/{style.related_prefix}/{slugify(title)}"
        teaser_html = f"\n          <p>{escape(teaser)}</p>" if teaser else ""
        items.append(f'        <li><a href="{href}">{escape(title)}</a>{teaser_html}</li>')
    joined = "\n".join(items)
    return f"""
    <section class="related-articles">
      <h2>{escape(tail.related_title)}</h2>
      <ul>
{joined}
      </ul>
    </section>"""


def render_sidebar(page: Page) -> str:
    tail, style = page.tail, page.style
    if not tail.trending_title or not tail.prices_title or not tail.more_label:
        return ""
    trending = "\n".join(
        f'        <li><a href="/{style.lang}/{style.related_prefix}/{slugify(title)}">'
        f"{escape(title)}</a></li>"
        for title in style.trending
    )
    prices = "\n".join(
        f'        <tr><td><a href="/{style.lang}/{style.prices_path}/{symbol.lower()}">'
        f"{name}</a></td>"
        f"<td>{symbol}</td><td>{price} $</td><td>{change}</td></tr>"
        for name, symbol, price, change in PRICES
    )
    more = escape(tail.more_label)
    return f"""
    <aside class="sidebar">
      <section class="widget widget-trending">
        <h3>{escape(tail.trending_title)}</h3>
        <ol>
{trending}
        </ol>
        <a class="more" href="/{style.lang}/{style.related_prefix}">{more}</a>
      </section>
      <section class="widget widget-prices">
        <h3>{escape(tail.prices_title)}</h3>
        <table>
{prices}
        </table>
        <a class="more" href="/{style.lang}/{style.prices_path}">{more}</a>
      </section>
    </aside>"""


def render_footer(style: SiteStyle) -> str:
    links = "\n".join(
        f'      <li><a href="/{style.lang}/{slugify(label)}">{escape(label)}</a></li>'
        for label in style.footer_links
    )
    return f"""  <footer class="site-footer">
    <ul>
{links}
    </ul>
    <p>© 2025 {escape(style.name)}. {escape(style.rights)}</p>
  </footer>
  <script>
    document.querySelectorAll('#cookie-banner button').forEach(function (button) {{
      button.addEventListener('click', function () {{
        document.getElementById('cookie-banner').hidden = true;
      }});
    }});
  </script>
  <script async src="https://{style.domain}/static/js/widgets.js"></script>"""


def render_page(page: Page, others: list[Page]) -> str:
    """The full HTML document of one article page."""
    return f"""<!DOCTYPE html>
<html lang="{page.style.lang}">
{render_head(page, others)}
<body class="article-page">
{render_header(page.style)}
  <main class="content">
{render_article(page)}{render_related(page)}{render_sidebar(page)}
  </main>
{render_footer(page.style)}
</body>
</html>
"""


def render_feed(pages: list[Page]) -> str:
    """RSS 2.0 feed of the pages, newest first, links as {{BASE_URL}} placeholders."""
    newest_first = sorted(pages, key=lambda page: page.meta.published, reverse=True)
    items = []
    for page in newest_first:
        link = f"{BASE_URL_PLACEHOLDER}/{page.file_name}"
        items.append(f"""    <item>
      <title>{escape(page.headline)}</title>
      <link>{link}</link>
      <guid isPermaLink="true">{link}</guid>
      <pubDate>{format_datetime(page.meta.published)}</pubDate>
      <description>{escape(page.description)}</description>
    </item>""")
    last_build = format_datetime(newest_first[0].meta.published)
    joined = "\n".join(items)
    return f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0">
  <channel>
    <title>newsmon sample news</title>
    <link>{BASE_URL_PLACEHOLDER}/</link>
    <description>The five seed articles of newsmon as news pages.</description>
    <language>fr</language>
    <lastBuildDate>{last_build}</lastBuildDate>
{joined}
  </channel>
</rss>
"""


def render_index(pages: list[Page]) -> str:
    """A plain index of the pages, for people browsing the sample server."""
    items = "\n".join(
        f'    <li><a href="{page.file_name}">{escape(page.headline)}</a> ({page.style.lang})</li>'
        for page in pages
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>newsmon sample site</title></head>
<body>
  <h1>newsmon sample site</h1>
  <p><a href="feed.xml">RSS feed</a></p>
  <ul>
{items}
  </ul>
</body>
</html>
"""


def render_readme(pages: list[Page]) -> str:
    rows = "\n".join(
        f"| `{page.file_name}` | {page.style.lang} | {page.style.name} | "
        f"{page.meta.published.date().isoformat()} |"
        for page in pages
    )
    return f"""# Sample news site

Generated by `python -m tools.build_site` from the five seed articles in
`../shared/seeds` (do not edit by hand; rebuild instead). Served by
`python -m services.samples.server` and used by the demo and the tests.

Each page is a seed rendered as a realistic article page of a fictional news site
(`.example` domains): navigation, cookie banner, analytics script, JSON-LD `NewsArticle`,
Open Graph and `article:published_time` metadata, a canonical link, the article itself, then
the boilerplate that the seed's scraper captured, put back where it lives on a real page
(disclaimer, "you may also like" headlines, trending and crypto-price widgets, an X-thread
loader), and a footer. Dates, authors, prices and the trending lists are invented. Seeds 001
and 003 have no usable headline line (001 is one run-on paragraph, 003 starts with "Résumé
bref"), so their headlines were written from their own text.

`feed.xml` is an RSS 2.0 feed of the pages; its links use a `{BASE_URL_PLACEHOLDER}`
placeholder that the server replaces with its address at serve time.

| page | lang | site | published |
|---|---|---|---|
{rows}
"""


def build(seed_texts: dict[str, str]) -> dict[str, str]:
    """Map seed id -> seed text to file name -> file content for the whole site."""
    missing = sorted(set(seed_texts) - set(SEED_META))
    if missing:
        raise ValueError(f"no SEED_META entry for seeds {missing}")
    pages = [parse_seed(sid, text, SEED_META[sid]) for sid, text in sorted(seed_texts.items())]
    files = {page.file_name: render_page(page, pages) for page in pages}
    files["feed.xml"] = render_feed(pages)
    files["index.html"] = render_index(pages)
    files["README.md"] = render_readme(pages)
    return files


def main(argv: list[str] | None = None) -> None:
    repo_root = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seeds", type=Path, default=repo_root / ".." / "shared" / "seeds")
    parser.add_argument("--out", type=Path, default=repo_root / "services" / "samples" / "site")
    args = parser.parse_args(argv)
    seed_texts = {
        path.name[:3]: path.read_text(encoding="utf-8")
        for path in sorted(args.seeds.glob("[0-9][0-9][0-9]_*.txt"))
    }
    if not seed_texts:
        raise SystemExit(f"no seeds found in {args.seeds}")
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in args.out.glob("*"):
        if stale.is_file():
            stale.unlink()
    for name, content in build(seed_texts).items():
        (args.out / name).write_text(content, encoding="utf-8")
    print(f"wrote {len(seed_texts)} pages, feed.xml, index.html and README.md to {args.out}")


if __name__ == "__main__":
    main()
