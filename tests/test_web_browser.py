"""A reader in headless Chromium: subscribe → confirm → preferences → unsubscribe through the real forms.

The server is the real waitress app of test_web (only the clock is fake); the confirmation link comes
from the mail aiosmtpd received. Screenshots of every step land in test-artifacts/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page

from digest import subscriptions as store
from test_web import Web, running

from browser import chromium, offline_page, screenshot

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running_browser:
        yield running_browser


def watched(browser: Browser, width: int = 420) -> tuple[Page, list[str]]:
    """A page, and a list of its console errors and warnings (a CSP violation is one), uncaught errors,
    and the non-local requests it made (aborted)."""
    problems: list[str] = []
    page = offline_page(browser, width, problems)

    def console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return page, problems


def heading(page: Page) -> str:
    return page.locator("h1").inner_text()


def test_a_reader_walks_subscribe_confirm_preferences_unsubscribe(browser: Browser, tmp_path: Path) -> None:
    with running(tmp_path) as web:
        walk(browser, web)


def walk(browser: Browser, web: Web) -> None:
    page, problems = watched(browser)

    # Subscribe: the page's own form, as a person fills it in.
    page.goto(web.url + "subscribe?lang=zh-CN")  # Chromium asks for English; this reader reads Chinese
    assert heading(page) == "订阅Test Site"
    button = page.locator("button[type=submit]")
    # The stylesheet applied under the CSP (style-src 'self'), and the honeypot is out of sight.
    assert button.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(26, 95, 180)"
    honeypot = page.locator("#website").bounding_box()
    assert honeypot is not None and honeypot["x"] < 0
    page.fill("#email", "Reader@Example.com")
    page.fill("#name", "张三")
    page.check("input[name=scope][value=some]")
    page.check("input[name=topics][value=AI]")
    screenshot(page, "web-1-subscribe.png")
    web.clock.advance(seconds=8)  # the time a person takes: the form's signed stamp must be >= 2 s old
    button.click()
    page.wait_for_load_state()
    assert heading(page) == "请查收邮件"
    screenshot(page, "web-2-check-inbox.png")

    # The confirmation mail, received by the SMTP server; opening its link changes nothing.
    web.smtp.wait_for(1)
    [mail] = web.mails()
    assert mail["To"] == "张三 <reader@example.com>"
    page.goto(web.url.rstrip("/") + web.confirm_path(mail))
    assert heading(page) == "确认订阅"
    assert web.active() == []
    screenshot(page, "web-3-confirm.png")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert heading(page) == "订阅成功"
    [active] = store.recipients(web.db)
    assert (active.address, active.name, active.topics) == ("reader@example.com", "张三", {"ai"})
    screenshot(page, "web-4-confirmed.png")

    # Preferences: reached from the confirmation page's link.
    page.click("a[href*='/preferences/']")
    page.wait_for_load_state()
    assert heading(page) == "订阅偏好"
    assert page.locator("input[name=topics][value=AI]").is_checked()
    page.check("input[name=topics][value='算力基础设施与芯片']")
    page.fill("#name", "张三丰")
    page.select_option("#language", "en")
    page.click("button[name=save]")
    page.wait_for_load_state()
    assert page.locator(".notice").inner_text() == "Saved."
    [active] = store.recipients(web.db)
    assert (active.name, active.language, active.topics) == ("张三丰", "en", {"ai", "算力基础设施与芯片"})
    screenshot(page, "web-5-preferences-saved.png")

    # Unsubscribe from the preferences page.
    page.click("button[name=unsubscribe]")
    page.wait_for_load_state()
    assert heading(page) == "Unsubscribed"
    assert store.recipients(web.db) == [] and store.is_suppressed(web.db, "reader@example.com")
    screenshot(page, "web-6-unsubscribed.png")

    events = [(row["event"], row["method"]) for row in web.consent()]
    assert events == [
        ("subscribe-request", ""),
        ("confirm", ""),
        ("preferences", ""),
        ("unsubscribe", "page"),
    ]
    assert problems == []


def test_the_unsubscribe_page_button_and_the_english_pages(browser: Browser, tmp_path: Path) -> None:
    with running(tmp_path, language="en") as web:
        web.subscribe("reader@example.com")
        web.smtp.wait_for(1)
        web.post(web.confirm_path(web.mails()[0]))
        unsubscribe, _ = web.tokens("reader@example.com")
        page, problems = watched(browser, 375)
        page.goto(web.url + "subscribe")
        assert heading(page) == "Subscribe to Test Site"
        screenshot(page, "web-en-subscribe-375.png")
        page.goto(web.url.rstrip("/") + unsubscribe)
        assert heading(page) == "Unsubscribe"
        screenshot(page, "web-en-unsubscribe.png")
        assert web.active() == ["reader@example.com"]
        page.click("button[type=submit]")
        page.wait_for_load_state()
        assert heading(page) == "Unsubscribed"
        assert web.active() == []
        assert problems == []
