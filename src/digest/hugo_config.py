"""A Hugo site's config, found, merged and read the way Hugo 0.111 does it.

`read_hugo_config(root)` is the one function that touches the disk; everything else is pure:
`hugo_config_from_maps` turns already-parsed maps into one frozen `HugoSite`.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from digest.errors import ConfigError
from digest.urls import PathRules, check_permalinks

CONFIG_NAMES = ("hugo", "config")
CONFIG_EXTENSIONS = ("toml", "yaml", "yml", "json")
ENVIRONMENT = "production"  # what `hugo` (a build, not `hugo server`) uses

# Hugo's default [frontmatter] chains, before the aliases are added.
_DEFAULT_CHAINS: dict[str, tuple[str, ...]] = {
    "date": ("date", "publishdate", "lastmod"),
    "lastmod": (":git", "lastmod", "date", "publishdate"),
    "publishdate": ("publishdate", "date"),
    "expirydate": ("expirydate",),
}
_ALIASES: dict[str, tuple[str, ...]] = {
    "date": (),
    "lastmod": ("modified",),
    "publishdate": ("pubdate", "published"),
    "expirydate": ("unpublishdate",),
}


@dataclass(frozen=True)
class DateChains:
    """Where each of a page's dates comes from, first match wins (lower-case keys, `:filename`,
    `:filemodtime`, `:git`)."""

    date: tuple[str, ...]
    lastmod: tuple[str, ...]
    publish_date: tuple[str, ...]
    expiry_date: tuple[str, ...]


@dataclass(frozen=True)
class HugoLanguage:
    """One entry of `[languages]` (or the only language of a monolingual site)."""

    lang: str
    title: str
    language_code: str
    content_dir: str
    weight: int
    time_zone: str


@dataclass(frozen=True)
class HugoSite:
    """What digest reads from a Hugo site's config; every key has Hugo's default."""

    root: Path
    config_files: tuple[str, ...]
    base_url: str
    title: str
    language_code: str
    time_zone: str
    content_dir: str
    languages: tuple[HugoLanguage, ...]  # sorted as Hugo sorts them: weight, then code
    default_content_language: str
    default_content_language_in_subdir: bool
    permalinks: Mapping[str, str]  # section ("" for the root) -> pattern
    ugly_urls: bool
    ugly_urls_sections: Mapping[str, bool]
    path_rules: PathRules
    date_chains: DateChains
    build_drafts: bool
    build_future: bool
    build_expired: bool
    ignore_files: tuple[str, ...]
    taxonomies: Mapping[str, str]  # singular -> plural
    summary_length: int
    has_cjk_language: bool
    cascade: tuple[Mapping[str, Any], ...] = field(default=())
    params: Mapping[str, Any] = field(default_factory=dict)  # [params], keys lower-cased

    @property
    def multilingual(self) -> bool:
        return len(self.languages) > 1

    def language(self, lang: str) -> HugoLanguage:
        for language in self.languages:
            if language.lang == lang:
                return language
        raise KeyError(lang)

    def lang_prefix(self, lang: str) -> str:
        """The language segment of that language's URLs ("" for none)."""
        if not self.multilingual:
            return ""
        if lang != self.default_content_language or self.default_content_language_in_subdir:
            return lang
        return ""

    def ugly_for(self, section: str) -> bool:
        return self.ugly_urls or self.ugly_urls_sections.get(section, False)

    def zone(self, lang: str) -> ZoneInfo:
        """The zone for dates without an offset: the language's timeZone, else the site's, else UTC."""
        name = self.language(lang).time_zone or self.time_zone or "UTC"
        return ZoneInfo(name)


def lower_keys(value: Any) -> Any:
    """Hugo's keys are case-insensitive: lower-case every map key, recursively."""
    if isinstance(value, Mapping):
        return {str(k).lower(): lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [lower_keys(v) for v in value]
    return value


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Hugo's Params.Set: `over` wins for common keys, maps merge recursively."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _place(name: str, item: Mapping[str, Any]) -> dict[str, Any]:
    """Where a config/_default/NAME.ext file goes: `params.toml` -> params, `params.fr.toml` ->
    languages.fr.params, `menus.en.toml` -> languages.en.menus, `hugo.toml`/`config.toml` -> root."""
    if name in CONFIG_NAMES:
        return dict(item)
    stem, _, lang = name.rpartition(".") if "." in name else (name, "", "")
    if not lang:
        stem = name
    key = stem.lower()
    if not lang:
        return {("menus" if key == "menu" else key): dict(item)}
    inner: dict[str, Any] = dict(item)
    if key in ("menu", "menus"):
        inner = {"menus": inner}
    elif key == "params":
        inner = {"params": inner}
    else:
        inner = {key: inner}
    return {"languages": {lang.lower(): inner}}


_SPELLING = {
    name.lower(): name
    for name in (
        "baseURL",
        "languageCode",
        "timeZone",
        "contentDir",
        "defaultContentLanguage",
        "defaultContentLanguageInSubdir",
        "uglyURLs",
        "disablePathToLower",
        "removePathAccents",
        "buildDrafts",
        "buildFuture",
        "buildExpired",
        "summaryLength",
        "hasCJKLanguage",
    )
}


def _name(key: str) -> str:
    """A key as Hugo's documentation spells it, for messages."""
    return _SPELLING.get(key, key)


def _str(cfg: Mapping[str, Any], key: str, default: str, path: str) -> str:
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"'{_name(key)}' must be a string, not {value!r}", path=path, key=_name(key))
    return str(value)


def _bool(cfg: Mapping[str, Any], key: str, default: bool, path: str) -> bool:
    value = cfg.get(key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "t", "f"):
        return value.lower() in ("true", "1", "t")
    raise ConfigError(f"'{_name(key)}' must be true or false, not {value!r}", path=path, key=_name(key))


def _int(cfg: Mapping[str, Any], key: str, default: int, path: str) -> int:
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"'{_name(key)}' must be a whole number, not {value!r}", path=path, key=_name(key))
    return value


def _zone_name(value: str, key: str, path: str) -> str:
    if not value:
        return ""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"'{key}' is not a time zone: {value!r}", path=path, key=key) from exc
    return value


def _chain(value: Any, default: tuple[str, ...], key: str, path: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"'frontmatter.{key}' must be a list of names", path=path, key=f"frontmatter.{key}")
    out: list[str] = []
    for item in (v.lower() for v in value):
        for name in default if item == ":default" else (item,):
            for full in (name, *_ALIASES.get(name, ())):
                if full not in out:
                    out.append(full)
    return tuple(out)


def _date_chains(cfg: Mapping[str, Any], path: str) -> DateChains:
    table = cfg.get("frontmatter", {})
    if not isinstance(table, Mapping):
        raise ConfigError("'frontmatter' must be a table", path=path, key="frontmatter")
    chains = {
        name: _chain(table.get(name, [":default"]), default, name, path)
        for name, default in _DEFAULT_CHAINS.items()
    }
    return DateChains(
        date=chains["date"],
        lastmod=chains["lastmod"],
        publish_date=chains["publishdate"],
        expiry_date=chains["expirydate"],
    )


def _permalinks(cfg: Mapping[str, Any], path: str) -> dict[str, str]:
    table = cfg.get("permalinks", {})
    if not isinstance(table, Mapping):
        raise ConfigError("'permalinks' must be a table", path=path, key="permalinks")
    flat = {k: v for k, v in table.items() if isinstance(v, str)}
    # [permalinks.page] is Hugo 0.112's form (0.111 stops with a panic on it); its patterns win.
    page = table.get("page", {})
    if isinstance(page, Mapping):
        flat |= {k: v for k, v in page.items() if isinstance(v, str)}
    bad = [k for k, v in table.items() if not isinstance(v, str | Mapping)]
    if bad:
        raise ConfigError(f"'permalinks.{bad[0]}' must be a string", path=path, key=f"permalinks.{bad[0]}")
    return check_permalinks(flat, path)


def _languages(cfg: Mapping[str, Any], content_dir: str, time_zone: str, path: str) -> list[HugoLanguage]:
    default = _str(cfg, "defaultcontentlanguage", "en", path).lower()
    title = _str(cfg, "title", "", path)
    language_code = _str(cfg, "languagecode", "", path)
    table = cfg.get("languages") or {}
    if not isinstance(table, Mapping):
        raise ConfigError("'languages' must be a table", path=path, key="languages")
    disabled = {str(x).lower() for x in cfg.get("disablelanguages") or []}
    if default in disabled:
        raise ConfigError(f"cannot disable default language {default!r}", path=path, key="disableLanguages")
    if not table:
        return [HugoLanguage(default, title, language_code, content_dir, 0, time_zone)]
    found: list[HugoLanguage] = []
    for lang, entry in table.items():
        key = f"languages.{lang}"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"'{key}' must be a table", path=path, key=key)
        if "baseurl" in entry:
            raise ConfigError(
                f"'{key}.baseURL': a site with one host per language is not supported",
                path=path,
                key=key,
            )
        if lang in disabled or _bool(entry, "disabled", False, path):
            continue
        found.append(
            HugoLanguage(
                lang=lang,
                title=_str(entry, "title", title, path),
                language_code=_str(entry, "languagecode", language_code, path),
                content_dir=_str(entry, "contentdir", content_dir, path).strip("/") or content_dir,
                weight=_int(entry, "weight", 0, path),
                time_zone=_zone_name(_str(entry, "timezone", "", path), f"{key}.timeZone", path),
            )
        )
    if default not in {lang.lang for lang in found}:
        raise ConfigError(
            f"defaultContentLanguage {default!r} does not match any language definition",
            path=path,
            key="defaultContentLanguage",
        )
    # Hugo's Languages sort: by weight (0 means unweighted and goes last), then by code.
    found.sort(key=lambda lang: (lang.weight == 0, lang.weight, lang.lang))
    return found


def hugo_config_from_maps(
    root: Path, main: tuple[str, Mapping[str, Any]] | None, directory: Sequence[tuple[str, Mapping[str, Any]]]
) -> HugoSite:
    """Merge the main config file and the config-directory files (in Hugo's order) into a HugoSite.

    `main` is (path, map) of the first of hugo.* / config.*; `directory` is the config/_default then
    config/production files, each (path, map), in the order Hugo walks them (sorted names).
    """
    merged: dict[str, Any] = {}
    files: list[str] = []
    if main is not None:
        files.append(main[0])
        merged = merge(merged, lower_keys(main[1]))
    for file_path, item in directory:
        files.append(file_path)
        name = Path(file_path).name.rsplit(".", 1)[0]
        merged = merge(merged, lower_keys(_place(name, item)))
    path = files[0] if files else str(root)
    return _site_from(root, merged, tuple(files), path)


def _site_from(root: Path, cfg: Mapping[str, Any], files: tuple[str, ...], path: str) -> HugoSite:
    time_zone = _zone_name(_str(cfg, "timezone", "", path), "timeZone", path)
    content_dir = _str(cfg, "contentdir", "content", path).strip("/") or "content"
    languages = _languages(cfg, content_dir, time_zone, path)
    ugly = cfg.get("uglyurls", False)
    ugly_sections: dict[str, bool] = {}
    if isinstance(ugly, Mapping):
        ugly_sections = {str(k): bool(v) for k, v in ugly.items()}
        ugly = False
    elif not isinstance(ugly, bool):
        ugly = _bool(cfg, "uglyurls", False, path)
    taxonomies = cfg.get("taxonomies", {"tag": "tags", "category": "categories"})
    if not isinstance(taxonomies, Mapping):
        raise ConfigError("'taxonomies' must be a table", path=path, key="taxonomies")
    ignore = cfg.get("ignorefiles", [])
    if isinstance(ignore, str):
        ignore = [ignore]
    if not isinstance(ignore, list):
        raise ConfigError("'ignoreFiles' must be a list of patterns", path=path, key="ignoreFiles")
    for pattern in ignore:
        try:
            re.compile(str(pattern))
        except re.error as exc:
            raise ConfigError(
                f"'ignoreFiles' pattern {pattern!r}: {exc}", path=path, key="ignoreFiles"
            ) from exc
    cascade = cfg.get("cascade", [])
    if isinstance(cascade, Mapping):
        cascade = [cascade]
    return HugoSite(
        root=root,
        config_files=files,
        base_url=_str(cfg, "baseurl", "", path),
        title=_str(cfg, "title", "", path),
        language_code=_str(cfg, "languagecode", "", path),
        time_zone=time_zone,
        content_dir=content_dir,
        languages=tuple(languages),
        default_content_language=_str(cfg, "defaultcontentlanguage", "en", path).lower(),
        default_content_language_in_subdir=_bool(cfg, "defaultcontentlanguageinsubdir", False, path),
        permalinks=_permalinks(cfg, path),
        ugly_urls=bool(ugly),
        ugly_urls_sections=ugly_sections,
        path_rules=PathRules(
            disable_path_to_lower=_bool(cfg, "disablepathtolower", False, path),
            remove_path_accents=_bool(cfg, "removepathaccents", False, path),
        ),
        date_chains=_date_chains(cfg, path),
        build_drafts=_bool(cfg, "builddrafts", False, path),
        build_future=_bool(cfg, "buildfuture", False, path),
        build_expired=_bool(cfg, "buildexpired", False, path),
        ignore_files=tuple(str(p) for p in ignore),
        taxonomies={str(k): str(v) for k, v in taxonomies.items()},
        summary_length=_int(cfg, "summarylength", 70, path),
        has_cjk_language=_bool(cfg, "hascjklanguage", False, path),
        cascade=tuple(c for c in cascade if isinstance(c, Mapping)),
        params=dict(cfg["params"]) if isinstance(cfg.get("params"), Mapping) else {},
    )


# ---------------------------------------------------------------- the edge: files on disk

_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def parse_config_text(text: str, path: str) -> dict[str, Any]:
    """One config file's text as a map, by its extension; a ConfigError with the parser's line."""
    ext = path.rsplit(".", 1)[-1].lower()
    try:
        if ext == "toml":
            value: Any = tomllib.loads(text)
        elif ext in ("yaml", "yml"):
            value = yaml.safe_load(text) or {}
        else:
            value = json.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_LINE.search(str(exc))
        message = _TOML_LINE.sub("", str(exc)).strip()
        raise ConfigError(
            f"invalid TOML: {message}", path=path, line=int(found.group(1)) if found else None
        ) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"invalid YAML: {problem}", path=path, line=mark.line + 1 if mark else None
        ) from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno) from exc
    if not isinstance(value, dict):
        raise ConfigError("a config file must hold a table of settings", path=path)
    return value


def find_config_files(root: Path, environment: str = ENVIRONMENT) -> tuple[Path | None, list[Path]]:
    """Hugo's search: the first of hugo.{toml,yaml,yml,json} then config.*; then every config file in
    config/_default and config/<environment>, sorted as Hugo walks them."""
    main = None
    for name in CONFIG_NAMES:
        for ext in CONFIG_EXTENSIONS:
            candidate = root / f"{name}.{ext}"
            if candidate.is_file():
                main = candidate
                break
        if main:
            break
    directory: list[Path] = []
    for sub in ("_default", environment):
        folder = root / "config" / sub
        if folder.is_dir():
            found = [
                p
                for p in folder.rglob("*")
                if p.is_file() and p.suffix.lower().lstrip(".") in CONFIG_EXTENSIONS
            ]
            directory.extend(sorted(found))
    return main, directory


def read_hugo_config(root: Path, environment: str = ENVIRONMENT) -> HugoSite:
    """Find, read and merge the Hugo config of the site at `root` (a ConfigError if there is none, or
    one of its files is unreadable or invalid)."""
    if not root.is_dir():
        raise ConfigError("the Hugo site folder does not exist", path=str(root), key="content.hugo_site")
    main, directory = find_config_files(root, environment)
    if main is None and not directory:
        raise ConfigError(
            "no Hugo config found (hugo.toml, hugo.yaml, hugo.json, config.toml ... or config/_default/)",
            path=str(root),
            key="content.hugo_site",
        )

    def load(path: Path) -> tuple[str, dict[str, Any]]:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the Hugo config: {exc}", path=str(path)) from exc
        return str(path), parse_config_text(text, str(path))

    return hugo_config_from_maps(root, load(main) if main else None, [load(p) for p in directory])
