"""The stories page in a real headless Chromium (Debian's `chromium` and `chromium-driver`),
served by `newsmon up` on the sample site. Screenshots at desktop and phone widths are
written to .newsmon/screenshots/."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import PUSH_TOKENS, READ_TOKEN, REPO, SeededNewsmon

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(
        "Chromium or ChromeDriver is absent (Debian packages chromium and chromium-driver;"
        " .ci/run installs them)",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

SCREENSHOTS = REPO / ".newsmon" / "screenshots"
DESKTOP = (1280, 900)
PHONE = (390, 844)
NEW_PAGE = Path(__file__).parent / "pages" / "new-story.html"
NEW_TITLE = "Harbour city opens tidal power plant"


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument("--lang=en-US")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_window_size(*DESKTOP)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def signed_in(browser: WebDriver, seeded: SeededNewsmon) -> WebDriver:
    browser.get(f"{seeded.base_url}/ui")
    assert browser.current_url.endswith("/ui/login")  # readers sign in first
    browser.find_element(By.ID, "token").send_keys(READ_TOKEN)
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "li.story"))
    return browser


def _stories(browser: WebDriver) -> dict[str, list[str]]:
    """Titles of the listed stories -> their language badges."""
    return {
        row.find_element(By.CSS_SELECTOR, ".story-title").text: [
            badge.text.lower() for badge in row.find_elements(By.CSS_SELECTOR, ".lang")
        ]
        for row in browser.find_elements(By.CSS_SELECTOR, "li.story")
    }


def _screenshot(browser: WebDriver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        browser.set_window_size(*size)
        browser.save_screenshot(str(SCREENSHOTS / f"{name}-{label}.png"))
    browser.set_window_size(*DESKTOP)


def test_the_page_lists_the_seed_stories_with_their_languages(
    signed_in: WebDriver, seeded: SeededNewsmon
) -> None:
    stories = _stories(signed_in)
    assert sorted(len(langs) for langs in stories.values()) == [1, 1, 3]
    assert sorted(next(langs for langs in stories.values() if len(langs) == 3)) == [
        "fr",
        "it",
        "pt",
    ]
    _screenshot(signed_in, "stories")


def test_a_story_shows_its_versions_side_by_side_by_language(
    signed_in: WebDriver, seeded: SeededNewsmon
) -> None:
    signed_in.get(f"{seeded.base_url}/ui")
    row = next(
        r
        for r in signed_in.find_elements(By.CSS_SELECTOR, "li.story")
        if len(r.find_elements(By.CSS_SELECTOR, ".lang")) == 3
    )
    row.find_element(By.CSS_SELECTOR, ".story-title a").click()
    WebDriverWait(signed_in, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".version"))
    versions = signed_in.find_elements(By.CSS_SELECTOR, "section.version")
    assert len(versions) == 3
    langs = [v.find_element(By.CSS_SELECTOR, "article").get_attribute("lang") for v in versions]
    assert sorted(langs) == ["fr", "it", "pt"]
    assert len(signed_in.find_elements(By.CSS_SELECTOR, ".reason-translation")) == 2
    _screenshot(signed_in, "story")


def test_the_alerts_of_a_topic_are_listed(signed_in: WebDriver, seeded: SeededNewsmon) -> None:
    signed_in.get(f"{seeded.base_url}/ui/alerts")
    signed_in.find_element(By.LINK_TEXT, "OpenAI").click()
    WebDriverWait(signed_in, 20).until(lambda d: "topic=OpenAI" in d.current_url)
    alerts = signed_in.find_elements(By.CSS_SELECTOR, "li.alert")
    assert len(alerts) == 3
    assert all("OpenAI" in a.find_element(By.CSS_SELECTOR, ".terms").text for a in alerts)
    _screenshot(signed_in, "alerts")


def test_a_new_story_appears_without_a_reload(signed_in: WebDriver, seeded: SeededNewsmon) -> None:
    signed_in.get(f"{seeded.base_url}/ui")
    WebDriverWait(signed_in, 20).until(
        lambda d: "Live" in d.find_element(By.ID, "live-status").text
    )
    signed_in.execute_script("window.notReloaded = true;")
    response = httpx.post(
        f"{seeded.base_url}/ingest",
        headers={"Authorization": f"Bearer {PUSH_TOKENS['coastal-daily']}"},
        json={
            "url": "https://coastal-daily.example/energy/tidal-plant",
            "html": NEW_PAGE.read_text(encoding="utf-8"),
        },
        timeout=30,
    )
    assert response.status_code == 202, response.text
    WebDriverWait(signed_in, 90).until(
        lambda d: any(NEW_TITLE in title for title in _stories(d)), "the new story never showed"
    )
    assert signed_in.execute_script("return window.notReloaded === true;")
    first = signed_in.find_element(By.CSS_SELECTOR, "li.story .story-title").text
    assert NEW_TITLE in first
    assert NEW_TITLE in signed_in.find_element(By.ID, "live-status").text
    row = signed_in.find_element(By.CSS_SELECTOR, "li.story .outlets").text
    assert row == "coastal-daily"  # the publisher that pushed it
    _screenshot(signed_in, "stories-live")
