"""Cleaner core: article text without the page's furniture, metadata, and no crash on any input."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

import lxml.html
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from trafilatura.utils import repair_faulty_html
from trafilatura.xpaths import AUTHOR_XPATHS, BODY_XPATH

from services.cleaner import core
from services.cleaner.core import (
    BODY_TESTS,
    HTML_PARSER,
    Extraction,
    byline_candidates,
    extract,
    needs_repair,
)
from services.samples.server import sample_pages
from tools.build_site import SITES

PAGES = {path.name[:3]: path for path in sample_pages()}
EXPECTED_LANG = {"000": "fr", "001": "fr", "002": "it", "003": "fr", "004": "pt"}
KEY_SENTENCES = {
    "000": (
        "OpenAI est en train de passer d\u2019un laboratoire de recherche",  # as the page has it
        "Ce passage du « conseil » à « l\u2019exécution » explique pourquoi OpenAI",
    ),
    "001": (
        "Lors d'un récent dialogue approfondi, Satya Nadella",
        "« créer plus de valeur avec moins de personnel » deviendra un enjeu central",
    ),
    "002": (
        'OpenAI si sta trasformando da un laboratorio di ricerca a un "impero AI"',
        'Questo passaggio dal "consigliare" all\'"eseguire" spiega perché OpenAI',
    ),
    "003": (
        "Cette entrevue avec Sam Altman, cofondateur et PDG d'OpenAI",
        "les enfants grandiront dans un monde très différent",
    ),
    "004": (
        'A OpenAI está passando de um laboratório de pesquisa para um "império de IA"',
        'Essa mudança de "aconselhar" para "executar" explica por que a OpenAI',
    ),
}
BOILERPLATE = (
    "Avertissement",
    "Esclusione di responsabilità",
    "Aviso Legal",
    "Vous pourriez également aimer",
    "Ti potrebbe interessare anche",
    "Talvez também goste",
    "En vogue",
    "In tendenza",
    "Populares",
    "Prix des cryptos",
    "Prezzi delle criptovalute",
    "Preços de criptomoedas",
    "Chargement du thread",
    "Récupération des tweets originaux",
    "Cela ne prend généralement que quelques secondes",
    "Le tarif de Trump sur la Chine",
    "Résilience de BNB",
    "Imperturbable face à l'effondrement",
    "Le azioni di Canaan",
    "BlackRock IBIT",
    "Smarter Web Company",
    "Solana Foundation",
    "Fase real de recuperação",
    "cookies",
    "Tous droits réservés",
    *(headline for site in SITES.values() for headline in site.trending),
)


def page_html(seed_id: str) -> str:
    return PAGES[seed_id].read_text(encoding="utf-8")


def without_markup_hints(page: str) -> str:
    """The page with no class/id/aria hints and its widgets moved inside <article>."""
    bare = re.sub(r'\s(?:class|id|aria-[a-z]+|role)="[^"]*"', "", page)
    return bare.replace("</article>", "").replace("</main>", "</article>\n</main>")


def assert_article_only(result: Extraction, seed_id: str) -> None:
    for phrase in BOILERPLATE:
        assert phrase not in result.text, phrase
    for sentence in KEY_SENTENCES[seed_id]:
        assert sentence in result.text
    assert result.lang == EXPECTED_LANG[seed_id]
    assert result.empty_reason is None


@pytest.mark.parametrize("seed_id", sorted(EXPECTED_LANG))
def test_every_paragraph_of_a_sample_article_comes_out_as_published(seed_id: str) -> None:
    page = page_html(seed_id)
    text = extract(page).text
    for element in lxml.html.fromstring(page).xpath("//article//p | //article//li"):
        published = " ".join(element.text_content().split())
        if any(phrase in published for phrase in BOILERPLATE):
            assert published not in text
        else:
            assert published in text  # typographic quotes, apostrophes and dashes kept


@pytest.mark.parametrize("seed_id", sorted(EXPECTED_LANG))
def test_sample_page_extracts_to_article_without_tail(seed_id: str) -> None:
    page = page_html(seed_id)
    result = extract(page, url=f"http://127.0.0.1:8765/{PAGES[seed_id].name}")

    assert_article_only(result, seed_id)
    headline = re.search(r"<h1>(.*?)</h1>", page)
    assert headline is not None
    assert result.title == html.unescape(headline.group(1))
    assert not result.text.startswith(result.title)
    assert result.word_count == len(result.text.split()) > 150


@pytest.mark.parametrize("seed_id", sorted(EXPECTED_LANG))
def test_tail_is_dropped_by_structure_alone(seed_id: str) -> None:
    assert_article_only(extract(without_markup_hints(page_html(seed_id))), seed_id)


def test_metadata_comes_from_the_page() -> None:
    result = extract(page_html("004"))
    assert result.published == datetime(2025, 10, 9, 12, 10, tzinfo=UTC)
    assert result.author == "Long Yue"
    assert result.site_name == "Correio Cripto"
    assert result.canonical_url == "https://www.correiocripto.example/pt/news/sam-altman-a16z"


def article(paragraphs: list[str], *, lang: str = "en", head: str = "") -> str:
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return (
        f'<html lang="{lang}"><head><title>Harbour reopens</title>{head}</head>'
        f"<body><article><h1>Harbour reopens</h1>{body}</article></body></html>"
    )


STORY = [
    "The Port of Marseille reopened its northern basin on Tuesday after three weeks of repairs "
    "to the sea wall damaged in the September storm, the harbour authority said.",
    "Ferries to Corsica and Sardinia resumed their normal timetable, while cargo operators "
    "said the backlog of containers would take another week to clear.",
    "Engineers from the authority replaced four hundred metres of the breakwater and added "
    "sensors that report wave loads to the control room every minute.",
]


def test_a_first_sentence_that_repeats_the_title_stays_but_a_title_line_goes() -> None:
    sentence = "Harbour reopens."
    page = article([sentence, *STORY]).replace("<h1>Harbour reopens</h1>", "")
    assert extract(page).text.startswith(sentence)
    repeated = article(["Harbour reopens", *STORY]).replace("<h1>Harbour reopens</h1>", "")
    assert extract(repeated).text.startswith(STORY[0])


def test_a_line_repeated_in_the_article_is_kept_each_time() -> None:
    refrain = "The harbour authority published the new timetable on its website."
    result = extract(article([STORY[0], refrain, STORY[1], refrain, STORY[2]]))
    assert result.text.count(refrain) == 2


def test_labelled_note_without_the_story_names_is_dropped() -> None:
    note = "Disclaimer: the views expressed are the author's own and not investment advice."
    result = extract(article([*STORY, note]))
    assert "Disclaimer" not in result.text
    assert STORY[-1] in result.text


def test_labelled_conclusion_naming_the_story_is_kept() -> None:
    ending = "Conclusion: Marseille expects Corsica traffic to beat last year's record."
    assert ending in extract(article([*STORY, ending])).text


def test_loader_note_is_dropped_but_short_last_sentence_is_kept() -> None:
    loader = ["Loading the thread", "Fetching the posts from X.", "This takes a few seconds."]
    assert "Loading" not in extract(article([*STORY, *loader])).text
    last = "The authority will publish its report in November."
    assert extract(article([*STORY, last])).text.endswith(last)


def test_declared_language_is_checked_against_the_text() -> None:
    french = [
        "Le port de Marseille a rouvert mardi son bassin nord après trois semaines de travaux "
        "sur la digue endommagée par la tempête de septembre, a indiqué l'autorité portuaire.",
        "Les ferries vers la Corse et la Sardaigne ont repris leurs horaires habituels.",
    ]
    assert extract(article(french, lang="en")).lang == "fr"
    assert extract(article(STORY, lang="en-GB")).lang == "en"


def test_date_without_time_is_midnight_utc() -> None:
    meta = '<meta property="article:published_time" content="2025-10-21">'
    assert extract(article(STORY, head=meta)).published == datetime(2025, 10, 21, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty_input"),
        ("  \n\t ", "empty_input"),
        ("just a line of plain text, no markup at all", "not_html"),
        (bytes(range(256)).decode("latin-1") * 4, "binary"),
        ("<html><body><nav><a href='/'>Home</a></nav></body></html>", "no_main_text"),
    ],
)
def test_unusable_input_gives_empty_text_and_a_reason(raw: str, reason: str) -> None:
    result = extract(raw)
    assert (result.text, result.word_count, result.empty_reason) == ("", 0, reason)


@settings(max_examples=60, deadline=None)
@given(st.text())
def test_never_raises_on_arbitrary_text(raw: str) -> None:
    result = extract(raw)
    assert (result.empty_reason is None) == bool(result.text)


TAGS = st.sampled_from(["div", "p", "article", "span", "a", "ul", "li", "h1", "h2", "table"])
TEXT = st.text(min_size=0, max_size=40)
NESTED_HTML = st.recursive(
    TEXT,
    lambda inner: st.builds(
        lambda tag, parts: f"<{tag}>{''.join(parts)}</{tag}>",
        TAGS,
        st.lists(inner, min_size=1, max_size=4),
    ),
    max_leaves=30,
)


@settings(max_examples=60, deadline=None)
@given(NESTED_HTML, st.sampled_from(["", "<html><body>", "<!DOCTYPE html><html lang='xx'>"]))
def test_never_raises_on_arbitrary_nested_html(fragment: str, prefix: str) -> None:
    result = extract(prefix + fragment, lang_hint="fr")
    assert result.word_count == len(result.text.split())
    assert (result.empty_reason is None) == bool(result.text)


def test_truncated_page_keeps_the_text_it_has() -> None:
    page = article(STORY)
    cut = page[: page.index(STORY[2][:40])]
    result = extract(cut)
    assert STORY[0] in result.text
    assert result.empty_reason is None


def test_megabytes_of_nested_tags_give_an_answer() -> None:
    depth = 200_000
    page = "<html><body>" + "<div><span>" * depth + "deep" + "</span></div>" * depth
    result = extract(page)
    assert (result.empty_reason is None) == bool(result.text)


def test_page_decoded_with_the_wrong_charset_still_extracts() -> None:
    french = [
        "Le port de Marseille a rouvert mardi son bassin nord après trois semaines de travaux "
        "sur la digue endommagée par la tempête de septembre, a indiqué l'autorité portuaire.",
        "Les ferries vers la Corse et la Sardaigne ont repris leurs horaires habituels, selon "
        "les opérateurs qui prévoient une semaine pour résorber le retard des conteneurs.",
    ]
    mojibake = article(french, lang="").encode("utf-8").decode("latin-1")
    result = extract(mojibake)
    assert result.empty_reason is None
    assert result.lang == "fr"


def test_quotes_apostrophes_and_dashes_stay_as_published() -> None:
    typographic = (
        "L\u2019autorit\u00e9 parle d\u2019un \u201cport ouvert\u201d \u2013 et d\u2019une "
        "\u00ab reprise \u00bb, \u201edie Wende\u201c."
    )
    result = extract(article([typographic, *STORY], lang="fr"))
    assert typographic in result.text


def test_text_is_nfc_with_single_spaces() -> None:
    decomposed = "Le cafe\u0301   ferme\u200b ses portes apre\u0300s trente ans de service a Paris."
    result = extract(article([decomposed, *STORY]))
    assert "Le café ferme ses portes après trente ans" in result.text
    assert "  " not in result.text


def test_link_list_inside_the_article_is_dropped() -> None:
    links = "".join(
        f'<li><a href="/n/{n}">Another headline about the harbour number {n}</a></li>'
        for n in range(5)
    )
    page = article(STORY).replace(
        f"<p>{html.escape(STORY[1])}</p>", f"<p>{html.escape(STORY[1])}</p><ul>{links}</ul>"
    )
    result = extract(page)
    assert "Another headline" not in result.text
    assert STORY[2] in result.text


def test_text_right_after_a_heading_is_kept() -> None:
    image = '<a href="/shop"><output><img src="/pad.jpg"></output></a>'
    sections = "".join(
        f"<h2>Offer {n}</h2>\n{image}{html.escape(text)}<br>\n<ul><li>Ask at the desk</li></ul>\n"
        for n, text in enumerate(STORY)
    )
    page = (
        '<html lang="en"><head><title>Harbour offers</title></head><body><main><section>'
        f"The harbour authority lists this week's offers.<p></p>{sections}"
        "</section></main></body></html>"
    )
    result = extract(page)
    for paragraph in STORY:
        assert paragraph in result.text


def test_article_body_split_by_an_ad_is_read_whole() -> None:
    later = "The harbour authority will report on the cost of the repairs to the city council."
    first, second = STORY[:2], [*STORY[2:], later]
    part = '<div class="article-body">{}</div>'
    paragraphs = [[f"<p>{html.escape(p)}</p>" for p in half] for half in (first, second)]
    page = (
        '<html lang="en"><head><title>Harbour reopens</title></head><body><main><article>'
        f"<h1>Harbour reopens</h1>{part.format(''.join(paragraphs[0]))}"
        '<div class="ad"><span>Advertisement</span></div>'
        f"{part.format(''.join(paragraphs[1]))}</article></main></body></html>"
    )
    result = extract(page)
    for paragraph in [*first, *second]:
        assert paragraph in result.text


def test_teaser_list_and_widget_headings_after_the_article_are_dropped() -> None:
    teasers = "".join(
        f'<li><a href="/n/{n}">Ferry strike number {n} ends</a> Unions and operators agree '
        "on new rotas</li>"
        for n in range(2)
    )
    widget = "<h3>Harbour Newsletter</h3><h4>Get the week's shipping news in your inbox.</h4>"
    page = article(STORY).replace("</article>", f"{widget}<h2>More news</h2><ul>{teasers}</ul>")
    result = extract(page)
    assert result.text.endswith(STORY[-1])


def test_dateline_before_the_text_is_dropped_but_a_dated_sentence_is_kept() -> None:
    dateline = "segunda-feira, 22 de janeiro de 2018 às 0:13 - Publicado por: Clara Borba"
    result = extract(article([dateline, *STORY]))
    assert result.text.startswith(STORY[0])
    dated = "On 12 March 2018 the harbour authority announced the repairs."
    assert extract(article([dated, *STORY])).text.startswith(dated)


def test_deck_under_the_headline_is_dropped_but_a_later_heading_is_kept() -> None:
    deck = "<h2>Three weeks of repairs and a new breakwater for the northern basin</h2>"
    section = "<h2>What the repairs cost</h2>"
    page = article(STORY).replace("</h1>", f"</h1>{deck}", 1)
    page = page.replace(f"<p>{html.escape(STORY[2])}", f"{section}<p>{html.escape(STORY[2])}")
    result = extract(page)
    assert result.text.startswith(STORY[0])
    assert "What the repairs cost" in result.text


def test_article_kept_in_an_aside_when_no_paragraph_is_outside_page_chrome() -> None:
    body = "".join(f"<p>{html.escape(p)}</p>" for p in STORY)
    page = (
        '<html lang="en"><head><title>Harbour</title></head><body>'
        f'<nav><a href="/">Home</a></nav><aside>{body}</aside></body></html>'
    )
    assert STORY[1] in extract(page).text


def test_byline_pass_selects_what_trafilaturas_byline_expressions_select() -> None:
    attributes = [
        *(f'{name}="{value}"' for name in ("class", "id") for value in BYLINE_VALUES),
        *(
            f'{name}="{value}"'
            for name in ("rel", "itemprop", "data-testid", "data-component")
            for value in ("author", "author name", "me", "AuthorCard", "AuthorURL", "Byline")
        ),
        'class="x" id="y" title="author"',  # nothing the expressions test
        "",
    ]
    tags = ("a", "address", "div", "link", "p", "span", "strong", "h3", "h4", "li", "author")
    cells = [f"<{tag} {attrs}>A. Writer</{tag}>" for tag in tags for attrs in attributes]
    page = (
        f"<html><body>{''.join(cells)}<div><rel>me</rel></div><p><rel>you</rel></p></body></html>"
    )
    tree = lxml.html.fromstring(page, parser=HTML_PARSER)
    expected = [element for expression in AUTHOR_XPATHS for element in expression(tree)]
    assert len(expected) > 100
    assert list(byline_candidates(tree)) == expected


BYLINE_VALUES = (
    "author",
    "Author",
    "authorname",
    "author-name",
    "AuthorName",
    "authorName",
    "post-author",
    "byline",
    "Byline",
    "bylines",
    "byl",
    "BBL",
    "byl x",
    "username",
    "user username",
    "screenname",
    "writer",
    "channel-name",
    "zuozhe",
    "bianji",
    "xiaobian",
    "submitted-by",
    "posted-by",
    "journalist-name",
    "auth",
    "name",
)


@pytest.mark.parametrize(
    "page",
    [
        "<!DOCTYPE html>\n<html><body><p>x</p></body></html>",
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0//EN" "http://www.w3.org/TR/xhtml1/DTD/'
        'xhtml1-strict.dtd">\n<html><p>a</p></html>',
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0//EN"><html><p>a</p></html>',
        "<!doctype html><html><p>one line</p></html>",
        "<html/>\n<body><p>x</p></body>",
        "<html lang='en'\n/>\n<body><p>x</p></body>",
        "<html><p>a\x00b\x0bc\x1fd</p></html>",
        "<html><p>a\ufffeb\uffffc</p></html>",
        "<html><p>tab\tnewline\ncarriage return\r</p></html>",
    ],
)
def test_the_repair_runs_on_exactly_the_pages_trafilatura_would_change(page: str) -> None:
    beginning = page[:50].lower()
    changed = repair_faulty_html(page, beginning) != page
    assert needs_repair(page, page.encode("utf-8"), beginning) == changed


def test_hidden_and_loading_elements_are_dropped_but_a_finished_one_is_kept() -> None:
    hidden = "<p hidden>Subscribe to read the rest of this story in our app.</p>"
    loading = '<div aria-busy="true"><p>Loading the comments, this takes a second.</p></div>'
    done = f'<div aria-busy="false"><p>{html.escape(STORY[2])}</p></div>'
    page = article(STORY[:2]).replace("</article>", f"{hidden}{loading}{done}</article>")
    text = extract(page).text
    assert "Subscribe" not in text
    assert "Loading" not in text
    assert STORY[2] in text


@pytest.mark.parametrize(
    "head",
    [
        '<meta http-equiv="Content-Language" content="de-AT">',
        '<meta property="og:locale" content="de_DE">',
        '<meta http-equiv="content-type" content="text/html"><meta property="og:locale" '
        'content="de_DE">',
    ],
)
def test_language_declared_in_meta_tags_when_html_has_none(head: str) -> None:
    assert extract(article(["Ein kurzer Satz."], lang="", head=head)).lang == "de"


def test_every_body_trafilatura_can_select_passes_the_one_element_body_tests() -> None:
    containers = [
        '<div class="post">',
        '<section itemprop="articleBody">',
        "<article>",
        '<div id="story">',
        '<div class="story-body">',
        '<main id="content">',
        '<div class="main-content">',
        '<section class="Page-content">',
        '<div role="main">',
        "<main>",
        '<div class="sidebar">',
    ]
    prose = "<p>The harbour reopened on Tuesday after three weeks of repairs.</p>"
    selected = [0] * len(BODY_XPATH)
    for container in containers:
        tag = container[1:].split(" ")[0].rstrip(">")
        page = f"<html><body><div>{container}{prose}</{tag}></div></body></html>"
        tree = lxml.html.fromstring(page, parser=HTML_PARSER)
        assert len(BODY_TESTS) == len(BODY_XPATH)
        for index, (expression, test) in enumerate(zip(BODY_XPATH, BODY_TESTS, strict=True)):
            for element in expression(tree):
                selected[index] += 1
                assert test(element), (container, expression.path)
        assert not any(test(tree.find(".//p")) for test in BODY_TESTS)
    assert all(selected)  # every expression selected a container of the list


@pytest.mark.parametrize("seed_id", sorted(EXPECTED_LANG))
def test_extraction_without_trafilaturas_copy_gives_what_bare_extraction_gives(
    seed_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert core.BARE_EXTRACTION_CURRENT  # else the fallback below is all there is to test
    page = page_html(seed_id)
    short = article(["Too short."])
    fast = extract(page), extract(short)
    monkeypatch.setattr(core, "BARE_EXTRACTION_CURRENT", False)
    assert (extract(page), extract(short)) == fast


def test_text_around_a_nested_list_stays_in_the_order_of_the_page() -> None:
    item = (
        "The works were paid by the port: <ul><li>four hundred metres of breakwater,</li>"
        "<li>new wave sensors,</li></ul> and a new control room."
    )
    page = article(STORY).replace("</article>", f"<ul><li>{item}</li></ul></article>")
    assert (
        "The works were paid by the port: four hundred metres of breakwater, new wave sensors, "
        "and a new control room." in extract(page).text
    )


def test_an_h1_that_repeats_no_declared_title_starts_the_text() -> None:
    page = article(STORY).replace("<h1>Harbour reopens</h1>", "<h1>Sea wall repairs</h1>")
    assert extract(page).text.startswith("Sea wall repairs")
    shortened = page.replace("<h1>Sea wall repairs</h1>", "<h1>Marseille: harbour reopens</h1>")
    assert extract(shortened).text.startswith(STORY[0])  # most of its words are the title's


def test_a_line_linking_to_another_site_stays_but_one_to_the_own_site_goes() -> None:
    canonical = '<link rel="canonical" href="https://www.harbour-news.example/reopens">'
    cited = "Read the authority's full inspection report on the sea wall"
    own = "Ferry strike ends after two days of talks in Marseille"
    lines = (
        f'<p><a href="https://port-authority.example/report.pdf">{cited}</a></p>'
        f'<p><a href="https://harbour-news.example/strike">{own}</a></p>'
    )
    page = article(STORY, head=canonical).replace(
        f"<p>{html.escape(STORY[1])}</p>", f"<p>{html.escape(STORY[1])}</p>{lines}"
    )
    text = extract(page).text
    assert cited in text
    assert own not in text


def test_rows_of_a_data_table_stay_though_their_cells_are_links() -> None:
    rows = "".join(
        f'<tr><td><a href="/ports/{port}">Port of {port}</a></td><td>{ships}</td></tr>'
        for port, ships in (("Toulon", 12), ("Nice", 7), ("Bastia", 9))
    )
    page = article(STORY).replace(
        f"<p>{html.escape(STORY[2])}</p>", f"<table>{rows}</table><p>{html.escape(STORY[2])}</p>"
    )
    text = extract(page).text
    assert all(f"Port of {port}" in text for port in ("Toulon", "Nice", "Bastia"))


def test_a_closing_list_naming_the_story_stays_but_a_loader_note_goes() -> None:
    fixtures = ["Up next", "First crossing to Corsica on Friday.", "Cargo from Sardinia on Monday."]
    result = extract(article([*STORY, *fixtures]))
    assert result.text.endswith(fixtures[-1])
    loader = ["Loading the thread", "Fetching the posts from X.", "This takes a few seconds."]
    assert "Loading" not in extract(article([*STORY, *loader])).text


def test_a_closing_paragraph_without_a_full_stop_stays_in_chinese_and_in_a_bio() -> None:
    chinese = [
        "马赛港周二在海堤修复三周后重新开放北部港池\uff0c港务局表示渡轮已恢复正常时刻表。",
        "工程师更换了四百米防波堤并安装了每分钟向控制室报告波浪负荷的传感器。",
        "港务局将在十一月向市议会报告修复费用以及明年冬季之前需要完成的其他工程",
    ]
    assert extract(article(chinese, lang="zh")).text.endswith(chinese[-1])
    bio = "Ana Ruiz covers ports for the paper. Follow her at ana@harbour-news.example"
    assert extract(article([*STORY, bio])).text.endswith(bio)
