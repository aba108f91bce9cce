"""One set of feeds per language of a Hugo site, in Hugo's layout: the default language's at the root of
`[feeds] dir`, each other language's under `<lang>/`, each with its own title, `xml:lang` and URLs, and
each entry linked to its translations (`rel="alternate" hreflang`). Pure.

A plain content folder, or a Hugo site with one language, has one set: the feeds as `feeds.py` plans them.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urljoin

from .config import Config
from .content import Article
from .errors import Problem
from .feeds import FeedPlan, feeds_url, plan_feeds, render_files
from .render import RenderedEntry


@dataclass(frozen=True)
class FeedSet:
    prefix: str  # "" for the default language, else "<lang>/"
    config: Config  # the config as this language's feeds see it: title, language, URLs
    plan: FeedPlan


@dataclass(frozen=True)
class FeedSets:
    sets: tuple[FeedSet, ...]

    @property
    def feeds(self) -> int:
        return sum(len(s.plan.feeds) for s in self.sets)

    @property
    def problems(self) -> list[Problem]:
        return [p for s in self.sets for p in s.plan.problems]

    @property
    def articles(self) -> list[Article]:
        """Every article in some feed of some language, once."""
        unique = {a.entry_id: a for s in self.sets for a in s.plan.articles}
        return [unique[key] for key in sorted(unique)]

    def fingerprint(self) -> str:
        return hashlib.sha256(
            "\0".join(s.prefix + s.plan.fingerprint(s.config) for s in self.sets).encode()
        ).hexdigest()

    def render(
        self, entries: Mapping[str, RenderedEntry], known: Mapping[str, bytes] | None = None
    ) -> dict[str, bytes]:
        """Every file under `[feeds] dir`, by relative path; `known` as `feeds.render_files` takes it."""
        files: dict[str, bytes] = {}
        for feed_set in self.sets:
            prefix = feed_set.prefix
            own = {
                name[len(prefix) :]: data for name, data in (known or {}).items() if name.startswith(prefix)
            }
            for name, data in render_files(feed_set.plan, entries, feed_set.config, own).items():
                files[prefix + name] = data
        return files


def plan_feed_sets(published: Sequence[Article], config: Config) -> FeedSets:
    """The feeds of every language (one set unless the config is a multilingual Hugo site's)."""
    site = config.hugo
    if site is None or not site.multilingual:
        return FeedSets((FeedSet("", config, plan_feeds(published, config)),))
    urls = {a.url for a in published}
    by_lang: dict[str, list[Article]] = {language.lang: [] for language in site.languages}
    for article in published:
        translations = tuple((lang, url) for lang, url in article.translations if url in urls)
        if translations != article.translations:
            article = dataclasses.replace(article, translations=translations)
        by_lang.setdefault(article.lang or site.default_content_language, []).append(article)
    sets = []
    root = feeds_url(config)
    for language in site.languages:
        lang = language.lang
        if lang == site.default_content_language:
            sets.append(FeedSet("", config, plan_feeds(by_lang[lang], config)))
            continue
        prefix = site.lang_prefix(lang)
        lang_config = dataclasses.replace(
            config,
            site=dataclasses.replace(
                config.site,
                title=language.title or config.site.title,
                language=language.language_code or lang,
                base_url=urljoin(config.site.base_url, prefix + "/") if prefix else config.site.base_url,
            ),
            feeds=dataclasses.replace(config.feeds, url=urljoin(root, lang + "/")),
        )
        sets.append(FeedSet(lang + "/", lang_config, plan_feeds(by_lang[lang], lang_config)))
    sets.sort(key=lambda s: s.prefix)
    return FeedSets(tuple(sets))
