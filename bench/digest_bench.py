"""`make bench`'s digest row: render + inline + build the message of a 30-article digest."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from pathlib import Path

from digest.config import load_config
from digest.content import collect
from digest.message import build_message, make_message_id
from digest.selection import select_digest
from digest.templating import render_digest

PROJECT = Path(__file__).resolve().parent.parent  # bench/ is in the repository root
NOW = dt.datetime(2025, 6, 30, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
TOPICS = [
    "产业生态与商业版图",
    "投融资与市场洞察",
    "前沿模型与算法",
    "开发者工具与开源生态",
    "政策监管与伦理治理",
]


def _week(work: Path, count: int) -> Path:
    """A site with `count` articles in the week before NOW: the seed plus Chinese articles like it."""
    site = work / "digest-bench"
    shutil.rmtree(site, ignore_errors=True)
    content = site / "content"
    content.mkdir(parents=True)
    shutil.copy(PROJECT / "seeds" / "000_040d16bb7ab5a125.txt", content)
    summary = "开源权重让企业第一次拥有了与大模型实验室讨价还价的筹码，本文梳理了工具链的变化。" * 3
    for n in range(count - 1):
        topics = ", ".join(f'"{TOPICS[(n + k) % 5]}"' for k in (0, 2))
        (content / f"a{n:03d}.md").write_text(
            f"---\ntitle: 第{n}篇：大模型时代的产业观察与长期思考\n"
            f"date: 2025-06-{24 + n % 6:02d}T{8 + n % 10:02d}:{n:02d}:00+08:00\n"
            f"summary: {summary}\nfeatured_image: /images/{n}.jpg\nmain_topics: [{topics}]\n---\n\n"
            + "正文。" * 50
            + "\n",
            encoding="utf-8",
        )
    config = (PROJECT / "config.toml").read_text(encoding="utf-8")
    config = config.replace('dir = "seeds"', 'dir = "content"')
    (site / "config.toml").write_text(config, encoding="utf-8")
    return site / "config.toml"


def thirty_article_digest(
    work: Path, timed: Callable[[Callable[[], object], int], float]
) -> tuple[float, str]:
    config = load_config(_week(work, 30))
    digest = select_digest(collect(config).articles, config, NOW)
    assert digest is not None and digest.count == 30, "the bench week should hold 30 articles"

    def once() -> bytes:
        rendered = render_digest(digest, config)
        to = "reader@example.org"
        return build_message(
            rendered, config, to=to, message_id=make_message_id(digest.period, to, config), date=NOW
        )

    once()  # warm: imports, template compilation, premailer's parsed stylesheet
    seconds = timed(once, 5)
    rendered = render_digest(digest, config)
    per_message = timed(
        lambda: build_message(rendered, config, to="r@example.org", message_id="<b@example.com>", date=NOW),
        50,
    )
    detail = (
        f"HTML {rendered.encoded_html_bytes / 1000:.1f} KB encoded "
        f"of {config.digest.max_bytes / 1000:.0f} KB, "
        f"{len(rendered.digest.overflow) if rendered.digest else 0} moved to 'and N more'; "
        f"build_message alone {per_message * 1000:.2f} ms/recipient"
    )
    return seconds, detail
