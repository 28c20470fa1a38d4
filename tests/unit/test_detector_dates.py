"""Dates in words are one anchor in every language; month names are not name anchors."""

from __future__ import annotations

import pytest

from services.detector.core import anchors_of

SAME_DATE = [
    "On March 5, 2024, the court ruled.",
    "On 5 March 2024 the court ruled.",
    "Le 5 mars 2024, le tribunal a tranché.",
    "Am 5. März 2024 entschied das Gericht.",
    "El 5 de marzo de 2024 el tribunal decidió.",
    "Il 5 marzo 2024 il tribunale ha deciso.",
    "Em 5 de março de 2024 o tribunal decidiu.",
    "Dne 5. března 2024 soud rozhodl.",
    "5 марта 2024 года суд вынес решение.",
    "A bíróság 2024. március 5-én döntött.",
]


@pytest.mark.parametrize("text", SAME_DATE)
def test_a_date_in_words_gives_one_anchor_in_every_language(text: str) -> None:
    anchors = anchors_of(text)
    assert anchors["@03-05"] == 1
    assert anchors["#2024"] == 1


def test_translations_share_every_date_anchor_and_no_month_name() -> None:
    english = anchors_of("The board met on Monday, May 12, and in June, said Apple.")
    french = anchors_of("Le conseil s'est réuni lundi 12 mai, puis en juin, selon Apple.")
    assert "@05-12" in english and "@05-12" in french
    assert set(english) == set(french) == {"#12", "@05-12", "appl", "~pr"}


@pytest.mark.parametrize(
    "text",
    [
        "Prices may 3 times exceed the cap.",  # "may" the verb
        "They march 5 miles a day.",
        "Route 66 runs 40 miles.",  # a word and a number, no month
        "In March 45 people were hired.",  # no day 45
    ],
)
def test_words_that_only_look_like_dates_give_no_date_anchor(text: str) -> None:
    assert not [anchor for anchor in anchors_of(text) if anchor.startswith("@")]
