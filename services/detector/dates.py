"""Dates written in words, read the same in every language: "5 March", "March 5",
"5 mars", "5. März", "5 de marzo", "5 марта", "március 5.", and the CJK "3月5日" and "3월 5일"
all give the anchor "@03-05".

Month and weekday names are also what English and German capitalise and other languages do
not, so they are kept out of the name anchors: otherwise "March" would be evidence that an
English article and its French translation ("mars") differ.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable

_MONTH_NAMES: tuple[tuple[str, ...], ...] = (
    # en (and its abbreviations), fr, de, nl, es, it, pt, cs (nominative, genitive), pl (both),
    # hu, ru (both)
    (
        "january", "jan", "janvier", "januar", "jänner", "januari", "enero", "gennaio", "janeiro",
        "leden", "ledna", "styczeń", "stycznia", "január", "январь", "января",
    ),
    (
        "february", "feb", "février", "februar", "februari", "febrero", "febbraio", "fevereiro",
        "únor", "února", "luty", "lutego", "február", "февраль", "февраля",
    ),
    (
        "march", "mar", "mars", "märz", "maart", "marzo", "março", "březen", "března", "marzec",
        "marca", "március", "март", "марта",
    ),
    (
        "april", "apr", "avril", "abril", "aprile", "duben", "dubna", "kwiecień", "kwietnia",
        "április", "апрель", "апреля",
    ),
    (
        "may", "mai", "mei", "mayo", "maggio", "maio", "květen", "května", "maj", "maja",
        "május", "май", "мая",
    ),
    (
        "june", "juin", "juni", "junio", "giugno", "junho", "červen", "června", "czerwiec",
        "czerwca", "június", "июнь", "июня",
    ),
    (
        "july", "juillet", "juli", "julio", "luglio", "julho", "červenec", "července",
        "lipiec", "lipca", "július", "июль", "июля",
    ),
    (
        "august", "aug", "août", "augustus", "agosto", "srpen", "srpna", "sierpień", "sierpnia",
        "augusztus", "август", "августа",
    ),
    (
        "september", "sep", "sept", "septembre", "septiembre", "setiembre", "settembre",
        "setembro", "září", "wrzesień", "września", "szeptember", "сентябрь", "сентября",
    ),
    (
        "october", "oct", "octobre", "oktober", "octubre", "ottobre", "outubro", "říjen", "října",
        "październik", "października", "október", "октябрь", "октября",
    ),
    (
        "november", "nov", "novembre", "noviembre", "novembro", "listopad", "listopadu",
        "listopada", "ноябрь", "ноября",
    ),
    (
        "december", "dec", "décembre", "dezember", "diciembre", "dicembre", "dezembro", "prosinec",
        "prosince", "grudzień", "grudnia", "декабрь", "декабря",
    ),
)  # fmt: skip
"""Month names, January first, in the languages newsmon sees most (accents as written)."""

_WEEKDAY_NAMES = (
    "monday tuesday wednesday thursday friday saturday sunday "
    "montag dienstag mittwoch donnerstag freitag samstag sonnabend sonntag "
    "maandag dinsdag woensdag donderdag vrijdag zaterdag zondag"
)
"""Weekdays in the languages that capitalise them (the others write them in lower case)."""

_VERBS_UNLESS_CAPITALISED = frozenset({"may", "march"})
"""English month names that are also verbs: "it may 3 times" is no date."""

_DIGITS = re.compile(r"\d\d*")
"""Runs of digits (written to start with a character class: `re` skips ahead to digits)."""
_NUMERIC_DATE = re.compile(r"(\d{1,2})\s?[月월]\s?(\d{1,2})\s?[日일]")
"""Month and day written with the CJK calendar characters: 10月8日, 10월 8일."""
_NUMBER_JOINERS = ".,:"
"""Characters that make digits around them one number: a decimal, a time, 1.400."""
_WORD_AFTER = re.compile(r"\.?[\s\u00a0]+(?:de[\s\u00a0]+)?([^\W\d_]{3,})")
_WORD_BEFORE = re.compile(r"([^\W\d_]{3,})\.?[\s\u00a0]+$")
_LOOK_BEHIND = 24
"""Characters read before a day number for its month name, enough for the longest."""


class Calendar:
    """Month and weekday names folded as the detector folds words (`fold`), so accents,
    case and script do not matter."""

    def __init__(self, fold: Callable[[str], str]) -> None:
        self._fold = fold
        self.months: dict[str, int] = {
            fold(name): number
            for number, names in enumerate(_MONTH_NAMES, start=1)
            for name in names
        }
        self.names: frozenset[str] = frozenset(self.months) | {
            fold(name) for name in _WEEKDAY_NAMES.split()
        }

    def is_calendar_word(self, folded_word: str) -> bool:
        """True for a month or weekday name (already folded)."""
        return folded_word in self.names

    def dates_of(self, text: str) -> Counter[str]:
        """Day-and-month dates in `text` as "@MM-DD" anchors, with counts."""
        found: Counter[str] = Counter()
        for day, word in _pairs(text):
            if word in _VERBS_UNLESS_CAPITALISED:
                continue
            month = self.months.get(self._fold(word))
            if month is not None and 1 <= int(day) <= 31:
                found[f"@{month:02d}-{int(day):02d}"] += 1
        if "月" in text or "월" in text:  # else no match: skip _NUMERIC_DATE's slow scan
            for month_digits, day_digits in _NUMERIC_DATE.findall(text):
                number, day_number = int(month_digits), int(day_digits)
                if 1 <= number <= 12 and 1 <= day_number <= 31:
                    found[f"@{number:02d}-{day_number:02d}"] += 1
        return found


def _pairs(text: str) -> Iterable[tuple[str, str]]:
    """(day, word) for every number of one or two digits next to a word, either order. The
    numbers are found first (a few per article), then the words on each side."""
    for digits in _DIGITS.finditer(text):
        start, end = digits.span()
        if end - start > 2 or _in_number(text, start, end) or _in_word(text, start, end):
            continue
        day = digits.group()
        after = _WORD_AFTER.match(text, end)
        if after is not None:
            yield day, after.group(1)
        before = _WORD_BEFORE.search(text, max(0, start - _LOOK_BEHIND), start)
        if before is not None:
            yield day, before.group(1)


def _in_number(text: str, start: int, end: int) -> bool:
    """True when the digits at text[start:end] continue a number: "3.5", "12:30", "1,4"."""
    before = text[start - 2 : start] if start >= 2 else ""
    after = text[end : end + 2]
    return (len(before) == 2 and before[1] in _NUMBER_JOINERS and before[0].isdigit()) or (
        len(after) == 2 and after[0] in _NUMBER_JOINERS and after[1].isdigit()
    )


def _in_word(text: str, start: int, end: int) -> bool:
    """True when the digits are glued to letters ("F16", "5G"): a name, not a day."""
    return (start > 0 and text[start - 1].isalpha()) or (end < len(text) and text[end].isalpha())
