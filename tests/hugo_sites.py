"""Deterministic Hugo sites for the oracle tests, and the harness that asks the real `hugo` about them.

Every date is far from the fixed NOW (2026-12-01): years 2001..2021 are the past, 2099 the future, so
`hugo` (which decides future/expired with the real clock) and digest (given NOW) agree for decades.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from digest.hugo_config import HugoSite, read_hugo_config
from digest.hugo_dates import HugoYAMLLoader
from digest.hugo_pages import ContentFile, HugoResult, SourceFile, classify, decide_pages

NOW = datetime(2026, 12, 1, tzinfo=UTC)
MTIME = datetime(2015, 6, 7, 8, 9, 10, tzinfo=UTC)

HUGO = shutil.which("hugo")


def require_hugo() -> str:
    """The hugo binary; without one the test is skipped, except in CI, where it fails."""
    if HUGO:
        return HUGO
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail("hugo is not installed (make test installs Debian's hugo)")
    pytest.skip("hugo is not installed (make test installs it)")


def yaml_page(fields: Mapping[str, Any], body: str = "Body text.\n") -> str:
    return "---\n" + yaml.safe_dump(dict(fields), allow_unicode=True, sort_keys=True) + "---\n" + body


def toml_page(lines: str, body: str = "Body text.\n") -> str:
    return "+++\n" + lines.strip("\n") + "\n+++\n" + body


def json_page(fields: Mapping[str, Any], body: str = "Body text.\n") -> str:
    return json.dumps(dict(fields), ensure_ascii=False, indent=2, sort_keys=True) + "\n" + body


PROBE_HOME = (
    "[{{ range $i, $p := .Site.RegularPages }}{{ if $i }},{{ end }}"
    '{"path": {{ $p.File.Path | jsonify }}, "permalink": {{ $p.Permalink | jsonify }}, '
    '"title": {{ $p.Title | jsonify }}, "lang": {{ $p.Lang | jsonify }}, '
    '"publishDate": {{ $p.PublishDate.Format "2006-01-02T15:04:05Z07:00" | jsonify }}, '
    '"date": {{ $p.Date.Format "2006-01-02T15:04:05Z07:00" | jsonify }}, '
    '"lastmod": {{ $p.Lastmod.Format "2006-01-02T15:04:05Z07:00" | jsonify }}, '
    '"expiryDate": {{ $p.ExpiryDate.Format "2006-01-02T15:04:05Z07:00" | jsonify }}, '
    '"translationKey": {{ $p.TranslationKey | jsonify }}, '
    '"section": {{ $p.Section | jsonify }}, '
    '"summary": {{ $p.Summary | plainify | jsonify }}, '
    '"translations": [{{ range $j, $t := $p.Translations }}{{ if $j }},{{ end }}'
    '{"lang": {{ $t.Lang | jsonify }}, "permalink": {{ $t.Permalink | jsonify }}}{{ end }}]}'
    "{{ end }}]\n"
)


def _write(root: Path, files: Mapping[str, str | bytes]) -> None:
    for rel, data in sorted(files.items()):
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            target.write_bytes(data)
        else:
            target.write_bytes(data.encode("utf-8"))
        os.utime(target, (MTIME.timestamp(), MTIME.timestamp()))


def _layouts() -> dict[str, str]:
    return {
        "layouts/index.html": PROBE_HOME,
        "layouts/_default/single.html": "{{ .Title }}\n{{ .Content }}\n",
        "layouts/shortcodes/note.html": '<div class="note">{{ .Inner }}</div>',
        "layouts/shortcodes/aside.html": "<aside>{{ .Get 0 }}</aside>",
        "layouts/_default/list.html": "{{ .Title }}\n",
    }


def blog_site(root: Path) -> Path:
    """A bilingual blog (en default, fr by file-name suffix) with per-section permalinks, a base URL
    with a path, :filename dates, drafts, future, expired, undated pages, bundles, cascade, _build."""
    config = """
baseURL = "https://example.org/blog/"
title = "The Blog"
languageCode = "en-us"
timeZone = "Europe/Paris"
defaultContentLanguage = "en"

[languages.en]
weight = 2
title = "The Blog"
[languages.fr]
weight = 1  # first by weight, yet the files without a suffix are the default language's
title = "Le Blog"
languageCode = "fr-fr"

[permalinks]
posts = "/:year/:month/:slug/"
notes = "/:section/:filename/"
docs = "/manual/:sections[1:]/:slugorfilename/"
archive = "/:2006/:01/:02/:filename/"
events = "/:yearday-:weekday-:weekdayname-:monthname-:day/:title/"

[frontmatter]
date = [":filename", ":default"]
lastmod = ["lastmod", ":fileModTime"]

[taxonomies]
tag = "tags"
"""
    files: dict[str, str | bytes] = {
        "hugo.toml": config,
        "config.toml": 'title = "never read: hugo.toml comes first"\n',
        # posts: every date rule
        "content/posts/_index.md": yaml_page({"title": "Posts"}),
        "content/posts/2020-05-01-first-post.md": yaml_page({"title": "First post"}),
        "content/posts/2020-05-02_Second Thing.md": yaml_page({"title": "Second", "tags": ["a"]}),
        "content/posts/2020-05-03.md": yaml_page({"title": "Only a date"}),
        "content/posts/second.md": yaml_page(
            {"title": "Second Post: Ünïcödé & Co!", "date": "2020-06-01T10:30:00+05:30"}
        ),
        "content/posts/second.fr.md": yaml_page({"title": "Deuxième article", "date": "2020-06-02T09:00:00"}),
        "content/posts/only-fr.fr.md": yaml_page({"title": "Seulement en français", "date": "2020-06-03"}),
        "content/posts/unknown.xx.md": yaml_page({"title": "Not a language suffix", "date": "2020-06-04"}),
        "content/posts/draft.md": yaml_page({"title": "A draft", "date": "2020-07-01", "draft": True}),
        "content/posts/draft-string.md": yaml_page(
            {"title": "Draft string", "date": "2020-07-02", "draft": "true"}
        ),
        "content/posts/unpublished.md": yaml_page(
            {"title": "Unpublished", "date": "2020-07-03", "published": False}
        ),
        "content/posts/future.md": yaml_page({"title": "Future", "date": "2099-01-01"}),
        "content/posts/future-pub.md": yaml_page(
            {"title": "Future publishDate", "date": "2020-07-04", "publishDate": "2099-02-02T10:00:00Z"}
        ),
        "content/posts/pubdate-alias.md": yaml_page(
            {"title": "Pubdate alias", "pubdate": "2019-03-04 05:06:07"}
        ),
        "content/posts/expired.md": yaml_page(
            {"title": "Expired", "date": "2001-01-01", "expiryDate": "2002-01-01"}
        ),
        "content/posts/unpublishdate.md": yaml_page(
            {"title": "Unpublishdate alias", "date": "2001-01-02", "unpublishdate": "2003-01-01"}
        ),
        "content/posts/not-expired.md": yaml_page(
            {"title": "Not expired", "date": "2001-01-03", "expiryDate": "2099-01-01"}
        ),
        "content/posts/undated.md": yaml_page({"title": "Undated"}),
        "content/posts/bad-date.md": yaml_page({"title": "Bad date", "date": "next tuesday"}),
        "content/posts/short-date.md": yaml_page({"title": "Short date", "date": "2020-1-2 10:00:00"}),
        "content/posts/rfc1123.md": yaml_page({"title": "RFC 1123", "date": "Mon, 02 Jan 2006 15:04:05 MST"}),
        "content/posts/unix.md": yaml_page({"title": "Unix seconds", "date": 1262304000}),
        "content/posts/dashes.md": yaml_page(
            {"title": "Dash - separated --  words\ttab  ", "date": "2020-08-05"}
        ),
        "content/posts/slugged.md": yaml_page(
            {"title": "Slugged", "date": "2020-08-01", "slug": "-my/custom-"}
        ),
        "content/posts/with-url.md": yaml_page(
            {"title": "With url", "date": "2020-08-02", "url": "/special/Place/"}
        ),
        "content/posts/url-file.md": yaml_page(
            {"title": "Url file", "date": "2020-08-03", "url": "files/x.html"}
        ),
        "content/posts/url-fr.fr.md": yaml_page(
            {"title": "Url fr", "date": "2020-08-04", "url": "relative/"}
        ),
        "content/posts/bundle/index.md": yaml_page(
            {"title": "A bundle", "date": "2020-09-01", "slug": "bundled"}
        ),
        "content/posts/bundle/extra.md": yaml_page(
            {"title": "Bundle resource, not a page", "date": "2020-09-02"}
        ),
        "content/posts/bundle/image.png": b"\x89PNG\r\n",
        "content/posts/2020-09-03-dated-bundle/index.md": yaml_page({"title": "Dated bundle"}),
        "content/posts/headless/index.md": yaml_page(
            {"title": "Headless", "date": "2020-09-04", "headless": True}
        ),
        "content/posts/never.md": yaml_page(
            {"title": "List never", "date": "2020-09-05", "_build": {"list": "never"}}
        ),
        "content/posts/local.md": yaml_page(
            {"title": "List local", "date": "2020-09-06", "_build": {"list": "local"}}
        ),
        "content/posts/blank-line.md": "\n\n"
        + yaml_page({"title": "Blank line first", "date": "2020-10-01"}),
        "content/posts/bom-crlf.md": "\ufeff"
        + yaml_page({"title": "BOM and CRLF", "date": "2020-10-02T08:00:00"}).replace("\n", "\r\n"),
        "content/posts/toml.md": toml_page('title = "TOML page"\ndate = 2020-10-03T11:12:13\ndraft = false'),
        "content/posts/toml-offset.md": toml_page('title = "TOML offset"\ndate = 2020-10-04T11:12:13-07:00'),
        "content/posts/json.md": json_page({"title": "JSON page", "date": "2020-10-05"}),
        "content/posts/comment.md": "<!--\n"
        + yaml_page({"title": "In a comment", "date": "2020-10-06"}, "")
        + "-->\nB\n",
        # values written by hand, as people do: unquoted timestamps, booleans and numbers
        "content/posts/raw-date.md": "---\ntitle: Raw date\ndate: 2020-10-11\n---\nB\n",
        "content/posts/raw-datetime.md": "---\ntitle: Raw datetime\ndate: 2020-10-12 10:00:00\n---\nB\n",
        "content/posts/raw-yaml-t.md": "---\ntitle: YAML t\ndate: 2001-12-14t21:59:43.10-05:00\n---\n",
        "content/posts/raw-offset.md": "---\ntitle: Raw offset\ndate: 2020-10-13T10:00:00+09:00\n---\nB\n",
        "content/posts/draft-yes.md": "---\ntitle: Draft yes\ndate: 2020-10-14\ndraft: yes\n---\n",
        "content/posts/draft-quoted-yes.md": "---\ntitle: Draft 'yes'\ndate: 2020-10-15\ndraft: 'yes'\n---\n",
        "content/posts/draft-y.md": "---\ntitle: Draft y\ndate: 2020-10-21\ndraft: y\n---\n",
        "content/posts/draft-n.md": "---\ntitle: Draft N\ndate: 2020-10-22\ndraft: N\n---\n",
        "content/posts/draft-one.md": "---\ntitle: Draft 1\ndate: 2020-10-16\ndraft: 1\n---\n",
        "content/posts/toml-draft-one.md": toml_page('title = "TOML draft 1"\ndate = 2020-10-17\ndraft = 1'),
        "content/posts/published-string.md": "---\ntitle: Published 'false'\ndate: 2020-10-18\n"
        "published: 'false'\n---\n",
        "content/posts/number-title.md": "---\ntitle: 2020\ndate: 2020-10-19\n---\n",
        "content/posts/no-title.md": "---\ndate: 2020-10-20\n---\n",
        "content/posts/toml-number-date.md": toml_page('title = "TOML number date"\ndate = 1262304000'),
        "content/posts/json-number-date.md": json_page({"title": "JSON number date", "date": 1262304000}),
        "content/posts/.hidden.md": yaml_page({"title": "Hidden", "date": "2020-10-07"}),
        "content/posts/backup.md~": yaml_page({"title": "Backup", "date": "2020-10-08"}),
        "content/posts/readme.txt": "not content\n",
        "content/posts/page.html": yaml_page(
            {"title": "HTML with front matter", "date": "2020-10-09"}, "<p>x</p>\n"
        ),
        "content/posts/static.html": "<!DOCTYPE html>\n<html><body>static</body></html>\n",
        # nested sections, :sections, cascade
        "content/docs/_index.md": yaml_page({"title": "Docs", "cascade": {"date": "2018-01-01"}}),
        "content/docs/intro.md": yaml_page({"title": "Intro"}),
        "content/docs/intro.fr.md": yaml_page({"title": "Intro (the en _index's cascade is not fr's)"}),
        "content/docs/guide/_index.md": yaml_page({"title": "Guide"}),
        "content/docs/guide/install.md": yaml_page({"title": "Install", "slug": "setup"}),
        "content/docs/guide/deeper/more.md": yaml_page(
            {"title": "More (no _index here)", "date": "2018-02-02"}
        ),
        "content/docs/hidden/_index.md": yaml_page({"title": "Hidden section", "cascade": {"draft": True}}),
        "content/docs/hidden/secret.md": yaml_page({"title": "Secret", "date": "2018-03-03"}),
        "content/docs/gone/_index.md": yaml_page({"title": "Gone section", "draft": True}),
        "content/docs/gone/child.md": yaml_page({"title": "Child of a draft section", "date": "2018-03-04"}),
        "content/docs/exp/_index.md": yaml_page({"title": "Expired section", "expiryDate": "2005-01-01"}),
        "content/docs/exp/child.md": yaml_page(
            {"title": "Child of an expired section", "date": "2004-01-01"}
        ),
        # one map (not a list): Hugo 0.111 ignores its _target, so both pages get the slug
        "content/single/_index.md": yaml_page(
            {"cascade": {"_target": {"path": "/single/a*"}, "slug": "cascaded"}}
        ),
        "content/single/a.md": yaml_page({"title": "Single a", "date": "2019-05-05"}),
        "content/single/b.md": yaml_page({"title": "Single b", "date": "2019-05-06"}),
        "content/notes/a/b/n.md": yaml_page({"title": "Nested note", "date": "2019-01-01"}),
        "content/notes/2019-02-03-filename.md": yaml_page({"title": "Filename note"}),
        "content/archive/old-one.md": yaml_page({"title": "Old one", "date": "2011-11-12T13:14:15+01:00"}),
        "content/events/party.md": yaml_page({"title": "Big Party!", "date": "2021-03-04T22:30:00"}),
        "content/events/party.fr.md": yaml_page({"title": "Grande fête !", "date": "2021-03-05"}),
        # CJK names and titles
        "content/中文/文章.md": yaml_page({"title": "中文标题：你好，世界", "date": "2020-11-01"}),
        "content/中文/漢字 タイトル.md": yaml_page({"title": "日本語のタイトル", "date": "2020-11-02"}),
        # root pages
        "content/about.md": yaml_page({"title": "About", "date": "2001-02-03"}),
        "content/about.fr.md": yaml_page(
            {"title": "À propos", "date": "2001-02-04", "translationKey": "about"}
        ),
        "content/contact/index.md": yaml_page({"title": "Contact", "date": "2001-02-05"}),
        "content/mtime.md": yaml_page({"title": "Lastmod from mtime", "date": "2001-02-06"}),
        # authored summaries and shortcodes
        "content/posts/more.md": yaml_page(
            {"title": "More divider", "date": "2021-05-01"},
            'Intro with **bold**, "quotes" and a [link](/x/).\n\n<!--more-->\n\nThe rest.\n',
        ),
        "content/posts/more-case.md": yaml_page(
            {"title": "Not a divider", "date": "2021-05-02", "summary": "From the *field*."},
            "First part.\n\n<!--MORE-->\n\nSecond part.\n",
        ),
        "content/posts/summary-field.md": yaml_page(
            {
                "title": "Summary field",
                "date": "2021-05-03",
                "summary": "A **Markdown** summary -- with a dash.",
            },
            "Body that is not the summary.\n",
        ),
        "content/posts/shortcodes.md": yaml_page(
            {"title": "Shortcodes", "date": "2021-05-04", "subtitle": "Sub <b>title</b>"},
            'See [about]({{< ref "/about.md" >}}), [second]({{< relref "second.md" >}}) and '
            '[the bundle]({{< ref "bundle" >}}).\n\n'
            '{{< figure src="/img/a.png" title="A figure" caption="Its caption" >}}\n\n'
            "{{< youtube w7Ft2ymGmfc >}}\n\n"
            '{{< highlight go >}}\nfunc main() { fmt.Println("<hi>") }\n{{< /highlight >}}\n\n'
            "{{% note %}}Inner **note** text{{% /note %}}\n\n"
            '{{< aside "aside argument" >}} and {{< param subtitle >}}.\n',
        ),
    }
    files |= _layouts()
    _write(root, files)
    return root


def project_site(root: Path) -> Path:
    """A Chinese/English project site: one contentDir per language, config in config/_default,
    default language in a subfolder, ugly URLs, no lower-casing, accents removed."""
    files: dict[str, str | bytes] = {
        "config/_default/hugo.yaml": yaml.safe_dump(
            {
                "baseURL": "https://p.example.com/docs",
                "title": "项目",
                "defaultContentLanguage": "zh",
                "defaultContentLanguageInSubdir": True,
                "uglyURLs": True,
                "disablePathToLower": True,
                "removePathAccents": True,
                "timeZone": "Asia/Shanghai",
                "ignoreFiles": [r"\.draft\.md$", "/scratch/"],
            },
            allow_unicode=True,
        ),
        "config/_default/languages.toml": """
[zh]
contentDir = "content/zh"
languageCode = "zh-CN"
title = "项目"
weight = 1
[en]
contentDir = "content/en"
languageCode = "en"
title = "Project"
weight = 2
""",
        "config/_default/permalinks.json": json.dumps({"blog": "/news/:year/:title/"}),
        "config/_default/params.toml": 'description = "params go under [params]"\n',
        "config/production/hugo.toml": "summaryLength = 30\n",
        "content/zh/_index.md": yaml_page({"title": "首页"}),
        "content/zh/guide/安装指南.md": yaml_page({"title": "安装指南", "date": "2020-01-01"}),
        "content/zh/guide/Upper Case Name.md": yaml_page({"title": "Upper", "date": "2020-01-02"}),
        "content/zh/guide/Café Crème.md": yaml_page({"title": "Accents", "date": "2020-01-03"}),
        "content/zh/guide/no-date.md": "\n" + yaml_page({"title": "没有日期的文档页"}),
        "content/zh/guide/english.en.md": yaml_page({"title": "English by suffix", "date": "2020-01-04"}),
        "content/zh/blog/发布 1.0 版！.md": yaml_page(
            {"title": "发布 1.0 版！", "date": "2020-02-01T20:00:00"}
        ),
        "content/zh/blog/wip.draft.md": yaml_page({"title": "Ignored by ignoreFiles", "date": "2020-02-02"}),
        "content/zh/scratch/x.md": yaml_page({"title": "Ignored folder", "date": "2020-02-03"}),
        "content/zh/blog/bundle/index.md": yaml_page({"title": "博客 Bundle", "date": "2020-02-04"}),
        "content/en/_index.md": yaml_page({"title": "Home"}),
        "content/en/guide/install.md": yaml_page({"title": "Install Guide", "date": "2020-01-01"}),
        "content/en/guide/future.md": yaml_page({"title": "Future", "date": "2099-05-05"}),
        "content/en/blog/release.md": toml_page('title = "Release 1.0: Out Now"\ndate = 2020-02-01T20:00:00'),
        "content/en/blog/json-post.md": json_page({"title": "JSON Post", "date": "2020-02-05T01:02:03Z"}),
        "content/en/page.html": yaml_page({"title": "An HTML page", "date": "2020-03-03"}, "<p>x</p>\n"),
    }
    files |= _layouts()
    _write(root, files)
    return root


def plain_site(root: Path) -> Path:
    """One language, a config.json with mixed-case keys, root and per-section patterns with :sections,
    ugly URLs for one section, cascade with targets, date chains that end in the file's mtime."""
    config = {
        "BaseURL": "http://localhost:1313/",
        "Title": "Plain",
        "LanguageCode": "de-de",
        "DefaultContentLanguage": "de",
        "uglyurls": {"flat": True},
        "Permalinks": {
            "/": "/top/:slugorfilename/",
            "tree": "/:sections/:filename",
            "last": "/:sections[last]/:title/",
            "flat": "/:section/:year-:month-:day-:slug",
            "zones": "/:2006_01_02_15_04_05/:Monday/:Jan2/:MST/:Z0700/:Z07/:__2/:002/:_2/:15/:3pm/:title/",
        },
        "FrontMatter": {"publishDate": ["publishDate", ":fileModTime"], "date": [":default", ":fileModTime"]},
        "Cascade": [{"_target": {"path": "/flat/t*.md"}, "slug": "slug-from-the-site-cascade"}],
    }
    files: dict[str, str | bytes] = {
        "config.json": json.dumps(config, indent=2),
        "content/root-page.md": yaml_page({"Title": "Root Page", "Date": "2003-04-05"}),
        "content/root-undated.md": yaml_page({"title": "Root undated: dated by mtime"}),
        "content/tree/_index.md": yaml_page(
            {
                "title": "Tree",
                "cascade": [
                    {"_target": {"kind": "page", "path": "/tree/branch/**"}, "_build": {"list": "never"}},
                    {"_target": {"kind": "section"}, "title": "cascaded section title"},
                ],
            }
        ),
        "content/tree/top.md": yaml_page({"title": "Top of tree", "date": "2004-01-01"}),
        "content/tree/branch/_index.md": yaml_page({"title": "Branch"}),
        "content/tree/branch/leaf.md": yaml_page({"title": "Cascaded list never", "date": "2004-01-02"}),
        "content/tree/other/_index.md": yaml_page({"title": "Other"}),
        "content/tree/other/deep/_index.md": yaml_page({"title": "Deep"}),
        "content/tree/other/deep/page.md": yaml_page({"title": "Deep page", "date": "2004-01-03"}),
        "content/tree/other/deep/bundle/index.md": yaml_page({"title": "Deep bundle", "date": "2004-01-04"}),
        "content/last/a/_index.md": yaml_page({"title": "A"}),
        "content/last/a/b/_index.md": yaml_page({"title": "B"}),
        "content/last/a/b/p.md": yaml_page({"title": "Last: B's page", "date": "2005-06-07T08:09:10-03:00"}),
        "content/last/q.md": yaml_page({"title": "Last q", "date": "2005-06-08"}),
        "content/flat/one.md": yaml_page({"title": "Flat One", "date": "2006-07-08", "slug": "first"}),
        "content/flat/two.md": yaml_page({"title": "Flat Two", "date": "2006-07-09"}),
        "content/flat/bundle/index.md": yaml_page({"title": "Flat bundle", "date": "2006-07-10"}),
        "content/zones/offset.md": yaml_page(
            {"title": "C++ tips & 100% tricks", "date": "2012-04-06T03:01:59+02:00"}
        ),
        "content/zones/utc.md": yaml_page({"title": "UTC: Z", "date": "2012-12-31T23:59:59Z"}),
        "content/zones/local.md": yaml_page({"title": "Local %41 time", "date": "2012-01-01 13:00:00"}),
        "content/zones/west.md": yaml_page({"title": "West", "date": "2012-07-04T09:08:07-05:00"}),
        "content/other/index.md": yaml_page(
            {"title": "Section-less bundle at the root", "date": "2006-07-11"}
        ),
        "content/other/x.md": yaml_page({"title": "Resource of the root bundle", "date": "2006-07-12"}),
    }
    files |= _layouts()
    _write(root, files)
    return root


# Pages whose summary the author wrote (before <!--more-->, or the `summary` field), by site.
_TAGS = (
    "AI",
    "Chips",
    "Policy",
    "Open Source",
    "Cloud",
    "Robots",
    "Data",
    "Security",
    "Funding",
    "Research",
    "Energy",
    "Health",
    "Mobile",
    "Space",
)
_WORDS = (
    "model",
    "chip",
    "数据",
    "market",
    "open",
    "weights",
    "agent",
    "policy",
    "cloud",
    "训练",
    "robot",
    "energy",
    "release",
    "benchmark",
    "export",
    "模型",
)


def sized_site(root: Path, pages: int = 10_000, *, feeds_only: bool = False) -> Path:
    """A generated bilingual blog of `pages` content files (the benchmarks' site): en by default and
    every tenth page in French (`x.fr.md`), sections with nested sections and bundles, per-section
    `[permalinks]`, tags from 14, YAML, TOML and JSON front matter, a `<!--more-->` or `summary` now and
    then, some drafts and future pages, a `ref` to an earlier page, dates from 2001 to 2021.
    `feeds_only` adds `feeds.toml`, which `hugo --config hugo.toml,feeds.toml` reads to render only
    RSS (no page HTML, no sitemap), at most 50 entries a feed, as digest's feeds."""
    config = """
baseURL = "https://example.org/blog/"
title = "The Big Blog"
languageCode = "en-us"
timeZone = "Europe/Paris"
defaultContentLanguage = "en"
rssLimit = 50

[languages.en]
weight = 1
[languages.fr]
weight = 2
title = "Le Grand Blog"
languageCode = "fr-fr"

[permalinks]
posts = "/:year/:month/:slug/"
notes = "/:section/:filename/"
docs = "/manual/:sections[1:]/:slugorfilename/"

[taxonomies]
tag = "tags"
"""
    files: dict[str, str | bytes] = {"hugo.toml": config}
    if feeds_only:
        files["feeds.toml"] = (
            'disableKinds = ["sitemap", "robotsTXT", "404"]\n[outputs]\nhome = ["RSS"]\n'
            'section = ["RSS"]\ntaxonomy = ["RSS"]\nterm = ["RSS"]\npage = []\n'
        )
    sections = ("posts", "notes", "docs/guide", "docs/api/v2")
    for section in ("posts", "notes", "docs", "docs/guide", "docs/api", "docs/api/v2"):
        files[f"content/{section}/_index.md"] = yaml_page({"title": section.rsplit("/", 1)[-1].title()})
    for i in range(pages):
        section = sections[i % len(sections)]
        year, month, day = 2001 + i % 21, 1 + i % 12, 1 + i % 28
        date = f"{year:04d}-{month:02d}-{day:02d}T{i % 24:02d}:{i % 60:02d}:00+01:00"
        if i % 97 == 5:
            date = "2099-01-01T00:00:00Z"  # future
        words = [_WORDS[(i * 7 + k) % len(_WORDS)] for k in range(6)]
        title = f"{' '.join(words[:4]).title()} {i}"
        tags = [_TAGS[i % len(_TAGS)], _TAGS[(i * 5 + 3) % len(_TAGS)]]
        paragraphs = [" ".join(words * 8) + "." for _ in range(5)]
        if i % 3 == 0:
            paragraphs.insert(1, "<!--more-->")
        target_index = _ref_target(i, len(sections))
        if i % 11 == 0 and i % 10 != 9 and target_index is not None:
            target = f"p{target_index:05d}.md"
            paragraphs.append(f'See [earlier]({{{{< ref "{target}" >}}}}) and **bold** `code`.')
        body = "\n\n".join(paragraphs) + "\n"
        lang = ".fr" if i % 10 == 9 else ""
        name = f"p{i:05d}{lang}.md" if i % 25 else f"p{i:05d}/index{lang}.md"
        path = f"content/{section}/{name}"
        fields: dict[str, Any] = {"title": title, "date": date, "tags": tags}
        if i % 53 == 7:
            fields["draft"] = True
        if i % 17 == 4:
            fields["summary"] = "An *authored* summary."
        if i % 7 == 1:
            lines = "\n".join(f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in fields.items())
            files[path] = toml_page(lines, body)
        elif i % 7 == 2:
            files[path] = json_page(fields, body)
        else:
            files[path] = yaml_page(fields, body)
    _write(root, files)
    return root


def _ref_target(i: int, step: int) -> int | None:
    """An earlier English, published, non-bundle page of the same section as page `i`, if any."""
    j = i - 2 * step
    while j >= 0:
        if j % 10 != 9 and j % 25 and j % 53 != 7 and j % 97 != 5:
            return j
        j -= step
    return None


AUTHORED = {
    "blog": {"posts/more.md", "posts/more-case.md", "posts/summary-field.md"},
    "project": set(),
    "plain": set(),
}

SITES = {"blog": blog_site, "project": project_site, "plain": plain_site}


# ---------------------------------------------------------------- digest's side


def split_front_matter(text: str) -> tuple[str, dict[str, Any]]:
    """The front matter of a generated page as Hugo finds it: after a BOM and blank space, `---` YAML,
    `+++` TOML, `{` JSON, possibly inside `<!-- -->`; CRLF allowed."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").lstrip()
    if text.startswith("<!--"):
        text = text[4:].lstrip()
    if text.startswith("{"):
        value, _ = json.JSONDecoder().raw_decode(text)
        return "json", value
    for fence, fmt in (("---", "yaml"), ("+++", "toml")):
        if text.startswith(fence):
            inner = text[len(fence) :].split("\n" + fence, 1)[0]
            if fmt == "yaml":
                return fmt, yaml.load(inner, Loader=HugoYAMLLoader) or {}
            return fmt, tomllib.loads(inner)
    return "yaml", {}


def digest_view(root: Path) -> tuple[HugoSite, HugoResult, list[str]]:
    """What digest's pure modules decide for the site at `root`: (config, pages, notes of skipped files)."""
    site = read_hugo_config(root)
    sources: list[SourceFile] = []
    notes: list[str] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        data = path.read_bytes()
        head = data[:512].decode("utf-8", "replace")
        found = classify(rel, site, head)
        if not isinstance(found, ContentFile):
            if found.note:
                notes.append(f"{rel}: {found.note}")
            continue
        fmt, front = split_front_matter(data.decode("utf-8"))
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        sources.append(SourceFile(found, front, mtime, fmt))
    return site, decide_pages(sources, site, NOW), notes


# ---------------------------------------------------------------- hugo's side


@dataclass(frozen=True)
class HugoView:
    listed: dict[tuple[str, str], dict[str, Any]]  # (path, lang) -> .Site.RegularPages entry
    all_pages: dict[str, dict[str, str]]  # `hugo list all` rows by path
    held_back: dict[str, set[str]]  # "drafts", "future", "expired" -> paths `hugo list <that>` gives


def _zero_or(text: str) -> datetime | None:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return None if moment.year == 1 else moment


def hugo_view(root: Path, tmp: Path) -> HugoView:
    """What the real hugo publishes: the probe home page of each language, and `hugo list all`."""
    hugo = require_hugo()
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp), "HUGO_ENVIRONMENT": "production"}
    public = tmp / "public"
    subprocess.run(
        [
            hugo,
            "--quiet",
            "--source",
            str(root),
            "--destination",
            str(public),
            "--cacheDir",
            str(tmp / "cache"),
        ],
        check=True,
        env=env,
        capture_output=True,
        timeout=120,
    )
    listed: dict[tuple[str, str], dict[str, Any]] = {}
    for index in sorted(public.rglob("index.html")):
        text = index.read_text("utf-8")
        if not text.startswith("["):
            continue
        for entry in json.loads(text):
            listed[(entry["path"], entry["lang"])] = entry

    def hugo_list(what: str) -> str:
        return subprocess.run(
            [hugo, "list", what, "--source", str(root)],
            check=True,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout

    rows = {row["path"]: row for row in csv.DictReader(io.StringIO(hugo_list("all")))}
    held_back = {
        what: {line.split(",")[0] for line in hugo_list(what).splitlines() if line}
        for what in ("drafts", "future", "expired")
    }
    return HugoView(listed=listed, all_pages=rows, held_back=held_back)


def rel_content_path(page_path: str, site: HugoSite) -> str:
    """A page's path as .File.Path gives it: relative to its content dir."""
    for language in site.languages:
        prefix = language.content_dir.strip("/") + "/"
        if page_path.startswith(prefix):
            return page_path[len(prefix) :]
    return page_path
