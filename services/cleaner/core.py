"""Pure extraction core of the cleaner: a page's HTML in, its article text and metadata out.

The page is parsed once; that tree is read for metadata (trafilatura's and htmldate's readers),
then stripped of what trafilatura would delete anyway and handed to one trafilatura pass. What
trafilatura still lets through at the edges of an article (disclaimers, "you may also like"
headline and teaser lists, widget headings, datelines, decks, "loading..." placeholders) is
removed by newsmon's own rules, which look at structure only (density of links within the
page's own site, a headline repeating the title the page declares, runs of short unpunctuated
lines at the end, short notes that name none of the article's names), never at site-specific
words.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from copy import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import lxml.html
import trafilatura
from courlan import extract_domain
from htmldate import find_date
from lxml import etree
from lxml.etree import XPath, _Element, strip_tags
from lxml.html import HtmlElement
from trafilatura.core import trafilatura_sequence
from trafilatura.json_metadata import normalize_authors
from trafilatura.metadata import (
    examine_meta,
    extract_meta_json,
    extract_sitename,
    extract_title,
    extract_url,
)
from trafilatura.settings import MANUALLY_CLEANED, Document, Extractor
from trafilatura.utils import DOCTYPE_TAG, is_dubious_html, repair_faulty_html
from trafilatura.xpaths import AUTHOR_DISCARD_XPATHS, AUTHOR_XPATHS, BODY_XPATH

from services.common.language import choose_language, iso_639_1

KEEP_TAGS = frozenset({"html", "body", "article", "main"})
# elements marked hidden or still loading; reached through their attributes, which libxml2
# finds faster than it tests every element: //*[@hidden or @aria-busy='true'], in 60% the time
HIDDEN_XPATH = XPath("//@hidden/..|//@aria-busy[.='true']/..")
AUTHOR_MAX_CHARS = 120  # a longer "byline" is prose (trafilatura's own limit)
LINK_DENSE_RATIO = 0.5  # share of a line's characters inside links
TEASER_LINK_SHARE = 0.25  # a teaser item: a linked headline, then a line of summary
MIN_TEASERS = 2  # a list of teasers has at least this many items
MAX_LINK_LINE_WORDS = 40  # longer lines are prose even when they hold links
LABEL_MAX_WORDS = 6  # a list title such as "Don't miss" or "Read more"
LINK_HOST = re.compile(r"(?:https?:)?//([^/?#\s]+)", re.IGNORECASE)  # an absolute link's host
SHOWN_ADDRESS = re.compile(r"https?://|www\.|@|\.(?:com|org|net)\b")  # a link showing its target
URL_LINE = re.compile(r"^(?:https?://|www\.)\S+$")
# characters of scripts written without spaces between words: Thai, Lao, Myanmar, Khmer, kana,
# CJK ideographs (Hangul is written with spaces); a word there is about two characters long
UNSPACED_SCRIPT = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
)
UNSPACED_CHARS_PER_WORD = 2
SHORT_BLOCK_WORDS = 30  # a headline-like line is at most this long
TITLE_WORD_SHARE = 0.5  # an <h1> repeats the page's title when this share of its words is in it
WORD = re.compile(r"\w+")
HEAD_TITLE_META = frozenset({"og:title", "twitter:title"})
DATELINE_MAX_WORDS = 20  # "Monday, 22 January 2018, 0:13 - By A. Writer - Category: Health"
DATE_LIKE = re.compile(r"\b(?:1[89]|2[01])\d\d\b|\b\d{1,2}[:/]\d{2}\b")  # a year, 10:45, 5/10
# a sentence ending inside a line, before the next one: "... online censorship. Follow him"
# (a word of 3+ letters before the stop, so "Mr. Smith" and "U.S. troops" are no sentence)
INNER_SENTENCE_END = re.compile(r"[^\W\d_]{3}[.!?…]\s+[^\W\d_]|[。\uff01\uff1f]\S")
SENTENCE_STOPS = (".", "!", "?", "…", "。", "\uff01", "\uff1f")  # full stops, not quotes
SHORT_NOTE_WORDS = 20  # a line of a loader/teaser note is at most this long
SHORT_NOTE_TOTAL_WORDS = 45
SHORT_NOTE_MAX_BLOCKS = 4
NOTE_MAX_CHARS = 600  # labelled notes (disclaimers) are at most this long
SPLIT_PART_MIN_CHARS = 200  # a part of a split article body holds this much paragraph text
BINARY_SHARE = 0.1  # share of control characters that makes input look binary
# the C0 controls XML forbids (trafilatura's INVALID_XML_CHARS, but for U+FFFE and U+FFFF)
XML_FORBIDDEN_BYTES = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20)])

SENTENCE_END = (
    *(".", "!", "?", "…", '"', "»", "”", ")", ":", ";"),
    *("。", "\uff01", "\uff1f", "」", "』", "\uff09"),  # CJK full stop, marks, quotes, paren
)
DATA_KINDS = frozenset({"list", "table"})  # items of a list or rows of a table need no full stop
TAIL_MAX_SHARE = 0.3  # furniture after an article is at most this share of its words
LABEL_PREFIX = re.compile(r"^\s*([^\W\d_][\w'\u2019 -]{1,40}?)\s?:\s+(\S.*)$", re.DOTALL)
SENTENCE_BOUNDARY = (".", "!", "?", "…", ":")
NAME_PUNCTUATION = "«»\"'“”\u2018\u2019()[].,;:!?"
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd\ufffe\uffff]")
# control characters, replacement marks and invisible characters (soft hyphen, zero widths)
UNWANTED_CHARS = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd\ufffe\uffff\u00ad\u200b-\u200d\u2060\ufeff]"
)
CONTENT_LANGUAGE_XPATH = (
    "//meta[translate(@http-equiv, 'CONTENTLANGUA', 'contentlangua')='content-language']/@content"
)
# elements trafilatura always deletes (a subset of MANUALLY_CLEANED), the largest on news pages
CHROME_TAGS = ("nav", "footer", "aside", "noscript", "select", "button", "iframe", "meta", "link")
TRAFILATURA_CLEANED = frozenset(MANUALLY_CLEANED) - {"form"}  # forms are judged apart
# trafilatura's options, measured best on real pages: no fallback extractors (fast), recall
# first (newsmon's own rules then remove furniture), tables kept, no metadata (read below).
# Format "xml" leaves the output tree unserialised: newsmon reads the tree, not trafilatura's
# text. Built once: reading the options from trafilatura's config costs ~1 ms a page.
EXTRACTOR = Extractor(
    output_format="xml",
    fast=True,
    recall=True,
    comments=False,
    tables=True,
    links=False,
    images=False,
    with_metadata=False,
)


@dataclass(frozen=True, slots=True)
class Extraction:
    """The article found in a page; text is empty and empty_reason set when none was found."""

    title: str
    text: str  # main text, paragraphs separated by "\n", no boilerplate
    lang: str | None  # ISO 639-1
    published: datetime | None  # timezone-aware UTC (midnight when only a date is known)
    author: str | None
    site_name: str | None
    canonical_url: str | None
    word_count: int
    empty_reason: str | None  # None when text found; else e.g. "no_main_text", "not_html"


@dataclass(frozen=True, slots=True)
class LinkTexts:
    """The casefolded texts of a page's links, and their first and last words (a quick filter)."""

    texts: frozenset[str]
    firsts: frozenset[str]
    lasts: frozenset[str]


@dataclass(frozen=True, slots=True)
class Line:
    """One line of extracted text and the share of its characters inside a link (0..1)."""

    text: str
    link_share: float


@dataclass(frozen=True, slots=True)
class Block:
    """One top-level element of trafilatura's output: kind is p, head, list, quote, table..."""

    kind: str
    rend: str  # heading level for kind "head" ("h1".."h6"), else ""
    lines: tuple[Line, ...]

    @property
    def text(self) -> str:
        return " ".join(line.text for line in self.lines)

    @property
    def words(self) -> int:
        return word_count(self.text)


def word_count(text: str) -> int:
    """Words in a line: space-separated tokens, and one more per UNSPACED_CHARS_PER_WORD
    characters of a script written without spaces (Chinese, Japanese, Thai...)."""
    words = len(text.split())
    if text.isascii():  # most lines of most pages: no need to look for other scripts
        return words
    return words + len(UNSPACED_SCRIPT.findall(text)) // UNSPACED_CHARS_PER_WORD


def extract(html: str, *, url: str | None = None, lang_hint: str | None = None) -> Extraction:
    """Extract article text and metadata from one page; never raises."""
    try:
        return extract_checked(html, url=url, lang_hint=lang_hint)
    except Exception:  # arbitrary input reaches lxml/trafilatura/htmldate; never fail a message
        return empty_extraction("extraction_error", url)


def extract_checked(html: str, *, url: str | None, lang_hint: str | None) -> Extraction:
    """Classify unusable input, then parse once and extract."""
    if not html or html.isspace():  # no copy of the page, unlike strip()
        return empty_extraction("empty_input", url)
    try:
        data = html.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, which lxml refuses
        html = html.encode("utf-8", "replace").decode("utf-8")
        data = html.encode("utf-8")
    head = html[:4096]
    if len(CONTROL_CHARS.findall(head)) > BINARY_SHARE * len(head):
        return empty_extraction("binary", url)
    if "<" not in html or ">" not in html:
        return empty_extraction("not_html", url)
    tree = parse_html(html, data)
    if tree is None:
        return empty_extraction("not_html", url)
    return extract_from_tree(tree, url=url, lang_hint=lang_hint)


def parse_html(html: str, data: bytes) -> HtmlElement | None:
    """The page (`html`, and `data`, its UTF-8 bytes) as a tree, parsed as
    `trafilatura.utils.load_html` does but with HTML_PARSER.

    trafilatura's repair runs only on the pages it would change: its regular expression for
    the characters XML forbids scans the whole str (a third of the parse's time); testing the
    bytes for them is cheaper. The bytes parse to the same tree as the str, a little faster.
    None when the input is not a whole HTML document (trafilatura's own test).
    """
    beginning = html[:50].lower()
    if needs_repair(html, data, beginning):
        html = repair_faulty_html(html, beginning)
        data = html.encode("utf-8")
    try:
        tree = lxml.html.fromstring(data, parser=HTML_PARSER)
    except etree.ParserError:  # nothing but whitespace or comments
        return None
    if tree is None or (is_dubious_html(beginning) and len(tree) < 2):
        return None
    return tree


def needs_repair(html: str, data: bytes, beginning: str) -> bool:
    """Whether `repair_faulty_html` changes the page: characters XML forbids, a doctype with a
    slash in its first line, or a self-closing <html/> in the first lines."""
    if len(data.translate(None, XML_FORBIDDEN_BYTES)) != len(data):
        return True
    if "\ufffe" in html or "\uffff" in html:  # faster found in the str than in the bytes
        return True
    if "doctype" in beginning:  # trafilatura rewrites the first line (and adds a "\n" if none)
        end = html.find("\n")
        if end < 0 or DOCTYPE_TAG.match(html, 0, end):
            return True
    lines = html[:4096].splitlines()[:4]
    return any("<html" in line and line.endswith("/>") for line in lines)


def html_parser() -> lxml.html.HTMLParser:
    """trafilatura's HTML parser settings, every element an HtmlElement.

    lxml.html picks an element class per tag with a Python callback on every element access;
    trafilatura never needs the form classes, and the callback costs a few % of extraction time.
    """
    parser = lxml.html.HTMLParser(
        collect_ids=False,
        default_doctype=False,
        encoding="utf-8",
        remove_comments=True,
        remove_pis=True,
    )
    lookup = etree.ElementDefaultClassLookup(
        element=HtmlElement,
        comment=lxml.html.HtmlComment,
        pi=lxml.html.HtmlProcessingInstruction,
        entity=lxml.html.HtmlEntity,
    )
    parser.set_element_class_lookup(lookup)
    return parser


HTML_PARSER = html_parser()


def empty_extraction(reason: str, url: str | None) -> Extraction:
    return Extraction(
        title="",
        text="",
        lang=None,
        published=None,
        author=None,
        site_name=None,
        canonical_url=url,
        word_count=0,
        empty_reason=reason,
    )


def extract_from_tree(tree: HtmlElement, *, url: str | None, lang_hint: str | None) -> Extraction:
    """One trafilatura pass over a parsed tree, then newsmon's boilerplate rules."""
    strip_code(tree)
    declared = declared_language(tree, lang_hint)
    anchors = page_anchors(tree)
    prune_furniture(tree)
    join_split_body(tree)
    meta = page_metadata(tree, url)
    links = anchor_texts(anchors, site_of(meta.url or url))
    head_titles = declared_titles(tree)
    strip_chrome(tree)
    options = copy(EXTRACTOR)
    options.url = options.source = url
    body = trafilatura_body(tree, options)
    if body is None:
        return empty_extraction("no_main_text", url)
    title = normalize_line(meta.title or "")
    blocks = remove_boilerplate(blocks_of(body, links), head_titles or (title,))
    text = "\n".join(line.text for block in blocks for line in block.lines)
    if not title:
        title = next((block.text for block in blocks if block.kind == "head"), "")
    words = len(text.split())
    return Extraction(
        title=title,
        text=text,
        lang=choose_language(declared, text),
        published=parse_date(meta.date),
        author=normalize_line(meta.author or "") or None,
        site_name=normalize_line(meta.sitename or "") or None,
        canonical_url=meta.url or url,
        word_count=words,
        empty_reason=None if text else "no_main_text",
    )


def trafilatura_body(tree: HtmlElement, options: Extractor) -> _Element | None:
    """trafilatura's output tree for a page tree newsmon can let it change; None if too short.

    `bare_extraction` copies a tree it is handed, to leave it intact (0.2 ms a page); with
    newsmon's options its other steps are the cascade and two size checks, done here on the
    tree itself. While bare_extraction is not the one this was written for, or the options
    ask for more, bare_extraction is called.
    """
    if not BARE_EXTRACTION_CURRENT or options.lang or options.dedup or options.with_metadata:
        document = trafilatura.bare_extraction(tree, options=options)
        return None if document is None or isinstance(document, dict) else document.body
    try:
        body, text, _, comments = trafilatura_sequence(tree, options, options.url)
    except (TypeError, ValueError):  # what bare_extraction turns into None
        return None
    if options.max_tree_size and len(body) > options.max_tree_size:
        strip_tags(body, "hi")
        if len(body) > options.max_tree_size:
            return None
    if len(text) < options.min_output_size and len(comments) < options.min_output_comm_size:
        return None
    return body


# the source of trafilatura's bare_extraction that trafilatura_body follows (2.3.1)
BARE_EXTRACTION_SHA256 = "2e57adb3062086f9695046cf58b1a8825143322fe74e74739791dff6d8da9fea"


def _is_known_bare_extraction() -> bool:
    """Whether trafilatura's bare_extraction is the one `trafilatura_body` follows (False
    also when its source cannot be read, as in an installation without .py files)."""
    try:
        source = inspect.getsource(trafilatura.bare_extraction)
    except (OSError, TypeError):
        return False
    return hashlib.sha256(source.encode()).hexdigest() == BARE_EXTRACTION_SHA256


BARE_EXTRACTION_CURRENT = _is_known_bare_extraction()


def page_metadata(tree: HtmlElement, url: str | None) -> Document:
    """trafilatura's metadata steps that newsmon uses (no categories, tags or licence).

    The same order as `trafilatura.metadata.extract_metadata`: meta tags, JSON-LD, then the
    page's markup; the date comes from htmldate without its slow extensive search.
    """
    meta = examine_meta(tree)
    if meta.author and " " not in meta.author:
        meta.author = None  # a single word is a handle or a site, not a byline
    with contextlib.suppress(Exception):  # trafilatura's JSON-LD reader fails on bad JSON
        meta = extract_meta_json(tree, meta)
    meta.title = meta.title or extract_title(tree)
    meta.url = meta.url or extract_url(tree, url)
    meta.date = find_date(
        tree,
        url=meta.url,
        outputformat="%Y-%m-%dT%H:%M:%S%z",
        original_date=True,
        extensive_search=False,
    )
    meta.sitename = (meta.sitename or extract_sitename(tree) or "").lstrip("@") or None
    meta.author = meta.author or markup_author(tree)
    return meta


def markup_author(tree: HtmlElement) -> str | None:
    """trafilatura's byline search in the page's markup (`trafilatura.metadata.extract_author`).

    trafilatura deep-copies the page and prunes comments, sidebars, dates and figures from all
    of it before searching; checking only the few elements the search finds gives the same
    answer, faster, and leaves `tree` as it was for the extraction that follows.
    """
    for element in byline_candidates(tree):
        if IN_DISCARDED(element):
            continue
        removed = set(DISCARDED_INSIDE(element))
        content = " ".join(" ".join(texts_outside(element, removed)).split())
        if 2 < len(content) < AUTHOR_MAX_CHARS:
            return normalize_authors(None, content)
    return None


def byline_candidates(tree: HtmlElement) -> Iterator[HtmlElement]:
    """What trafilatura's byline expressions select, the first expression's elements first.

    libxml2 spends ~2 µs an element on each of the three expressions (a tag test and a dozen
    attribute tests); one pass in Python over the elements gives the same elements in the same
    order, 3-4x faster. The first expression's elements come out as the pass finds them (the
    pass stops when the caller takes one), the others once it is done. Used only while
    trafilatura's expressions are the ones translated here.
    """
    if not BYLINE_PASS_CURRENT:
        for expression in AUTHOR_XPATHS:
            yield from expression(tree)
        return
    second: list[HtmlElement] = []
    third: list[HtmlElement] = []
    rel_me = {rel.getparent() for rel in tree.iter("rel") if rel.text_content() == "me"}
    for element in tree.iter(etree.Element):
        tag, get = element.tag, element.get
        css, ident = get("class"), get("id")
        if not (
            (css and BYLINE_CLASS_ANY.search(css))
            or (ident and BYLINE_ID_ANY.search(ident))
            or tag == "author"
            or element in rel_me
        ) and BYLINE_RARE_ATTRIBUTES.isdisjoint(element.keys()):
            continue  # the common case: nothing any of the three expressions tests for
        css, ident = css or "", ident or ""
        prop, component = get("itemprop") or "", get("data-component") or ""
        if tag == "author" or (
            tag in BYLINE_TAGS_FIRST
            and (
                "author" in (get("rel"), ident, css)
                or prop == "author name"
                or get("data-testid") in ("AuthorCard", "AuthorURL")
                or BYLINE_CLASS_FIRST.search(css)
                or element in rel_me
            )
        ):
            yield element
        if tag in BYLINE_TAGS_SECOND and (
            css in ("byline", "username", "byl", "BBL")
            or "author" in prop
            or BYLINE_ID_SECOND.search(ident)
            or BYLINE_CLASS_SECOND.search(css)
        ):
            second.append(element)
        if (
            "Byline" in component
            or "author" in prop
            or "author" in ident
            or "Author" in ident
            or BYLINE_CLASS_THIRD.search(css)
        ):
            third.append(element)
    yield from second
    yield from third


# trafilatura's byline expressions (AUTHOR_XPATHS), whitespace normalised, as byline_candidates
# translates them; another trafilatura version with other expressions gets them evaluated as is
BYLINE_XPATHS_TRANSLATED = (
    "//*[self::a or self::address or self::div or self::link or self::p or self::span or "
    "self::strong][ @rel='author' or @id='author' or @class='author' or @itemprop='author name' "
    "or rel='me' or @data-testid='AuthorCard' or @data-testid='AuthorURL' or re:test(@class, "
    "'author-?name|AuthorName|authorName')]|//author",
    "//*[self::a or self::div or self::h3 or self::h4 or self::p or self::span][ @class='byline' "
    "or @class='username' or @class='byl' or @class='BBL' or contains(@itemprop, 'author') or "
    "re:test(@id, 'author|zuozhe|bianji|xiaobian') or re:test(@class, "
    "'author|channel-name|zuozhe|bianji|xiaobian|submitted-by|posted-by|journalist-name')]",
    "//*[ contains(@data-component, 'Byline') or contains(@itemprop, 'author') or "
    "re:test(@id, '[Aa]uthor') or re:test(@class, '[Aa]uthor|screenname|writer|[Bb]yline')]",
)
BYLINE_PASS_CURRENT = (
    tuple(" ".join(expression.path.split()) for expression in AUTHOR_XPATHS)
    == BYLINE_XPATHS_TRANSLATED
)
BYLINE_TAGS_FIRST = frozenset({"a", "address", "div", "link", "p", "span", "strong"})
BYLINE_TAGS_SECOND = frozenset({"a", "div", "h3", "h4", "p", "span"})
BYLINE_CLASS_FIRST = re.compile("author-?name|AuthorName|authorName")
BYLINE_ID_SECOND = re.compile("author|zuozhe|bianji|xiaobian")
BYLINE_CLASS_SECOND = re.compile(
    "author|channel-name|zuozhe|bianji|xiaobian|submitted-by|posted-by|journalist-name"
)
BYLINE_CLASS_THIRD = re.compile("[Aa]uthor|screenname|writer|[Bb]yline")
# a quick test: a class or id any of the three could select, or an attribute tested apart
BYLINE_CLASS_ANY = re.compile(
    "[Aa]uthor|channel-name|zuozhe|bianji|xiaobian|submitted-by|posted-by|journalist-name|"
    "screenname|writer|[Bb]yline|^(?:byl|BBL|username)$"
)
BYLINE_ID_ANY = re.compile("[Aa]uthor|zuozhe|bianji|xiaobian")
BYLINE_RARE_ATTRIBUTES = frozenset({"itemprop", "rel", "data-testid", "data-component"})


def discard_expressions() -> tuple[XPath, XPath]:
    """trafilatura's byline exclusions as two tests: on an element's ancestors, inside it."""
    zones, everywhere = (expression.path.strip() for expression in AUTHOR_DISCARD_XPATHS)
    if not zones.startswith(".//*[") or everywhere != "//time|//figure":
        raise RuntimeError("trafilatura's byline exclusions changed; review markup_author")
    predicate = zones.removeprefix(".//*")
    regexp = {"re": "http://exslt.org/regular-expressions"}
    return (
        XPath(
            f"ancestor-or-self::*{predicate}|ancestor-or-self::time|ancestor-or-self::figure",
            namespaces=regexp,
        ),
        XPath(f".//*{predicate}|.//time|.//figure", namespaces=regexp),
    )


IN_DISCARDED, DISCARDED_INSIDE = discard_expressions()


def texts_outside(element: HtmlElement, removed: set[HtmlElement]) -> Iterator[str]:
    """An element's text pieces in order, without removed descendants (their tails stay)."""
    if element.text:
        yield element.text
    for child in element:
        if child not in removed:
            yield from texts_outside(child, removed)
        if child.tail:
            yield child.tail


def page_anchors(tree: HtmlElement) -> dict[str | None, set[str]]:
    """The texts of the page's links by the host their address names (None: a relative one).

    trafilatura's own link output changes what it extracts, so links are read from the input.
    """
    anchors: dict[str | None, set[str]] = {}
    for anchor in tree.iter("a"):
        href = anchor.get("href", "")
        if href.startswith("#"):  # a table of contents repeats headings
            continue
        address = LINK_HOST.match(href)
        text = (anchor.text or "") if not len(anchor) else text_of(anchor)  # most: one text
        anchors.setdefault(address.group(1) if address else None, set()).add(text)
    return anchors


def anchor_texts(anchors: dict[str | None, set[str]], site: str | None) -> LinkTexts:
    """Normalised texts of the page's links within its own site, to measure link density
    after extraction.

    Menus, related headlines and "read more" lists lead to the page's own site (`site`); a line
    that links to another site cites a source, a product or a document, as articles do.
    """
    raw = set().union(
        *(
            texts
            for host, texts in anchors.items()
            if host is None or site is None or not is_elsewhere(host, site)
        )
    )
    texts = (normalize_line(text) for text in raw)
    folded = frozenset(text.casefold() for text in texts if text and not SHOWN_ADDRESS.search(text))
    return LinkTexts(
        folded,
        frozenset(text.split()[0] for text in folded),
        frozenset(text.split()[-1] for text in folded),
    )


def site_of(address: str | None) -> str | None:
    """The registrable domain of an address ("bbc.co.uk" for https://www.bbc.co.uk/news/x),
    or its host name when it has none (an IP address, localhost)."""
    if not address:
        return None
    try:
        return extract_domain(address, fast=True) or urlsplit(address).hostname
    except ValueError:  # a malformed address, such as an unclosed IPv6 bracket
        return None


def is_elsewhere(host: str, site: str) -> bool:
    """Whether a link's host, as written ("www.bbc.co.uk:443"), is outside `site`."""
    try:
        name = urlsplit(f"//{host}").hostname
    except ValueError:  # a malformed address, such as an unclosed IPv6 bracket
        return False
    return name is not None and name != site and not name.endswith("." + site)


def text_of(element: HtmlElement) -> str:
    """An element's text without its tail, as `text_content()` gives it, in less time."""
    text: str = etree.tostring(element, method="text", encoding="unicode", with_tail=False)
    return text


def strip_code(tree: HtmlElement) -> None:
    """Remove, in place, scripts (but JSON-LD metadata), styles and vector drawings.

    trafilatura drops them too, but only after copying the tree and running its costliest
    expressions over every node of them; SVG icons alone can be thousands of nodes a page.
    """
    for script in list(tree.iter("script")):
        if script.get("type", "").strip().lower() != "application/ld+json":
            script.drop_tree()
    etree.strip_elements(
        tree, "style", "svg", "{http://www.w3.org/2000/svg}svg", "template", with_tail=False
    )


def strip_chrome(tree: HtmlElement) -> None:
    """Remove, in place, navigation, footers, asides, widgets and meta tags before trafilatura.

    trafilatura deletes these elements too (`MANUALLY_CLEANED`), but only after copying the
    page twice and running its expressions over them (about a third of a news page's
    elements). Its one exception, keeping them when every paragraph is inside them, is kept
    by stripping nothing then. Metadata is read before this: bylines and dates
    sit in footers, the canonical URL in a link tag.
    """
    for paragraph in tree.iter("p"):
        if not any(parent.tag in TRAFILATURA_CLEANED for parent in paragraph.iterancestors()):
            etree.strip_elements(tree, *CHROME_TAGS, with_tail=False)
            return


def prune_furniture(tree: HtmlElement) -> None:
    """Drop, in place, elements the page itself marks as not shown or still loading.

    Class and id names are left to trafilatura: measured on real pages, pruning by names such
    as "share" or "related" removes whole articles on sites that use them for wrappers. The
    tree is this call's own parse, so mutating it has no effect outside `extract`.
    """
    for element in HIDDEN_XPATH(tree):
        if element.tag not in KEEP_TAGS and element.getparent() is not None:
            element.drop_tree()


def join_split_body(tree: HtmlElement) -> None:
    """Move, in place, the later parts of an article body split by ads into its first part.

    Pages cut one article into several containers of the same tag and class with ads and
    empty widgets between them; trafilatura reads the first container only. The container is
    the one trafilatura's own body expressions select, so other repeated blocks (comments,
    teasers) stay where they are.
    """
    same_class: dict[tuple[str, str], list[HtmlElement]] = {}
    for container in dict.fromkeys(p.getparent() for p in tree.iter("p")):
        if container is not None and container.get("class"):
            same_class.setdefault((container.tag, container.get("class", "")), []).append(container)
    parts = {
        key: [part for part in group if paragraph_chars(part) >= SPLIT_PART_MIN_CHARS]
        for key, group in same_class.items()
        if len(group) > 1
    }
    if all(len(group) < 2 for group in parts.values()):
        return  # the common case, decided without trafilatura's costlier body expressions
    candidates = [part for group in parts.values() if len(group) > 1 for part in group]
    if BODY_TESTS and not any(test(part) for part in candidates for test in BODY_TESTS):
        return  # trafilatura's body, whichever it is, is none of the parts
    body = next((found[0] for expr in BODY_XPATH if (found := expr(tree))), None)
    group = parts.get((body.tag, body.get("class", ""))) if body is not None else None
    if body is None or not group or body not in group:
        return
    ancestors = set(body.iterancestors())
    for other in group:
        if other is not body and other not in ancestors and body not in set(other.iterancestors()):
            body.extend(list(other))


def body_tests() -> tuple[XPath, ...]:
    """trafilatura's body expressions as tests of one element: does it match one of them?

    The body they select matches one, so a page whose candidate parts match none is decided
    without searching the whole page (1.5 ms). Empty, and the page searched, when an
    expression is not of the form this rewrites (".//" only at the start of a path).
    """
    tests = []
    for expression in BODY_XPATH:
        path = " ".join(expression.path.split())
        if path.count(".//") != len(re.findall(r"(?:^|[(|])\s*\.//", path)):
            return ()
        path = path.replace(".//", "self::").replace(")[1]", ")")  # "(...)[1]": the first
        path = path[:-3] if path.endswith("][1]") else path  # ".//*[...][1]": a first child
        if "[1]" in path:
            return ()
        try:
            tests.append(XPath(path, namespaces={"re": "http://exslt.org/regular-expressions"}))
        except etree.XPathSyntaxError:
            return ()
    return tuple(tests)


BODY_TESTS = body_tests()


def paragraph_chars(element: HtmlElement) -> int:
    """Characters of text in an element's own paragraphs (<p> children), the prose it holds."""
    return sum(len(text_of(p).strip()) for p in element.iterchildren("p"))


def normalize_line(text: str) -> str:
    """The line as published, in NFC, without invisible characters, with single spaces.

    Quotes, apostrophes, dashes and guillemets stay as the page wrote them; matching and
    grouping fold them where they compare words (the alerter and the detector read words,
    which no quote or apostrophe is part of).
    """
    if not text.isascii():  # most lines of most pages are: skip the costlier step
        text = unicodedata.normalize("NFC", text)
    return " ".join(UNWANTED_CHARS.sub("", text).split())


def element_lines(element: HtmlElement) -> list[str]:
    """An output element's text, one entry per line break (<lb/>) it holds."""
    pieces: list[str] = []
    if element.tag != "lb":
        collect_text(element, pieces)
    return [line for line in map(normalize_line, " ".join(pieces).split("\n")) if line]


def collect_text(node: HtmlElement, pieces: list[str]) -> None:
    """A node's text pieces in document order (a child's tail after the child's own text), a
    line break for each <lb/>."""
    if node.text:
        pieces.append(node.text)
    for child in node:
        if child.tag == "lb":
            pieces.append("\n")
        else:
            collect_text(child, pieces)
        if child.tail:
            pieces.append(child.tail)


def link_share(line: str, links: LinkTexts) -> float:
    """Share of a line's characters in one link: the whole line, or a run of words at an end."""
    folded = line.casefold()
    if folded in links.texts:
        return 1.0
    words = folded.split()
    if len(words) > MAX_LINK_LINE_WORDS or not words:
        return 0.0
    parts: list[str] = []
    if words[0] in links.firsts:
        parts.extend(" ".join(words[:size]) for size in range(1, len(words)))
    if words[-1] in links.lasts:
        parts.extend(" ".join(words[-size:]) for size in range(1, len(words)))
    best = max((len(part) for part in parts if part in links.texts), default=0)
    return best / max(1, len(folded))


def blocks_of(body: HtmlElement | None, links: LinkTexts) -> list[Block]:
    """trafilatura's output tree as blocks; list items, table rows and line breaks make lines."""
    if body is None:
        return []
    blocks: list[Block] = []
    loose_text(body.text, links, blocks)
    for element in body:
        if isinstance(element.tag, str):
            if element.tag == "list":
                parts = list(element.iterchildren("item"))
            elif element.tag == "table":
                parts = list(element.iter("row"))
            else:
                parts = [element]
            texts = [line for part in parts for line in element_lines(part)]
            lines = tuple(Line(text, link_share(text, links)) for text in texts)
            if lines:
                blocks.append(Block(element.tag, element.get("rend", ""), lines))
        loose_text(element.tail, links, blocks)
    return blocks


def loose_text(text: str | None, links: LinkTexts, blocks: list[Block]) -> None:
    """Append text that sits directly in the output body (after a heading, say) as a paragraph.

    trafilatura leaves a section's first paragraph as the tail of its heading on some pages.
    """
    lines = tuple(Line(line, link_share(line, links)) for line in element_lines_of_text(text))
    if lines:
        blocks.append(Block("p", "", lines))


def element_lines_of_text(text: str | None) -> list[str]:
    return [line for line in map(normalize_line, (text or "").split("\n")) if line]


def remove_boilerplate(blocks: Sequence[Block], titles: Sequence[str]) -> list[Block]:
    """Drop links, the leading headline, and trailing furniture."""
    kept = drop_link_lines(blocks)
    kept = drop_headline(kept, titles)
    return trim_tail(kept)


def drop_link_lines(blocks: Sequence[Block]) -> list[Block]:
    """Remove lines that are mostly one link, and the short label introducing them.

    Link lists ("Don't miss", related headlines, menus) are lines whose text is a link; a
    label line left right before removed links is their title.
    """
    kept: list[Block] = []
    for block in blocks:
        if block.kind == "table":  # a data table's cells link to what they name
            kept.append(block)
            continue
        if block.kind == "list" and is_link_list(block):
            drop_orphan_label(kept)
            continue
        lines: list[Line] = []
        for line in block.lines:
            if line.link_share >= LINK_DENSE_RATIO:
                if lines:
                    if is_short_label(lines[-1].text):
                        lines.pop()
                else:
                    drop_orphan_label(kept)
                continue
            lines.append(line)
        if lines:
            kept.append(Block(block.kind, block.rend, tuple(lines)))
    return kept


def is_link_list(block: Block) -> bool:
    """A list whose items are mostly links, or whose every item is a linked headline and teaser."""
    dense = sum(line.link_share >= LINK_DENSE_RATIO for line in block.lines)
    teasers = all(line.link_share >= TEASER_LINK_SHARE for line in block.lines)
    return dense > len(block.lines) / 2 or (len(block.lines) >= MIN_TEASERS and teasers)


def drop_orphan_label(blocks: list[Block]) -> None:
    """Remove the last kept block when it is only a short label (the title of a link list)."""
    if blocks and len(blocks[-1].lines) == 1 and is_short_label(blocks[-1].text):
        blocks.pop()


def is_short_label(text: str) -> bool:
    return word_count(text) <= LABEL_MAX_WORDS and not text.rstrip(".…").endswith(SENTENCE_END)


def drop_headline(blocks: list[Block], titles: Sequence[str]) -> list[Block]:
    """Drop the leading headline, datelines, and lines repeating the page's title or a URL.

    `titles` are the ones the page declares in its head, else trafilatura's. A leading <h1>
    is the headline when most of its words are the title's; another <h1> starts the text.
    """
    folded_titles = [title.casefold() for title in titles if title]
    title_words = frozenset(WORD.findall(" ".join(folded_titles)))
    start = 0
    while start < len(blocks):
        block = blocks[start]
        text = block.text.casefold()
        is_title = any(text in title or title in text for title in folded_titles)
        sentence = text.endswith(".")  # a headline has no full stop; a first sentence has
        top = block.rend == "h1" and (not title_words or repeats_title(text, title_words))
        headline = top or (is_title and len(block.lines) == 1 and not sentence)
        if (headline and block.words <= SHORT_BLOCK_WORDS) or URL_LINE.match(text):
            start += 1
            continue
        if is_dateline(block) or (start and block.kind == "head" and is_standfirst(blocks, start)):
            start += 1
            continue
        break
    return blocks[start:]


def repeats_title(folded_text: str, head_words: frozenset[str]) -> bool:
    """Whether TITLE_WORD_SHARE of a casefolded line's words are words of the page's title."""
    words = WORD.findall(folded_text)
    return sum(word in head_words for word in words) >= TITLE_WORD_SHARE * len(words) > 0


def declared_titles(tree: HtmlElement) -> tuple[str, ...]:
    """The titles a page declares in its head (<title>, og:title, twitter:title), normalised.

    trafilatura's title is the body's only <h1> when meta tags name none, so it cannot tell
    whether that <h1> is the headline; these can.
    """
    head = tree.find("head")
    if head is None:
        return ()
    titles = []
    for element in head.iterchildren("title", "meta"):
        if element.tag == "title":
            titles.append(text_of(element))
        elif (element.get("property") or element.get("name") or "").lower() in HEAD_TITLE_META:
            titles.append(element.get("content") or "")
    return tuple(title for title in map(normalize_line, titles) if title)


def is_standfirst(blocks: Sequence[Block], index: int) -> bool:
    """A heading right after the dropped headline and before any paragraph: the deck."""
    return blocks[index].words <= SHORT_BLOCK_WORDS and blocks[index - 1].kind == "head"


def is_dateline(block: Block) -> bool:
    """A short line with a year or a time and no sentence end, before the text: a dateline."""
    return (
        len(block.lines) == 1
        and block.kind == "p"
        and block.words <= DATELINE_MAX_WORDS
        and DATE_LIKE.search(block.text) is not None
        and not block.text.endswith(SENTENCE_STOPS)
    )


def trim_tail(blocks: list[Block]) -> list[Block]:
    """Remove trailing furniture until the article's last real block is last.

    A tail is at most TAIL_MAX_SHARE of the words: more than that is the article itself.
    """
    budget = TAIL_MAX_SHARE * sum(block.words for block in blocks)
    while blocks:
        cut = trailing_labels_start(blocks)
        if cut is None:
            cut = short_note_start(blocks)
        if cut is None and is_labelled_note(blocks[-1], blocks[:-1]):
            cut = len(blocks) - 1
        if cut is None:
            return blocks
        budget -= sum(block.words for block in blocks[cut:])
        if budget < 0:
            return blocks
        blocks = blocks[:cut]
    return blocks


def is_label_line(line: str) -> bool:
    """A headline or widget title: short and without sentence punctuation at the end."""
    return (
        word_count(line) <= SHORT_BLOCK_WORDS
        and not line.endswith(SENTENCE_END)
        and INNER_SENTENCE_END.search(line) is None
    )


def trailing_labels_start(blocks: Sequence[Block]) -> int | None:
    """Start of the trailing run of blocks made only of label lines, if any.

    Related-headline lists, trending and price widget titles, "more" links and orphan headings
    are short lines without sentence punctuation; article paragraphs end with punctuation.
    """
    start = len(blocks)
    while start > 0 and is_trailing_label(blocks[start - 1]):
        start -= 1
    return start if start < len(blocks) else None


def is_trailing_label(block: Block) -> bool:
    """A heading (nothing after it is prose, so it heads a widget) or a block of label lines."""
    if block.kind == "head":
        return True
    return block.kind not in DATA_KINDS and all(is_label_line(line.text) for line in block.lines)


def short_note_start(blocks: Sequence[Block]) -> int | None:
    """Start of a trailing note: a label line then one to three short sentences that name
    none of the article's names.

    Placeholders such as "Loading the thread / Fetching the posts... / It takes seconds." look
    like this; an article's last section has a heading element and longer paragraphs, and a
    short closing list (results, next fixtures, opening hours) names what the article names.
    """
    for size in range(2, SHORT_NOTE_MAX_BLOCKS + 1):
        if size >= len(blocks):
            return None
        zone = blocks[-size:]
        first = zone[0]
        if first.kind == "head" or len(first.lines) != 1 or not is_label_line(first.text):
            continue
        words = [block.words for block in zone]
        if max(words) <= SHORT_NOTE_WORDS and sum(words) <= SHORT_NOTE_TOTAL_WORDS:
            article_names = proper_names(block.text for block in blocks[:-size])
            if not article_names or proper_names(block.text for block in zone) & article_names:
                return None  # no names to tell by (a script without capitals), or shares one
            return len(blocks) - size
    return None


def is_labelled_note(block: Block, before: Sequence[Block]) -> bool:
    """A short "Label: ..." paragraph at the end that names none of the article's names.

    Disclaimers, legal notices and editor's notes speak about the page, not the story, so they
    share no proper names with the article; a concluding "Conclusion: ..." paragraph does.
    """
    if block.kind != "p" or len(block.text) > NOTE_MAX_CHARS or not before:
        return False
    match = LABEL_PREFIX.match(block.text)
    if match is None or len(match.group(1).split()) > 4:
        return False
    article_names = proper_names(b.text for b in before)
    return not (proper_names([match.group(2)]) & article_names)


def proper_names(texts: Iterable[str]) -> set[str]:
    """Capitalised words not at the start of a sentence: a cheap stand-in for named entities."""
    names: set[str] = set()
    for text in texts:
        previous = "."
        for token in text.split():
            word = token.strip(NAME_PUNCTUATION)
            if len(word) > 1 and word[0].isupper() and not previous.endswith(SENTENCE_BOUNDARY):
                names.add(word)
            previous = token
    return names


def declared_language(tree: HtmlElement, lang_hint: str | None) -> str | None:
    """The page's declared language: <html lang>, Content-Language, og:locale, then the hint."""
    for candidate in language_declarations(tree.getroottree().getroot(), lang_hint):
        code = iso_639_1(candidate if isinstance(candidate, str) else None)
        if code:
            return code
    return None


def language_declarations(root: HtmlElement, lang_hint: str | None) -> Iterator[object]:
    """The page's language declarations in order, each read only when the ones before it gave
    no language: most pages declare it on <html>, and the meta searches cross the whole page."""
    yield root.get("lang")
    yield root.get("{http://www.w3.org/XML/1998/namespace}lang")
    yield from root.xpath(CONTENT_LANGUAGE_XPATH)
    yield from root.xpath("//meta[@property='og:locale']/@content")
    yield lang_hint


def parse_date(value: str | None) -> datetime | None:
    """An ISO-like date from htmldate as aware UTC; naive values are taken as UTC."""
    if not value:
        return None
    for layout in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            parsed = datetime.strptime(value, layout)
        except ValueError:
            continue
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    return None
