"""Story grouping in every script: numbers, dates and names read alike whatever the script,
the language found when an article comes without one, and stories that stay apart."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from services.detector.core import ArticleIn, anchors_of, fingerprint
from services.detector.index import MemoryStoryIndex, place_article
from services.detector.scripts import normalise_number, sound_key

NOW = datetime(2025, 10, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("١٬٤٠٠", "1400"),  # Arabic-Indic digits and separator
        ("۱۴۰۰", "1400"),  # Persian
        ("१४००", "1400"),  # Devanagari
        ("১৪০০", "1400"),  # Bengali
        ("๑๔๐๐", "1400"),  # Thai
        ("１４００", "1400"),  # full-width
        ("3万", "30000"),
        ("1.2億", "120000000"),
        ("5억", "500000000"),
    ],
)
def test_numbers_of_every_digit_script_read_as_numbers(raw: str, expected: str) -> None:
    assert normalise_number(raw) == expected


def test_numbers_and_dates_come_out_of_text_written_without_spaces() -> None:
    japanese = anchors_of("2019年10月8日、喬木村の33世帯56人が孤立した。", "ja")
    english = anchors_of("On Oct. 8, 2019, 56 people in 33 households were cut off.", "en")
    for anchor in ("#2019", "#33", "#56", "@10-08"):
        assert anchor in japanese and anchor in english


@pytest.mark.parametrize(
    "spellings",
    [
        ["Putin", "Путин", "Πούτιν", "プーチン", "بوتين", "پوتین", "פוטין", "पुतिन", "পুতিন", "푸틴"],
        ["Trump", "Трамп", "トランプ", "ترامب", "טראמפ", "ट्रंप", "트럼프", "ทรัมป์", "特朗普"],
        ["Kishida", "キシダ", "기시다", "किशिदा", "كيشيدا"],
    ],
)
def test_a_name_has_one_sound_key_in_every_script(spellings: list[str]) -> None:
    assert len({sound_key(spelling) for spelling in spellings}) == 1


def test_japanese_names_written_in_kanji_are_read_as_pronounced() -> None:
    japanese = anchors_of("岸田文雄首相は広島を訪れた。", "ja")
    english = anchors_of("Prime Minister Fumio Kishida visited Hiroshima.", "en")
    assert {"~kst", "~rsn"} <= set(japanese) & set(english)


def test_a_capitalised_word_ends_where_its_script_does() -> None:
    assert "bjp" in anchors_of("インド人民党（BJPの支持者）", "ja")


def test_title_case_words_the_text_writes_in_small_letters_are_no_names() -> None:
    anchors = anchors_of("Bodies Found in Pond.\nThe bodies were found by Sheriff Cassidy.", "en")
    assert "cass" in anchors and "bodi" not in anchors


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("岸田文雄首相は2023年3月20日、ニューデリーでインドのモディ首相と会談した。", "ja"),
        ("التقى رئيس الوزراء الياباني برئيس الوزراء الهندي في نيودلهي يوم الاثنين.", "ar"),
        ("Der japanische Ministerpräsident traf am Montag seinen indischen Amtskollegen.", "de"),
    ],
)
def test_an_article_without_a_language_gets_the_one_its_text_shows(text: str, lang: str) -> None:
    assert fingerprint(ArticleIn("a", "", text, None, "s", "u")).lang == lang


def test_a_declared_language_tag_is_read_as_its_language() -> None:
    assert fingerprint(ArticleIn("a", "t", "Some text.", "en-GB", "s", "u")).lang == "en"


SUMMIT = {
    "en": (
        "Kishida and Modi agree on 5 trillion yen investment",
        "Japanese Prime Minister Fumio Kishida met Indian Prime Minister Narendra Modi in New "
        "Delhi on March 20, 2023. Kishida announced that Japan will invest 5 trillion yen in "
        "India over five years, and the two leaders discussed the Quad and the G7 summit in "
        "Hiroshima. Modi said the partnership with Tokyo was at the heart of India's Act East "
        "policy.",
    ),
    "ja": (
        "岸田首相とモディ首相、5兆円の投資で合意",
        "岸田文雄首相は2023年3月20日、ニューデリーでインドのナレンドラ・モディ首相と会談した。"
        "岸田首相は、日本が今後5年間でインドに5兆円を投資すると表明し、両首脳はクアッドや広島での"
        "G7サミットについて協議した。モディ首相は、東京とのパートナーシップがインドのアクト・"
        "イースト政策の中心にあると述べた。",
    ),
    "ar": (
        "كيشيدا ومودي يتفقان على استثمار 5 تريليونات ين",
        "التقى رئيس الوزراء الياباني فوميو كيشيدا برئيس الوزراء الهندي ناريندرا مودي في نيودلهي "
        "في 20 مارس 2023. وأعلن كيشيدا أن اليابان ستستثمر 5 تريليونات ين في الهند خلال خمس "
        "سنوات، وناقش الزعيمان الحوار الرباعي وقمة مجموعة السبع في هيروشيما. وقال مودي إن "
        "الشراكة مع طوكيو في صميم سياسة الهند للتوجه شرقا.",
    ),
    "hi": (
        "किशिदा और मोदी 5 ट्रिलियन येन के निवेश पर सहमत",
        "जापान के प्रधानमंत्री फुमियो किशिदा ने 20 मार्च 2023 को नई दिल्ली में भारत के प्रधानमंत्री "
        "नरेंद्र मोदी से मुलाकात की। किशिदा ने घोषणा की कि जापान पांच वर्षों में भारत में 5 "
        "ट्रिलियन येन का निवेश करेगा, और दोनों नेताओं ने क्वाड और हिरोशिमा में जी7 शिखर सम्मेलन "
        "पर चर्चा की। मोदी ने कहा कि टोक्यो के साथ साझेदारी भारत की एक्ट ईस्ट नीति के केंद्र में है।",
    ),
    "ko": (
        "기시다·모디, 5조 엔 투자 합의",
        "기시다 후미오 일본 총리는 2023년 3월 20일 뉴델리에서 나렌드라 모디 인도 총리와 "
        "회담했다. 기시다 총리는 일본이 5년간 인도에 5조 엔을 투자하겠다고 밝혔으며, 두 정상은 "
        "쿼드와 히로시마 G7 정상회의에 대해 논의했다. 모디 총리는 도쿄와의 파트너십이 인도 "
        "'액트 이스트' 정책의 핵심이라고 말했다.",
    ),
}
CRICKET = (
    "India beat Australia by six wickets in Mumbai",
    "India beat Australia by six wickets at the Wankhede Stadium in Mumbai on Sunday, with "
    "Virat Kohli scoring 85 not out. Australia's captain Pat Cummins said his side had been "
    "outplayed. India lead the series 2-1 before the final match in Chennai on Wednesday.",
)


@pytest.mark.parametrize("order", [["en", "ja", "ar", "hi", "ko"], ["ja", "ar", "en", "ko", "hi"]])
async def test_one_story_in_five_scripts_without_languages_and_another_on_the_same_country(
    order: list[str],
) -> None:
    index = MemoryStoryIndex()
    cricket = await place_article(index, ArticleIn("cricket", *CRICKET, None, "s", "u"), NOW)
    placements = {
        lang: await place_article(index, ArticleIn(lang, *SUMMIT[lang], None, lang, "u"), NOW)
        for lang in order
    }
    assert len({placement.story_id for placement in placements.values()}) == 1
    assert cricket.story_id != placements["en"].story_id
    assert {placement.reason for placement in placements.values()} == {"new", "translation"}


UNSPACED = {
    "ja": SUMMIT["ja"][1],
    "zh": (
        "日本首相岸田文雄2023年3月20日在新德里与印度总理纳伦德拉·莫迪举行会谈。岸田表示，"
        "日本将在未来五年内向印度投资5万亿日元，两国领导人还讨论了四方安全对话以及在广岛举行的"
        "七国集团峰会。莫迪说，与东京的伙伴关系是印度东向行动政策的核心。分析人士认为，"
        "这笔投资将主要用于高速铁路、港口和清洁能源项目。"
    ),
    "th": (
        "นายกรัฐมนตรีญี่ปุ่น ฟูมิโอะ คิชิดะ พบกับนายกรัฐมนตรีอินเดีย นเรนทรา โมดี ที่กรุงนิวเดลี "
        "เมื่อวันที่ 20 มีนาคม 2566 คิชิดะประกาศว่าญี่ปุ่นจะลงทุน 5 ล้านล้านเยนในอินเดียภายในห้าปี "
        "ผู้นำทั้งสองหารือเรื่องกลุ่มควอดและการประชุมสุดยอดจี 7 ที่ฮิโรชิมะ "
        "โมดีกล่าวว่าความร่วมมือกับโตเกียวเป็นหัวใจของนโยบายมุ่งตะวันออกของอินเดีย"
    ),
}


@pytest.mark.parametrize("lang", sorted(UNSPACED))
async def test_an_edited_copy_is_found_in_scripts_written_without_spaces(lang: str) -> None:
    text = UNSPACED[lang]
    index = MemoryStoryIndex()
    original = await place_article(index, ArticleIn("a", "", text, None, "wire", "u"), NOW)
    edited = "By a staff reporter\n" + text[: len(text) * 2 // 3] + "\nSubscribe to our newsletter."
    copy = await place_article(index, ArticleIn("b", "New headline", edited, None, "s", "u"), NOW)
    assert (copy.story_id, copy.reason) == (original.story_id, "near_duplicate")


async def test_names_alone_carry_a_story_from_english_to_devanagari() -> None:
    def without_figures(lang: str) -> ArticleIn:
        title, text = (re.sub(r"\d+|G7|जी7", "", part) for part in SUMMIT[lang])
        return ArticleIn(lang, title, text, None, lang, "u")

    index = MemoryStoryIndex()
    english = await place_article(index, without_figures("en"), NOW)
    hindi = await place_article(index, without_figures("hi"), NOW)
    assert (hindi.story_id, hindi.reason) == (english.story_id, "translation")
