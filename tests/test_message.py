"""The digest as an email: templates, inlined CSS, the text part, the size budget, the MIME message."""

from __future__ import annotations

import dataclasses
import email
import importlib.resources
import re
import shutil
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

import pytest

from digest.config import Config
from digest.errors import DigestError
from digest.jinja import template_folders
from digest.message import build_message, fill_recipient, make_message_id, recipient_header
from digest.selection import Digest, select_digest
from digest.templating import (
    RenderedDigest,
    archive_files,
    encoded_size,
    links,
    render_digest,
)
from test_compose import SEED, SEED_TITLE, articles, at, configured

from conftest import NOW, PROJECT, Site, article_text

READER = "reader+news@example.org"
UTM = {"utm_source": "digest", "utm_medium": "email"}


def digest_of(config: Config) -> Digest:
    digest = select_digest(articles(config), config, NOW)
    assert digest is not None
    return digest


def seed_site(site: Site) -> Config:
    shutil.copy(SEED, site.content)
    site.add(
        "open-weights.md",
        article_text(
            "开源权重改变了什么",
            at(27),
            summary="开源权重让企业第一次拥有了讨价还价的筹码。",
            main_topics=["开发者工具与开源生态"],
            featured_image="images/cover.png",
        ),
    )
    return configured(site, utm=UTM)


def message_for(rendered: RenderedDigest, config: Config, to: str = READER, name: str = "读者") -> bytes:
    period = rendered.digest.period if rendered.digest else "2025-W27"
    return build_message(
        rendered, config, to=to, to_name=name, message_id=make_message_id(period, to, config), date=NOW
    )


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(message: EmailMessage) -> tuple[str, str]:
    assert message.get_content_type() == "multipart/alternative"
    plain, html = list(message.iter_parts())
    assert plain.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    return plain.get_content(), html.get_content()


def html_part_body(raw: bytes) -> bytes:
    """The HTML part's encoded body exactly as it travels."""
    start = raw.index(b"\r\n\r\n", raw.index(b"Content-Type: text/html")) + 4
    return raw[start : raw.index(b"\r\n--", start)]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def without_conditional_comments(html: str) -> str:
    return re.sub(r"<!--\[if mso\]>.*?<!\[endif\]-->", "", html, flags=re.S)


# ---------------------------------------------------------------- templates and inlining


def test_content_is_escaped_by_jinja(site: Site) -> None:
    site.add(
        "evil.md",
        article_text(
            "<script>alert(1)</script>",
            at(27),
            summary="'<img src=x onerror=alert(2)> & <b>bold</b>'",
            main_topics=["<i>topic</i>"],
        ),
    )
    rendered = render_digest(digest_of(configured(site)), configured(site))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert "&lt;img src=x onerror=alert(2)&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in rendered.html
    assert "&lt;i&gt;topic&lt;/i&gt;" in rendered.html
    found = tags(rendered.html)
    assert not [t for t, _ in found if t in ("script", "b", "i")]
    assert not [a for t, a in found if t == "img" and "onerror" in a]
    # The text part is not HTML: the same characters appear as they are.
    assert "<script>alert(1)</script>" in rendered.text
    assert "<img src=x onerror=alert(2)> & <b>bold</b>" in rendered.text


def test_css_is_inlined_and_media_rules_keep_important(site: Site) -> None:
    config = seed_site(site)
    html = render_digest(digest_of(config), config).html
    found = tags(html)
    styled = {a.get("class"): a.get("style") or "" for _, a in found if a.get("class")}
    assert "width:600px" in styled["container"]
    assert "font-size:19px" in styled["article-title"]
    assert "display:none" in styled["preheader"]
    assert "border-radius" in styled["label"]
    # One <style> block (outside Outlook's conditional comment), holding the @media rules with !important.
    blocks = re.findall(r"<style[^>]*>(.*?)</style>", without_conditional_comments(html), flags=re.S)
    assert len(blocks) == 1
    media = blocks[0][blocks[0].index("@media (max-width: 620px)") :]
    assert ".container { width: 100% !important;" in media
    assert media.count("!important") >= 10
    # Outlook's wrapper and the hidden preheader are there.
    assert '<!--[if mso]><table role="presentation" width="600"' in html
    assert "本期 2 篇：" in html


def test_every_link_is_absolute_except_anchors_and_mailto(site: Site) -> None:
    config = seed_site(site)
    rendered = render_digest(digest_of(config), config)
    urls = links(rendered.html)
    assert len(urls) > 8
    for url in urls:
        assert url.startswith(("https://", "#", "mailto:")), url
    anchors = {url[1:] for url in urls if url.startswith("#")}
    ids = {a["id"] for _, a in tags(rendered.html) if a.get("id")}
    assert anchors and anchors <= ids  # every TOC link has its target
    # The relative featured image resolved against the article's permalink.
    assert "https://example.com/posts/open-weights/images/cover.png" in urls
    assert not [w for w in rendered.warnings if "relative" in w]


def test_images_have_size_and_alt_and_dates_are_localized(site: Site) -> None:
    config = seed_site(site)
    html = render_digest(digest_of(config), config).html
    [image] = [a for t, a in tags(html) if t == "img" and "selected_image" in (a.get("src") or "")]
    assert image["width"] == "536" and image["height"] == "302"
    assert image["alt"] == SEED_TITLE
    assert "2025年6月25日" in html
    english = dataclasses.replace(config, site=dataclasses.replace(config.site, language="en"))
    assert "June 25, 2025" in render_digest(digest_of(english), english).html


def test_utm_on_site_links_only_once(site: Site) -> None:
    config = seed_site(site)
    rendered = render_digest(digest_of(config), config)
    checked = {"article": 0, "untracked": 0}
    for tag, attributes in tags(rendered.html):
        url = attributes.get("href") or attributes.get("src") or ""
        if tag == "a" and "/posts/" in url:
            assert url.count("utm_source=digest") == 1, url
            checked["article"] += 1
        if tag == "img" or "unsubscribe" in url or "preferences" in url:
            assert "utm_" not in url, url
            checked["untracked"] += 1
    # Both kinds of link are there, so the checks above ran.
    assert checked["article"] >= 4 and checked["untracked"] >= 2, checked
    assert (
        "https://example.com/posts/000_040d16bb7ab5a125/?utm_source=digest&utm_medium=email" in rendered.text
    )


def test_plain_text_has_every_title_summary_and_url(site: Site) -> None:
    config = seed_site(site)
    site.add("long.md", article_text("长摘要", at(28), summary="很长的句子" * 400))  # 2000 characters
    config = configured(site, utm=UTM)
    digest = digest_of(config)
    text = render_digest(digest, config).text
    for item in digest.items:
        assert item.article.title in text
        assert item.article.url + "?utm_source=digest&utm_medium=email" in text
        if len(item.summary) < 300:
            assert item.summary in text
    assert "很长的句子" * 400 in text.replace("\n", "")  # cut into lines, nothing lost
    assert max(len(line.encode("utf-8")) for line in text.splitlines()) <= 998
    assert "== 产业生态与商业版图 ==" in text


def test_custom_templates_folder_overrides_one_file(site: Site, tmp_path: Path) -> None:
    config = seed_site(site)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "digest.txt.j2").write_text("Custom {{ period }} {{ groups|length }} & <b>\n", encoding="utf-8")
    custom = dataclasses.replace(config, digest=dataclasses.replace(config.digest, templates=mine))
    rendered = render_digest(digest_of(custom), custom)
    assert rendered.text == "Custom 2025-W27 2 & <b>\n"  # text templates are not HTML-escaped
    assert "<table" in rendered.html  # the HTML template falls back to the project's


def test_the_shipped_templates_are_package_data(site: Site) -> None:
    """`src/digest/templates` is a symlink to the repository's templates/ (the editors' copy): the
    package finds them through importlib.resources in a checkout, and pyproject's package-data copies
    them into a wheel as files."""
    shipped = importlib.resources.files("digest") / "templates"
    for name in ("digest.html.j2", "digest.txt.j2", "digest.css", "archive_index.html.j2"):
        assert (shipped / name).is_file(), name
    assert Path(str(shipped)).resolve() == (PROJECT / "templates").resolve()
    # A site without a templates/ folder of its own renders with the shipped ones, looked up once.
    config = seed_site(site)
    assert template_folders(config) == [(PROJECT / "templates").resolve()]


def test_template_mistakes_are_one_clear_error(site: Site, tmp_path: Path) -> None:
    config = seed_site(site)
    (tmp_path / "digest.txt.j2").write_text("{{ period }}\n\n{{ no_such_thing }}\n", encoding="utf-8")
    custom = dataclasses.replace(config, digest=dataclasses.replace(config.digest, templates=tmp_path))
    with pytest.raises(DigestError) as raised:
        render_digest(digest_of(custom), custom)
    where = tmp_path / "digest.txt.j2"
    assert (
        str(raised.value)
        == f"{where}:3: template error: 'no_such_thing' is undefined (see [digest] templates)"
    )
    (tmp_path / "digest.txt.j2").write_text("{% if %}\n", encoding="utf-8")
    with pytest.raises(DigestError, match=r"digest.txt.j2:1: template error: "):
        render_digest(digest_of(custom), custom)
    missing = dataclasses.replace(config, digest=dataclasses.replace(config.digest, templates=tmp_path / "x"))
    with pytest.raises(DigestError, match="templates folder not found"):
        render_digest(digest_of(missing), missing)


def test_css_warnings_go_to_our_log_not_stderr(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = seed_site(site)
    shutil.copy(PROJECT / "templates" / "digest.css", tmp_path / "digest.css")
    with (tmp_path / "digest.css").open("a", encoding="utf-8") as css:
        css.write("\n.broken { color: ; }\n")
    (tmp_path / "digest.txt.j2").write_text('<a href="/about">x</a>\n', encoding="utf-8")
    custom = dataclasses.replace(config, digest=dataclasses.replace(config.digest, templates=tmp_path))
    rendered = render_digest(digest_of(custom), custom)
    assert any(w.startswith("CSS: ") for w in rendered.warnings), rendered.warnings
    assert capsys.readouterr().err == ""


def test_relative_links_in_templates_are_reported(site: Site, tmp_path: Path) -> None:
    config = seed_site(site)
    source = (PROJECT / "templates" / "digest.html.j2").read_text(encoding="utf-8")
    (tmp_path / "digest.html.j2").write_text(source.replace("</body>", '<a href="/about">about</a></body>'))
    custom = dataclasses.replace(config, digest=dataclasses.replace(config.digest, templates=tmp_path))
    assert "relative link in the digest: /about" in render_digest(digest_of(custom), custom).warnings


# ---------------------------------------------------------------- the message


def test_message_headers_and_parts(site: Site) -> None:
    config = seed_site(site)
    rendered = render_digest(digest_of(config), config)
    raw = message_for(rendered, config)
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    message = parse(raw)
    assert message["From"] == "Test Site <digest@example.com>"
    assert message["To"] == f"读者 <{READER}>"
    assert message["Subject"] == "Test Site 周报 2025-W27"
    assert "=?utf-8?" in raw.split(b"\r\nSubject: ")[1].split(b"\r\n")[0].decode()  # encoded on the wire
    assert message["Date"] == "Mon, 30 Jun 2025 08:00:00 +0800"
    assert re.fullmatch(r"<2025-W27\.[0-9a-f]{24}@example\.com>", message["Message-ID"])
    assert message["List-Id"] == "<test-site.example.com>"
    assert message["List-Unsubscribe"].strip() == (
        "<https://example.com/unsubscribe?email=reader%2Bnews%40example.org>, "
        "<mailto:digest@example.com?subject=unsubscribe>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["MIME-Version"] == "1.0"
    plain, html = parts(message)
    _, html_part = message.iter_parts()
    assert html_part["Content-Transfer-Encoding"] == "base64"
    assert html_part.get_content_charset() == "utf-8"
    # The same Chinese text comes back out of both parts.
    for text in (SEED_TITLE, "曾几何时被寄予厚望的Kimi", "开源权重让企业第一次拥有了讨价还价的筹码。"):
        assert text in plain and text in html
    # Each recipient's own links, filled in after inlining; no placeholder left.
    assert "https://example.com/unsubscribe?email=reader%2Bnews%40example.org" in html
    assert "https://example.com/preferences?email=reader%2Bnews%40example.org" in plain
    assert "x-digest-recipient" not in html + plain


# Written as they are, never through the email package's folding (see test_list_unsubscribe_is_plain_ascii).
STRUCTURED = ("Message-ID", "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post")


def header_lines(raw: bytes) -> dict[str, bytes]:
    """Each header of the message exactly as it travels, folded lines included (CRLF-ended)."""
    block = raw[: raw.index(b"\r\n\r\n") + 2]
    return {
        m.group(1).decode("ascii"): m.group(0)
        for m in re.finditer(rb"^([!-9;-~]+):.*?\r\n(?:[ \t].*?\r\n)*", block, flags=re.M)
    }


def email_package_reference(raw: bytes, rendered: RenderedDigest, to: str) -> bytes:
    """The same message built by the email package alone (slow: it writes bodies line by line); the
    STRUCTURED headers, which the email package would encode, are copied from `raw` as they are."""
    parsed = parse(raw)
    reference = EmailMessage(policy=policy.SMTP)
    for name in ("From", "To", "Subject", "Date", "MIME-Version"):
        if parsed[name] is not None:
            reference[name] = str(parsed[name]).strip()
    plain, _ = parsed.iter_parts()
    reference.set_content(fill_recipient(rendered.text, to), subtype="plain", charset="utf-8",
                          cte=plain["Content-Transfer-Encoding"])  # fmt: skip
    reference.add_alternative(
        fill_recipient(rendered.html, to), subtype="html", charset="utf-8", cte="base64"
    )
    boundary = parsed.get_boundary()
    assert boundary is not None
    reference.set_boundary(boundary)
    _, html = reference.iter_parts()
    del html["MIME-Version"]  # the email package repeats it in an added part; only the top needs it
    built = reference.as_bytes(policy=policy.SMTP)
    ours = header_lines(raw)
    structured = b"".join(ours[name] for name in STRUCTURED if name in ours)
    return built.replace(b"\r\nMIME-Version: ", b"\r\n" + structured + b"MIME-Version: ", 1)


@pytest.mark.parametrize("ascii_text", [False, True])
def test_matches_the_email_package(site: Site, tmp_path: Path, ascii_text: bool) -> None:
    config = seed_site(site)
    if ascii_text:  # an all-ASCII text part goes as 7bit, the HTML still as base64
        (tmp_path / "digest.txt.j2").write_text(
            "{{ period }}\n{{ links.unsubscribe }}\n" + "x" * 900 + "\n", encoding="utf-8"
        )
        config = dataclasses.replace(config, digest=dataclasses.replace(config.digest, templates=tmp_path))
    rendered = render_digest(digest_of(config), config)
    for to, name in (("reader+news@example.org", "读者"), ("x@example.org", "")):
        raw = message_for(rendered, config, to=to, name=name)
        assert raw == email_package_reference(raw, rendered, to)
        cte = b"7bit" if ascii_text else b"base64"
        assert b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: ' + cte in raw
    # A line that a long address could push past 998 octets is never sent as 7bit.
    (tmp_path / "digest.txt.j2").write_text("{{ links.unsubscribe }}" + "x" * 900 + "\n", encoding="utf-8")
    long_line = dataclasses.replace(config, digest=dataclasses.replace(config.digest, templates=tmp_path))
    raw = message_for(render_digest(digest_of(long_line), long_line), long_line)
    assert b'charset="utf-8"\r\nContent-Transfer-Encoding: 7bit' not in raw


NAMES = ["", "读者", "读者12345", "张三", "Reader 1", "O'Brien", "Zoë", "Ünïcödé", "王" * 15, "王" * 16,
         "Wang, Wu", "Dr. Who", "José García", "张 三", "读者 1", 'x"y', "=?utf-8?q?a?=", "a" * 80,
         "😀"]  # fmt: skip
ADDRESSES = ["r@example.org", READER, "o'neil+x_y-z@mail.example.co.uk", "c" * 60 + "@x.org"]


@pytest.mark.parametrize("to", ADDRESSES)
def test_the_to_header_is_the_email_packages(to: str) -> None:
    """The To: line is written without the email package for the common names (50 times faster):
    byte for byte what the email package writes, for those and for the ones it is left to."""
    for name in NAMES:
        reference = EmailMessage(policy=policy.SMTP)
        reference["To"] = str(Address(display_name=name, addr_spec=to))
        expected = reference.as_bytes().split(b"\r\n\r\n")[0] + b"\r\n"
        assert recipient_header(to, name) == expected, (to, name)


def test_the_same_digest_is_the_same_bytes(site: Site) -> None:
    config = seed_site(site)
    first = message_for(render_digest(digest_of(config), config), config)
    assert message_for(render_digest(digest_of(config), config), config) == first
    assert b'boundary="=_digest_' in first


def test_message_id_is_deterministic_per_recipient(site: Site) -> None:
    config = configured(site)
    first = make_message_id("2025-W27", "A@example.org", config)
    assert first == make_message_id("2025-W27", "a@example.org ", config)
    assert first != make_message_id("2025-W27", "b@example.org", config)
    assert first != make_message_id("2025-W28", "a@example.org", config)
    assert first != make_message_id("2025-W27", "a@example.org", config, salt="resend")
    assert "a@example.org" not in first and first.endswith("@example.com>")


def test_no_header_can_be_injected(site: Site) -> None:
    config = seed_site(site)
    evil = dataclasses.replace(
        config,
        site=dataclasses.replace(config.site, title="Evil\r\nBcc: victim@example.net"),
        digest=dataclasses.replace(config.digest, subject="{site}\n{period}\r\nX-Injected: yes"),
    )
    site.add("crlf.md", article_text("Title\\r\\nBcc: a@example.net", at(28)))
    rendered = render_digest(digest_of(evil), evil)
    raw = message_for(rendered, evil, to="reader@example.org", name="Reader\r\nBcc: b@example.net")
    message = parse(raw)
    assert message["Bcc"] is None and message["X-Injected"] is None
    assert message["Subject"] == "Evil Bcc: victim@example.net 2025-W27 X-Injected: yes"
    headers = raw.split(b"\r\n\r\n")[0]
    assert not re.search(rb"\r\n(Bcc|X-Injected):", headers)


@pytest.mark.parametrize(
    "to",
    [
        "reader@example.org\r\nBcc: b@example.net",
        "reader@example.org\nBcc: b@example.net",
        "reader@example.org\rBcc: b@example.net",
        "reader@example.org,b@example.net",
        "<reader@example.org>",
        "reader@",
    ],
)
def test_a_recipient_address_that_could_add_a_header_is_refused(site: Site, to: str) -> None:
    config = seed_site(site)
    rendered = render_digest(digest_of(config), config)
    with pytest.raises(DigestError, match="not a recipient address"):
        message_for(rendered, config, to=to)


def test_a_message_id_that_could_add_a_header_is_refused(site: Site) -> None:
    config = seed_site(site)
    rendered = render_digest(digest_of(config), config)
    with pytest.raises(DigestError, match="not a Message-ID"):
        build_message(
            rendered, config, to=READER, message_id="<a@example.com>\r\nBcc: b@example.net", date=NOW
        )


# 60 characters: with the unsubscribe URL around it, the header is far over 78 characters.
LONG_ADDRESS = "christopher.montgomery.smithe@research-institute.example.org"


def test_list_unsubscribe_is_plain_ascii_folded_only_between_the_uris(site: Site) -> None:
    """Mail providers do not decode RFC 2047 encoded words in RFC 2369 headers: one would break RFC 8058's
    one-click unsubscribe. Checked on the raw bytes: the email parser would decode encoded words."""
    assert len(LONG_ADDRESS) == 60
    config = seed_site(site)
    raw = message_for(render_digest(digest_of(config), config), config, to=LONG_ADDRESS)
    lines = header_lines(raw)
    assert lines["List-Unsubscribe"] == (
        b"List-Unsubscribe: <https://example.com/unsubscribe?email="
        b"christopher.montgomery.smithe%40research-institute.example.org>,\r\n"
        b" <mailto:digest@example.com?subject=unsubscribe>\r\n"
    )
    assert lines["List-Unsubscribe-Post"] == b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    assert lines["List-Id"] == b"List-Id: <test-site.example.com>\r\n"
    assert re.fullmatch(rb"Message-ID: <2025-W27\.[0-9a-f]{24}@example\.com>\r\n", lines["Message-ID"])
    for name in STRUCTURED:
        assert b"=?" not in lines[name] and lines[name].isascii(), lines[name]
    assert b"<" + LONG_ADDRESS.encode() + b">\r\n" in lines["To"]  # folded before the address, not in it
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    # Parsed back, it is RFC 2369's comma-separated list of two URIs.
    assert parse(raw)["List-Unsubscribe"] == (
        "<https://example.com/unsubscribe?email=christopher.montgomery.smithe%40research-institute"
        ".example.org>, <mailto:digest@example.com?subject=unsubscribe>"
    )


def test_structured_headers_stay_ascii_with_non_ascii_settings(site: Site) -> None:
    config = seed_site(site)
    config = dataclasses.replace(
        config,
        site=dataclasses.replace(config.site, base_url="https://例子.中国/", title="例子周报"),
        digest=dataclasses.replace(config.digest, unsubscribe_url="https://例子.中国/退订?email={email}"),
    )
    raw = message_for(render_digest(digest_of(config), config), config, to=LONG_ADDRESS)
    lines = header_lines(raw)
    for name in STRUCTURED:
        assert b"=?" not in lines[name] and lines[name].isascii(), lines[name]
    assert lines["List-Id"] == b"List-Id: <digest.xn--fsqu00a.xn--fiqs8s>\r\n"
    assert lines["Message-ID"].endswith(b"@xn--fsqu00a.xn--fiqs8s>\r\n")
    # The host in IDNA form, which mail clients resolve; the path percent-encoded.
    assert lines["List-Unsubscribe"].startswith(
        b"List-Unsubscribe: <https://xn--fsqu00a.xn--fiqs8s/%E9%80%80%E8%AE%A2?email="
    )


def test_no_header_line_is_over_998_octets(site: Site) -> None:
    """A URI too long for one header line is left out (the mailto: stays), never folded inside."""
    config = seed_site(site)
    long_url = "https://example.com/" + "u" * 900 + "?email={email}"
    config = dataclasses.replace(config, digest=dataclasses.replace(config.digest, unsubscribe_url=long_url))
    raw = message_for(render_digest(digest_of(config), config), config, to=LONG_ADDRESS)
    head = raw[: raw.index(b"\r\n\r\n")]
    assert max(len(line) for line in head.split(b"\r\n")) <= 998
    lines = header_lines(raw)
    assert (
        lines["List-Unsubscribe"] == b"List-Unsubscribe: <mailto:digest@example.com?subject=unsubscribe>\r\n"
    )
    assert "List-Unsubscribe-Post" not in lines  # one-click needs the https URI


def test_a_big_week_fits_the_budget_with_an_and_n_more_link(site: Site) -> None:
    topics = ["产业生态与商业版图", "投融资与市场洞察", "前沿模型与算法", "开发者工具与开源生态"]
    for n in range(60):
        site.add(
            f"a{n:02d}.md",
            article_text(
                f"第{n}篇：大模型时代的产业观察与长期思考",
                f"2025-06-{24 + n % 6:02d}T{8 + n % 12:02d}:{n:02d}:00+08:00",
                summary="开源权重让企业第一次拥有了与大模型实验室讨价还价的筹码，本文梳理了工具链的变化。"
                * 4,
                featured_image=f"/images/{n}.jpg",
                main_topics=[topics[n % 4], topics[(n + 1) % 4]],
            ),
        )
    config = configured(site, utm=UTM)
    digest = digest_of(config)
    assert digest.count == 60
    full = render_digest(
        digest, dataclasses.replace(config, digest=dataclasses.replace(config.digest, max_bytes=10**7))
    )
    assert full.encoded_html_bytes > config.digest.max_bytes  # the week really is too big
    rendered = render_digest(digest, config)
    assert rendered.digest is not None
    shown, moved = rendered.digest.items, rendered.digest.overflow
    assert moved and len(shown) + len(moved) == 60
    assert rendered.encoded_html_bytes <= config.digest.max_bytes
    assert max(i.article.publish_date for i in moved) <= min(i.article.publish_date for i in shown)
    assert rendered.digest.article_ids == digest.article_ids
    assert any("max_bytes" in w and f"'and {len(moved)} more'" in w for w in rendered.warnings)
    assert f"还有 {len(moved)} 篇文章" in rendered.html
    assert "https://example.com/feeds/digests/2025-W27.html?utm_source=digest" in rendered.html
    # What travels is what was measured (the address is shorter than the placeholder it replaces).
    raw = message_for(rendered, config, to="r@example.org")
    assert len(html_part_body(raw)) <= config.digest.max_bytes
    # The text part still has every article.
    _, text_part = "", parse(raw)
    plain, _ = parts(text_part)
    assert all(item.article.title in plain for item in (*shown, *moved))


def test_encoded_size_is_exact(site: Site) -> None:
    config = seed_site(site)
    web = render_digest(digest_of(config), config, web=True)  # no placeholder: bytes are final
    raw = message_for(web, config)
    assert encoded_size(web.html) == web.encoded_html_bytes == len(html_part_body(raw))


# ---------------------------------------------------------------- the web copy


def test_web_copy_has_no_personal_links_and_the_archive_has_an_index(site: Site) -> None:
    config = seed_site(site)
    digest = digest_of(config)
    web = render_digest(digest, config, web=True)
    assert "unsubscribe" not in web.html and "preferences" not in web.html
    assert "x-digest-recipient" not in web.html + web.text
    assert SEED_TITLE in web.html
    files = archive_files(digest, config, ["2025-W25", "2025-W26"], rendered=web)
    assert set(files) == {"2025-W27.html", "index.html"}
    assert files["2025-W27.html"] == web.html.encode("utf-8")
    index = files["index.html"].decode("utf-8")
    hrefs = [u for u in links(index) if "/digests/" in u and u.endswith(".html") and "index" not in u]
    assert hrefs == [f"https://example.com/feeds/digests/2025-W{w}.html" for w in (27, 26, 25)]
    with pytest.raises(DigestError, match="not a digest period"):
        archive_files(digest, config, ["../../etc/passwd"], rendered=web)
