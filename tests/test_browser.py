"""The digest in a real browser: headless Chromium at email widths, offline, with screenshots.

Screenshots land in test-artifacts/ at the repository root (gitignored) for a person to look at.
"""

from __future__ import annotations

import queue
import shutil
import threading
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from digest.message import fill_recipient
from digest.preview import PreviewServer, serve
from digest.templating import render_digest
from test_compose import SEED, at, configured
from test_message import UTM, digest_of

from browser import chromium, offline_page, overflow_x, screenshot
from conftest import NOW, Site, article_text

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


def a_full_week(site: Site) -> None:
    """The seed article and a realistic week around it: long titles, long words, labels, no image."""
    shutil.copy(SEED, site.content)
    site.add(
        "open-weights.md",
        article_text(
            "开源权重改变了什么：从 Llama 到 Qwen 的开发者生态",
            at(27),
            summary="开源权重让企业第一次拥有了与大模型实验室讨价还价的筹码。本文梳理了开发者工具链、许可证与部署成本的变化。",
            main_topics=["开发者工具与开源生态", "前沿模型与算法"],
            featured_image="/images/open-weights.png",
        ),
    )
    site.add(
        "chips.md",
        article_text(
            "出口管制新规下的算力版图",
            at(26),
            body="新规收紧了高端 GPU 的出口许可。" * 6,
            main_topics=["政策监管与伦理治理", "算力基础设施与芯片"],
        ),
    )
    site.add(
        "url.md",
        article_text(
            "Supercalifragilisticexpialidocious-agentic-orchestration-frameworks-compared",
            at(28),
            summary="https://example.com/a/very/long/unbroken/link/" + "x" * 120,
            main_topics=["Agents"],
            featured_image="https://cdn.example.net/agents.jpg",
        ),
    )
    site.add("loose.md", article_text("一篇没有主题的随笔", at(29), summary="周末随笔。"))


@pytest.mark.parametrize("width", [600, 375])
def test_the_digest_fits_email_widths_without_horizontal_scrolling(
    browser: Browser, site: Site, width: int
) -> None:
    a_full_week(site)
    config = configured(site, utm=UTM)
    html = fill_recipient(render_digest(digest_of(config), config).html, "reader@example.org")
    blocked: list[str] = []
    page = offline_page(browser, width, blocked)
    page.set_content(html, wait_until="load")
    scroll_width, inner_width = overflow_x(page)
    path = screenshot(page, f"digest-{width}.png")
    assert inner_width == width
    assert scroll_width <= inner_width, f"horizontal scrolling at {width}px: {scroll_width}px wide ({path})"
    # The email asked for its images, and the browser got none of them: nothing left this machine.
    assert any("example.com/newsimages/" in url for url in blocked)
    assert any("cdn.example.net" in url for url in blocked)
    # At phone width the @media rules (with !important) beat the inlined 600 px.
    container = page.evaluate("document.querySelector('.container').getBoundingClientRect().width")
    assert container <= width
    assert page.locator("h3.article-title").count() == 5
    assert path.stat().st_size > 10_000


def test_the_preview_page_in_a_browser(browser: Browser, site: Site) -> None:
    a_full_week(site)
    ready: queue.Queue[PreviewServer] = queue.Queue()
    thread = threading.Thread(
        target=serve, args=(site.config_path, 0, NOW), kwargs={"on_ready": ready.put}, daemon=True
    )
    thread.start()
    server = ready.get(timeout=30)
    try:
        page = offline_page(browser, 1000)
        page.goto(server.url, wait_until="load")
        frame = page.frame_locator("#email")
        assert frame.locator("h3.article-title").count() == 5
        warnings_box = page.locator("#warnings").bounding_box()
        email_box = page.locator("#email").bounding_box()
        assert warnings_box is not None and email_box is not None
        assert warnings_box["y"] + warnings_box["height"] <= email_box["y"]  # above the email, outside it
        assert "no featured image" in page.locator("#warnings").inner_text()
        page.locator("button[data-width='375']").click()
        page.wait_for_function("document.getElementById('email').style.width === '375px'")
        screenshot(page, "preview.png")
    finally:
        server.shutdown()
        thread.join(timeout=10)
