"""The site's languages, and one set of feeds per language of a Hugo site, in Hugo's layout: the default
language's at the root of `[feeds] dir`, each other language's under `<lang>/`, each with its own title,
`xml:lang` and URLs, and each entry linked to its translations (`rel="alternate" hreflang`). Pure.

A plain content folder, or a Hugo site with one language, has one language (key "") and one set: the
feeds as `feeds.py` plans them. `site_languages` is the one place a language's config is made (its
title, `[site] language` tag, URLs, archive folder): the feeds and the weekly digest both use it, and
`language_of` decides which of them a subscriber's language tag reads.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

from .config import Config
from .content import Article
from .errors import Problem
from .feeds import FeedPlan, feeds_url, plan_feeds, render_files
from .render import RenderedEntry


@dataclass(frozen=True)
class SiteLanguage:
    key: str  # Hugo's language key; "" when the site has one language
    prefix: str  # "" for the default language, else "<lang>/": its feeds' and digests' subfolder
    config: Config  # the config as this language's feeds and digest see it: title, language, URLs


def site_languages(config: Config) -> tuple[SiteLanguage, ...]:
    """Every language of the site, the default first, then as Hugo sorts them (weight, then key)."""
    site = config.hugo
    if site is None or not site.multilingual:
        return (SiteLanguage("", "", config),)
    root = feeds_url(config)
    result = [SiteLanguage(site.default_content_language, "", config)]
    for language in site.languages:
        lang = language.lang
        if lang == site.default_content_language:
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
            feeds=dataclasses.replace(
                config.feeds, dir=config.feeds.dir / lang, url=urljoin(root, lang + "/")
            ),
            digest=dataclasses.replace(config.digest, archive_dir=_language_folder(config, lang)),
        )
        result.append(SiteLanguage(lang, lang + "/", lang_config))
    return tuple(result)


def _language_folder(config: Config, lang: str) -> Path:
    """Where a language's digest archive goes: beside its feeds (`<feeds>/<lang>/digests`) when the
    archive is inside the feeds folder, else `<lang>/` in the config's folder, as its pages are served
    (`https://x.org/<lang>/archive/`); an archive elsewhere gets a `<lang>` subfolder."""
    root = config.root.resolve()
    archive = (root / config.digest.archive_dir).resolve()
    feeds = (root / config.feeds.dir).resolve()
    if archive.is_relative_to(feeds):
        return feeds / lang / archive.relative_to(feeds)
    if archive.is_relative_to(root):
        return root / lang / archive.relative_to(root)
    return archive / lang


def language_of(config: Config, tag: str) -> str | None:
    """The key of the site language a subscriber's language tag reads ("" on a one-language site),
    None when the tag names none of them (they get the default language's digest).

    An empty tag is the default language. Otherwise, as RFC 4647 lookup: the tag, then the tag with
    its last subtag cut off, and so on, is compared (case-insensitively) with each language's key and
    `languageCode`; then the tag's primary language with theirs (`pt-BR` finds a `pt-pt` site).
    """
    languages = site_languages(config)
    if not tag.strip():
        return languages[0].key
    if len(languages) == 1:
        return languages[0].key if _matches(tag, (config.site.language,)) else None
    names = {lang.key: (lang.key, lang.config.site.language) for lang in languages}
    subtags = tag.strip().replace("_", "-").casefold().split("-")
    for end in range(len(subtags), 0, -1):
        wanted = "-".join(subtags[:end])
        for key, spellings in names.items():
            if wanted in (s.replace("_", "-").casefold() for s in spellings):
                return key
    for key, spellings in names.items():
        if _matches(tag, spellings):
            return key
    return None


def _matches(tag: str, spellings: Sequence[str]) -> bool:
    """The tag's primary language is one of theirs."""
    primary = tag.strip().replace("_", "-").casefold().split("-")[0]
    return primary in (s.replace("_", "-").casefold().split("-")[0] for s in spellings)


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

    def owners(self) -> dict[str, str]:
        """{feed file name, without `.xml`: its topic's key} of every topic feed in the plan."""
        return {
            f"{s.prefix}{spec.slug}": spec.topic.key
            for s in self.sets
            for spec in s.plan.feeds
            if spec.topic is not None
        }

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


def plan_feed_sets(
    published: Sequence[Article], config: Config, owners_before: Mapping[str, str] | None = None
) -> FeedSets:
    """The feeds of every language (one set unless the config is a multilingual Hugo site's);
    `owners_before`: {feed file name below the feeds folder, without `.xml` (`c`, `fr/c`): the key of
    the topic it was first published for} (`State.feed_owners`)."""
    owners_before = owners_before or {}

    def owners_in(prefix: str) -> dict[str, str]:
        return {
            n[len(prefix) :]: k
            for n, k in owners_before.items()
            if n.startswith(prefix) and "/" not in n[len(prefix) :]
        }

    site = config.hugo
    if site is None or not site.multilingual:
        return FeedSets((FeedSet("", config, plan_feeds(published, config, None, owners_in(""))),))
    by_lang = articles_by_language(published, config)
    sets = [
        FeedSet(
            lang.prefix,
            lang.config,
            plan_feeds(by_lang[lang.key], lang.config, lang.key, owners_in(lang.prefix)),
        )
        for lang in site_languages(config)
    ]
    sets.sort(key=lambda s: s.prefix)
    return FeedSets(tuple(sets))


def articles_by_language(articles: Sequence[Article], config: Config) -> dict[str, list[Article]]:
    """The articles of each site language (key "" on a one-language site: all of them), each linking
    only those of its translations that are among `articles` (the published ones)."""
    languages = site_languages(config)
    if len(languages) == 1:
        return {languages[0].key: list(articles)}
    urls = {a.url for a in articles}
    by_lang: dict[str, list[Article]] = {lang.key: [] for lang in languages}
    default = languages[0].key
    for article in articles:
        translations = tuple((lang, url) for lang, url in article.translations if url in urls)
        if translations != article.translations:
            article = dataclasses.replace(article, translations=translations)
        by_lang.setdefault(article.lang or default, []).append(article)
    return by_lang
